// gRPC client commands: pub, sub, status (talking to a running agent).
#include <grpcpp/grpcpp.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "core/bytes.hpp"
#include "json_seqno.hpp"
#include "p2pmq/v1/p2pmq.grpc.pb.h"

namespace p2pmq::cli {

namespace {

namespace v1 = p2pmq::v1;

std::shared_ptr<grpc::Channel> channel_to(const std::string& agent) {
  return grpc::CreateChannel(agent, grpc::InsecureChannelCredentials());
}

int report(const grpc::Status& status, const std::string& what) {
  std::cerr << "error: " << what << ": " << status.error_message() << " (code "
            << static_cast<int>(status.error_code()) << ")" << std::endl;
  return 1;
}

nlohmann::json to_json(const v1::Message& m) {
  nlohmann::json j{{"topic", m.topic()},
                   {"origin", m.origin()},
                   {"seqno", json_seqno(m.seqno())},
                   {"id", to_hex(as_bytes(m.id()))},
                   {"data", m.data()},
                   {"synced", m.synced()}};
  return j;
}

}  // namespace

int run_pub(const std::string& agent, const std::string& topic,
            const std::optional<std::string>& data) {
  auto stub = v1::Messaging::NewStub(channel_to(agent));
  auto publish = [&](const std::string& payload) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::PublishRequest req;
    req.set_topic(topic);
    req.set_data(payload);
    v1::PublishResponse resp;
    auto status = stub->Publish(&ctx, req, &resp);
    if (!status.ok()) return report(status, "publish to " + agent);
    std::cout << "published seqno=" << resp.seqno() << " id=" << to_hex(as_bytes(resp.id()))
              << std::endl;
    return 0;
  };
  if (data) return publish(*data);
  std::string line;
  while (std::getline(std::cin, line))
    if (int rc = publish(line); rc != 0) return rc;
  return 0;
}

int run_sub(const std::string& agent, const std::vector<std::string>& topics, bool json,
            uint64_t count, bool ordered) {
  auto stub = v1::Messaging::NewStub(channel_to(agent));
  grpc::ClientContext ctx;
  v1::ListenRequest req;
  for (const auto& t : topics) req.add_topics(t);
  req.set_ordered(ordered);
  auto reader = stub->Listen(&ctx, req);
  v1::ListenEvent event;
  uint64_t received = 0;
  while ((count == 0 || received < count) && reader->Read(&event)) {
    if (event.has_gap()) {
      const auto& g = event.gap();
      if (json)
        std::cout << nlohmann::json{{"event", "gap"},
                                    {"topic", g.topic()},
                                    {"origin", g.origin()},
                                    {"from_seqno", json_seqno(g.from_seqno())},
                                    {"to_seqno", json_seqno(g.to_seqno())}}
                         .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                  << std::endl;
      else
        std::cerr << "gap " << g.topic() << " " << g.origin() << " " << g.from_seqno() << "-"
                  << g.to_seqno() << std::endl;
      continue;
    }
    if (event.has_missed()) {
      if (json)
        std::cout << nlohmann::json{{"missed", event.missed().count()},
                                    {"topic", event.missed().topic()}}
                         .dump()
                  << std::endl;
      else
        std::cerr << "missed " << event.missed().count() << " messages of "
                  << event.missed().topic() << std::endl;
      continue;
    }
    const auto& m = event.message();
    ++received;
    if (json)
      std::cout << to_json(m).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                << std::endl;
    else
      std::cout << m.topic() << " " << m.origin() << " #" << m.seqno() << ": " << m.data()
                << std::endl;
  }
  if (count != 0 && received >= count) {
    ctx.TryCancel();
    return 0;
  }
  auto status = reader->Finish();
  if (!status.ok()) return report(status, "listen on " + agent);
  return 0;
}

int run_status(const std::string& agent) {
  auto stub = v1::Admin::NewStub(channel_to(agent));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::StatusRequest req;
  v1::StatusResponse resp;
  auto status = stub->Status(&ctx, req, &resp);
  if (!status.ok()) return report(status, "status of " + agent);
  nlohmann::json j;
  j["peer_id"] = resp.peer_id();
  j["listen_addrs"] =
      std::vector<std::string>(resp.listen_addrs().begin(), resp.listen_addrs().end());
  j["topics"] = std::vector<std::string>(resp.topics().begin(), resp.topics().end());
  j["peers"] = nlohmann::json::array();
  for (const auto& p : resp.peers()) {
    j["peers"].push_back(
        {{"peer_id", p.peer_id()},
         {"addrs", std::vector<std::string>(p.addrs().begin(), p.addrs().end())},
         {"topics", std::vector<std::string>(p.topics().begin(), p.topics().end())},
         {"mesh_topics", std::vector<std::string>(p.mesh_topics().begin(), p.mesh_topics().end())},
         {"score", p.score()},
         {"agent_version", p.agent_version()}});
  }
  j["connected_peers"] = resp.connected_peers();
  j["dht_mode"] = resp.dht_mode();
  j["dht_table_size"] = resp.dht_table_size();
  j["metrics_address"] = resp.metrics_address();
  j["resources"] = nlohmann::json::array();
  for (const auto& r : resp.resources()) {
    j["resources"].push_back({{"scope", r.name()},
                              {"memory", r.memory()},
                              {"memory_limit", r.memory_limit()},
                              {"streams", r.streams()},
                              {"streams_limit", r.streams_limit()},
                              {"connections", r.connections()},
                              {"connections_limit", r.connections_limit()},
                              {"fds", r.fds()}});
  }
  j["topic_status"] = nlohmann::json::array();
  for (const auto& t : resp.topic_status()) {
    nlohmann::json origins = nlohmann::json::array();
    for (const auto& o : t.origins())
      origins.push_back({{"origin", o.origin()}, {"delivered_seqno", o.delivered_seqno()}});
    j["topic_status"].push_back({{"topic", t.topic()},
                                 {"published_seqno", t.published_seqno()},
                                 {"origins", origins},
                                 {"gaps", t.gaps()},
                                 {"synced_messages", t.synced_messages()}});
  }
  j["archives"] = nlohmann::json::array();
  for (const auto& a : resp.archives()) {
    j["archives"].push_back(
        {{"peer_id", a.peer_id()},
         {"addrs", std::vector<std::string>(a.addrs().begin(), a.addrs().end())},
         {"source", a.source()}});
  }
  const auto& sync = resp.sync();
  j["sync"] = {{"fetches", sync.fetches()},
               {"fetched_messages", sync.fetched_messages()},
               {"fetch_failures", sync.fetch_failures()},
               {"served_requests", sync.served_requests()},
               {"served_messages", sync.served_messages()},
               {"archive_role", sync.archive_role()},
               {"archived_messages", sync.archived_messages()}};
  std::cout << j.dump(2) << std::endl;
  return 0;
}

}  // namespace p2pmq::cli
