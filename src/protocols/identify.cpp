#include "protocols/identify.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/experimental/awaitable_operators.hpp>

#include "host/log_limit.hpp"

#include "libp2p/identify.pb.h"

namespace p2pmq::protocols {

using host::Task;

Result<IdentifyInfo> decode_identify(BytesView message, const crypto::PeerId& peer) {
  libp2p::identify::Identify msg;
  if (message.size() > kMaxIdentifyMessage ||
      !msg.ParseFromArray(message.data(), static_cast<int>(message.size())))
    return fail(Errc::invalid_input, "malformed identify message");
  if (msg.has_publickey()) {
    auto key = crypto::PublicKey::decode(as_bytes(msg.publickey()));
    if (!key) return fail(Errc::invalid_input, "identify: bad public key: " + key.error().message);
    if (!peer.matches(*key))
      return fail(Errc::peer_id_mismatch,
                  "identify: public key does not match " + peer.to_string());
  }
  if (msg.listenaddrs_size() > static_cast<int>(kMaxIdentifyEntries) ||
      msg.protocols_size() > static_cast<int>(kMaxIdentifyEntries))
    return fail(Errc::limit_exceeded, "identify: too many addresses or protocols");
  IdentifyInfo info{peer, msg.protocolversion(), msg.agentversion(), {},
                    {},   std::nullopt,          std::nullopt};
  info.has_protocol_version = msg.has_protocolversion();
  info.has_agent_version = msg.has_agentversion();
  info.has_protocols = msg.protocols_size() > 0;
  info.has_listen_addrs = msg.listenaddrs_size() > 0;
  for (const auto& p : msg.protocols()) info.protocols.push_back(p);
  for (const auto& a : msg.listenaddrs()) {
    auto addr = Multiaddr::decode(as_bytes(a));
    if (addr) info.listen_addrs.push_back(addr->without_p2p());  // skip what we cannot read
  }
  if (msg.has_observedaddr()) {
    auto addr = Multiaddr::decode(as_bytes(msg.observedaddr()));
    if (addr) info.observed_addr = *addr;
  }
  if (msg.has_signedpeerrecord()) info.signed_peer_record = to_bytes(msg.signedpeerrecord());
  return info;
}

void merge_identify(host::PeerInfo& entry, const IdentifyInfo& info) {
  if (info.has_protocols) entry.protocols = info.protocols;
  if (info.has_agent_version) entry.agent_version = info.agent_version;
  if (info.has_protocol_version) entry.protocol_version = info.protocol_version;
}

struct Identify::Exchange {
  explicit Exchange(host::asio::any_io_executor ex) : done(ex) {}
  host::Signal done;
  std::optional<Result<IdentifyInfo>> result;
};

Identify::Identify(host::Host& host, std::string agent_version)
    : host_(host), agent_version_(std::move(agent_version)) {
  host_.handle(
      std::string(kIdentifyProtocol),
      [this](std::shared_ptr<host::Stream> s) -> Task<void> {
        auto conn = s->connection();
        if (!conn) co_return;
        auto w = co_await host::write_length_prefixed(*s, build_message(*conn));
        if (w) s->close_write();
      },
      "identify");
  host_.handle(
      std::string(kIdentifyPushProtocol),
      [this](std::shared_ptr<host::Stream> s) -> Task<void> {
        auto message = co_await host::read_length_prefixed(*s, kMaxIdentifyMessage);
        if (!message) co_return;
        auto info = decode_identify(*message, s->remote_peer());
        if (!info) {
          static host::LogLimit limit;
          if (limit.allow(host::Clock::now()))
            spdlog::info("identify push from {}: {}", s->remote_peer().to_string(),
                         host::escape_for_log(info.error().to_string()));
          co_return;
        }
        record(*info);
      },
      "identify");
  host_.on_protocols_changed([this] { schedule_push(); });
  host_.observe([this](const std::shared_ptr<host::Connection>& conn, host::ConnectionEvent e) {
    if (e == host::ConnectionEvent::closed) {
      exchanges_.erase(conn->id());
      return;
    }
    host::asio::co_spawn(
        host_.executor(),
        [this, conn]() -> Task<void> {
          auto info = co_await identify(conn);
          if (!info)
            spdlog::debug("identify {}: {}", conn->remote_peer().to_string(),
                          info.error().to_string());
        },
        host::asio::detached);
  });
}

const Bytes& Identify::own_peer_record(const std::vector<Multiaddr>& addrs) {
  if (sealed_record_.empty() || addrs != sealed_addrs_) {
    // go's seq is the wall clock in ns; strictly larger than our last, so peers take the new one.
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
    sealed_seq_ = std::max(static_cast<uint64_t>(ns), sealed_seq_ + 1);
    sealed_addrs_ = addrs;
    sealed_record_ = crypto::seal_peer_record(
        host_.identity(), crypto::PeerRecord{host_.peer_id(), sealed_seq_, addrs});
  }
  return sealed_record_;
}

Bytes Identify::build_message(const host::Connection& conn) {
  libp2p::identify::Identify msg;
  msg.set_protocolversion(std::string(kLibp2pProtocolVersion));
  msg.set_agentversion(agent_version_);
  Bytes key = host_.identity().public_key().encode();
  msg.set_publickey(std::string(as_string(key)));
  auto addrs = host_.advertised_addrs();
  for (const auto& a : addrs) {
    Bytes b = a.bytes();
    msg.add_listenaddrs(std::string(as_string(b)));
  }
  Bytes observed = conn.info().remote_addr.bytes();
  msg.set_observedaddr(std::string(as_string(observed)));
  for (const auto& p : host_.protocols()) msg.add_protocols(p);
  if (!addrs.empty()) {
    const Bytes& record = own_peer_record(addrs);
    msg.set_signedpeerrecord(std::string(as_string(record)));
  }
  std::string out;
  msg.SerializeToString(&out);
  return to_bytes(out);
}

void Identify::record(const IdentifyInfo& info) {
  merge_identify(host_.peer_store()[info.peer], info);
  // Filtered, bounded and aged by the host (no unspecified, link-local or foreign loopback).
  host_.add_addrs(info.peer, info.listen_addrs);
  if (info.signed_peer_record) {
    // Kept (newest seq, one per peer) to pass on in gossipsub PX; an invalid one is dropped.
    auto r = host_.add_signed_peer_record(info.peer, *info.signed_peer_record);
    if (!r) spdlog::debug("identify {}: {}", info.peer.to_string(), r.error().to_string());
  }
  // Listeners see what we now know of the peer, not only what a partial push carried.
  IdentifyInfo known = info;
  if (auto it = host_.peer_store().find(info.peer); it != host_.peer_store().end()) {
    known.protocols = it->second.protocols;
    known.agent_version = it->second.agent_version;
    known.protocol_version = it->second.protocol_version;
    if (!info.has_listen_addrs) known.listen_addrs = it->second.addrs;
  }
  for (auto& l : listeners_) l(known);
}

Task<Result<IdentifyInfo>> Identify::identify(std::shared_ptr<host::Connection> conn) {
  auto it = exchanges_.find(conn->id());
  if (it == exchanges_.end()) {
    auto exchange = std::make_shared<Exchange>(host_.executor());
    exchanges_[conn->id()] = exchange;
    exchange->result = co_await request(conn);
    exchange->done.notify();
    co_return *exchange->result;
  }
  auto exchange = it->second;
  while (!exchange->result) co_await exchange->done.wait();
  co_return *exchange->result;
}

Task<Result<IdentifyInfo>> Identify::request(std::shared_ptr<host::Connection> conn) {
  std::vector<std::string> protocols{std::string(kIdentifyProtocol)};
  auto stream = co_await host_.new_stream(conn, protocols);
  if (!stream) co_return tl::unexpected(stream.error());
  (*stream)->close_write();
  // A peer that negotiates and then says nothing must not hold the exchange forever.
  using namespace host::asio::experimental::awaitable_operators;
  host::asio::steady_timer timer(host_.executor(), kIdentifyTimeout);
  boost::system::error_code ec;
  auto raced =
      co_await (host::read_length_prefixed(**stream, kMaxIdentifyMessage) ||
                timer.async_wait(host::asio::redirect_error(host::asio::use_awaitable, ec)));
  if (raced.index() == 1) {
    (*stream)->reset();
    co_return fail(Errc::timeout,
                   "identify: " + conn->remote_peer().to_string() + " did not answer in time");
  }
  auto& message = std::get<0>(raced);
  if (!message) co_return tl::unexpected(message.error());
  auto info = decode_identify(*message, conn->remote_peer());
  if (!info) co_return info;
  record(*info);
  co_return info;
}

void Identify::schedule_push() {
  if (push_scheduled_) return;
  push_scheduled_ = true;
  host::asio::post(host_.executor(), [this, alive = alive_] {
    if (!*alive) return;
    push_scheduled_ = false;
    push_all();
  });
}

void Identify::push_all() {
  for (auto& conn : host_.connections())
    host::asio::co_spawn(host_.executor(), push(conn), host::asio::detached);
}

Task<void> Identify::push(std::shared_ptr<host::Connection> conn) {
  std::vector<std::string> protocols{std::string(kIdentifyPushProtocol)};
  auto alive = alive_;  // a push may be under way while the agent shuts down
  auto stream = co_await host_.new_stream(conn, protocols);
  if (!stream || !*alive) co_return;
  auto w = co_await host::write_length_prefixed(**stream, build_message(*conn));
  if (w) (*stream)->close_write();
}

}  // namespace p2pmq::protocols
