#pragma once
// A libp2p dialer written by hand on a bare tcp::socket, from the sans-IO machines
// (multistream::Dialer, noise::Handshake/Session) and hand-built Yamux frames, so a test can
// stop anywhere in the upgrade or send exactly the bytes a broken or hostile peer would.
#include <optional>
#include <string>
#include <vector>

#include "core/multiaddr.hpp"
#include "crypto/keys.hpp"
#include "crypto/peer_id.hpp"
#include "host/asio.hpp"
#include "net/noise.hpp"

namespace p2pmq::test {

namespace asio = host::asio;
using host::Clock;
using host::Task;
using host::tcp;

// Yamux wire constants (hashicorp/yamux spec.md).
namespace ymx {
inline constexpr uint8_t kData = 0;
inline constexpr uint8_t kWindowUpdate = 1;
inline constexpr uint8_t kPing = 2;
inline constexpr uint8_t kGoAway = 3;
inline constexpr uint16_t kSyn = 1;
inline constexpr uint16_t kAck = 2;
inline constexpr uint16_t kFin = 4;
inline constexpr uint16_t kRst = 8;
}  // namespace ymx

struct YamuxHeader {
  uint8_t version = 0;
  uint8_t type = ymx::kData;
  uint16_t flags = 0;
  uint32_t stream = 0;
  uint32_t length = 0;
};

// The 12-byte big-endian header, then `payload` (whose size need not match `length`).
Bytes yamux_frame(const YamuxHeader& header, BytesView payload = {});
// A data frame whose length is its payload's.
Bytes yamux_data(uint32_t stream, uint16_t flags, BytesView payload);
// Complete frames in a Yamux byte stream; a trailing partial frame is ignored.
std::vector<YamuxHeader> parse_yamux(BytesView plaintext);

// What the host did to a connection we stopped talking on.
struct CloseReport {
  bool closed = false;              // EOF or reset seen before the deadline
  std::string how;                  // the read error that ended it
  std::vector<YamuxHeader> frames;  // every Yamux frame the host sent after the upgrade

  bool has_go_away(uint32_t code) const;
};

class RawPeer {
 public:
  explicit RawPeer(asio::any_io_executor ex);

  Task<Result<void>> connect(const tcp::endpoint& endpoint);
  // Our side of the connection, as the host logs the remote address.
  const Multiaddr& local_addr() const { return local_addr_; }

  // Bytes as they are, before or after the handshake.
  Task<Result<void>> write_raw(BytesView wire);
  // Sealed with the Noise session; needs noise_handshake() first.
  Task<Result<void>> write_secure(BytesView plaintext);
  // multistream-select as dialer: in the clear before the handshake, inside Noise after it.
  Task<Result<void>> select(const std::string& protocol);
  // Noise XX as initiator with a fresh identity; checks the listener proves `expected`.
  Task<Result<void>> noise_handshake(const crypto::PeerId& expected);
  // What a libp2p dialer does: /noise, Noise XX, /yamux/1.0.0 inside Noise.
  Task<Result<void>> upgrade(const crypto::PeerId& expected);

  noise::Session& session() { return *session_; }
  void shutdown_send();
  // Reads (and decrypts, once secured) everything until the host closes the connection or
  // the deadline passes.
  Task<CloseReport> wait_closed(Clock::time_point deadline);

 private:
  // Raw bytes before the handshake, plaintext after; never empty.
  Task<Result<Bytes>> read_some();
  Task<Result<void>> write(BytesView data);  // secure once there is a session

  tcp::socket socket_;
  crypto::PrivateKey identity_;
  std::optional<noise::Session> session_;
  Multiaddr local_addr_;
  // Received, not consumed yet by the negotiation in progress; after the upgrade, the
  // host's Yamux frames.
  Bytes pending_;
  Bytes buffer_ = Bytes(64 * 1024);
};

}  // namespace p2pmq::test
