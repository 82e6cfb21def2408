// The example clients in examples/ (Python and Node) against an ApiServer with a fake Backend.
#include <gtest/gtest.h>
#include <unistd.h>

#include "api/server.hpp"
#include "api/test/fake_backend.hpp"
#include "api/test/subprocess.hpp"

namespace p2pmq::api::test {
namespace {

using namespace std::chrono_literals;

constexpr auto kWait = 60s;  // interpreters start slowly on two busy cores

// Runs `listen t --count 2` and two `pub t ...` with the given client command, and checks what the
// listener printed.
void publish_and_listen(const std::vector<std::string>& client) {
  FakeBackend backend;
  ApiServer server(backend, {});
  ASSERT_TRUE(server.start());
  auto with = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = client;
    argv.push_back("--agent");
    argv.push_back(server.bound_address());
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  };

  Subprocess listener(with({"listen", "t", "--count", "2"}));
  ASSERT_TRUE(listener.started());
  auto line = listener.read_line(kWait);
  ASSERT_TRUE(line) << "the listener printed nothing: " << listener.pending_output();
  ASSERT_EQ(*line, "listening");

  int seqno = 0;
  for (std::string data : {"hello", "wörld"}) {
    Subprocess pub(with({"pub", "t", data}));
    auto out = pub.read_line(kWait);
    ASSERT_TRUE(out) << "pub printed nothing";
    ++seqno;
    // The fake backend's ids are "t/<seqno>", printed in hex.
    std::string id_hex = to_hex(to_bytes("t/" + std::to_string(seqno)));
    EXPECT_EQ(*out, "published id=" + id_hex + " seqno=" + std::to_string(seqno));
    EXPECT_EQ(pub.wait_exit(kWait), 0);
  }
  auto m1 = listener.read_line(kWait);
  auto m2 = listener.read_line(kWait);
  ASSERT_TRUE(m1 && m2);
  EXPECT_EQ(*m1, "message t 1 12D3KooWSelf hello");
  EXPECT_EQ(*m2, "message t 2 12D3KooWSelf wörld");
  EXPECT_EQ(listener.wait_exit(kWait), 0);
  EXPECT_TRUE(eventually([&] { return backend.listeners() == 0; }));

  // Errors come back as status codes and a non-zero exit.
  Subprocess bad(with({"pub", "", "x"}));
  EXPECT_NE(bad.wait_exit(kWait), 0);
}

TEST(Examples, PythonClient) {
  const std::string python = "/usr/bin/python3";
  if (!python_has_grpc(python)) {
    GTEST_SKIP() << python
                 << " lacks grpc / grpc_tools (apt install python3-grpcio "
                    "python3-grpc-tools)";
  }
  publish_and_listen({python, P2PMQ_SOURCE_DIR "/examples/client.py"});
}

TEST(Examples, NodeClient) {
  std::string node;
  for (const char* p : {"/usr/bin/node", "/usr/local/bin/node"}) {
    if (access(p, X_OK) == 0) {
      node = p;
      break;
    }
  }
  if (node.empty()) GTEST_SKIP() << "node is not installed";
  // The example runs on the client package (clients/node), which holds the dependencies.
  if (access(P2PMQ_SOURCE_DIR "/clients/node/node_modules/@grpc/grpc-js", F_OK) != 0) {
    GTEST_SKIP() << "run clients/node/install.sh first";
  }
  publish_and_listen({node, P2PMQ_SOURCE_DIR "/examples/node/client.mjs"});
}

}  // namespace
}  // namespace p2pmq::api::test
