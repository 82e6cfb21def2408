// `p2pmq devnet`: a local network of agents on loopback, for trying p2pmq out. Starts a
// bootstrap agent and N agents as child processes, prints how to talk to them, publishes sample
// traffic through the gRPC API and shows it arriving everywhere; stops every child on Ctrl-C.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstring>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include "commands.hpp"
#include "core/bytes.hpp"
#include "core/result.hpp"
#include "local_agents.hpp"
#include "p2pmq/v1/p2pmq.grpc.pb.h"

namespace p2pmq::cli {

namespace {

namespace v1 = p2pmq::v1;
using Clock = std::chrono::steady_clock;

std::atomic<bool> g_interrupted{false};
void on_signal(int) {
  g_interrupted = true;
}

// `s` as one shell word: unchanged when it holds only safe characters, else in single quotes.
std::string shell_word(const std::string& s) {
  bool safe = !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || (c != 0 && std::strchr("/._-+:,=@", c));
  });
  if (safe) return s;
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace

int run_devnet(size_t nodes, size_t messages, const std::string& topic, bool keep_running) {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::string self = self_binary();
  if (self.empty()) {
    std::cerr << "error: devnet: cannot find the p2pmq binary" << std::endl;
    return 1;
  }
  char dir_template[] = "/tmp/p2pmq-devnet-XXXXXX";
  std::string dir = ::mkdtemp(dir_template) ? dir_template : "/tmp";

  std::vector<LocalAgent> children;
  auto bootstrap =
      spawn_agent(self, "bootstrap", {"--role", "bootstrapper"}, dir + "/bootstrap.log");
  if (!bootstrap) {
    std::cerr << "error: devnet: " << bootstrap.error().message << std::endl;
    return 1;
  }
  children.push_back(*bootstrap);
  for (size_t i = 1; i <= nodes && !g_interrupted; ++i) {
    std::string name = "agent" + std::to_string(i);
    // Only the bootstrapper is known: the agents find each other through the DHT.
    std::vector<std::string> args{"--bootstrap", bootstrap->multiaddr, "--topic", topic};
    auto child = spawn_agent(self, name, args, dir + "/" + name + ".log");
    if (!child) {
      std::cerr << "error: devnet: " << child.error().message << std::endl;
      stop_agents(children);
      return 1;
    }
    children.push_back(*child);
  }
  std::cout << "devnet: " << nodes << " agents and a DHT bootstrapper on loopback (logs in " << dir
            << ")\n";
  for (const auto& c : children)
    std::cout << "  " << c.name << "  grpc " << c.grpc << "  status http://" << c.metrics << "/  "
              << c.multiaddr << "\n";
  // The commands name this binary by its absolute path: they work from any directory, whether or
  // not p2pmq is on the PATH (scripts/run.sh runs it from build/release).
  const auto& first = children.size() > 1 ? children[1] : children[0];
  const std::string p2pmq = shell_word(self);
  const std::string t = shell_word(topic);
  std::cout << "try (in another terminal):\n  " << p2pmq << " sub --agent " << first.grpc
            << " --topic " << t << "\n  " << p2pmq << " pub --agent " << children.back().grpc
            << " --topic " << t << " --data hello\n  " << p2pmq << " status --agent " << first.grpc
            << "\n"
            << std::flush;

  // Listen on every agent, then publish sample traffic round robin and show it arriving.
  std::mutex mu;
  std::map<std::string, size_t> arrivals;  // message id -> agents that got it
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::thread> listeners;
  std::atomic<size_t> ready{0};
  for (size_t i = 1; i < children.size(); ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    auto* ctx = contexts.back().get();
    listeners.emplace_back([&, i, ctx] {
      auto stub = v1::Messaging::NewStub(
          grpc::CreateChannel(children[i].grpc, grpc::InsecureChannelCredentials()));
      v1::ListenRequest req;
      req.add_topics(topic);
      auto reader = stub->Listen(ctx, req);
      reader->WaitForInitialMetadata();
      ++ready;
      v1::ListenEvent event;
      while (reader->Read(&event)) {
        if (!event.has_message()) continue;
        const auto& m = event.message();
        std::lock_guard lock(mu);
        auto& count = arrivals[m.id()];
        ++count;
        std::cout << "  " << children[i].name << " got \"" << m.data() << "\" (seqno " << m.seqno()
                  << " from " << m.origin().substr(m.origin().size() - 6) << ")\n"
                  << std::flush;
      }
    });
  }
  auto wait_until = [&](auto done, std::chrono::seconds limit) {
    auto deadline = Clock::now() + limit;
    while (!done() && !g_interrupted && Clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return done();
  };
  wait_until([&] { return ready == children.size() - 1; }, std::chrono::seconds(30));
  // Give the meshes a moment to form: wait until every agent has a mesh peer in the topic.
  wait_until(
      [&] {
        for (size_t i = 1; i < children.size(); ++i) {
          auto stub = v1::Admin::NewStub(
              grpc::CreateChannel(children[i].grpc, grpc::InsecureChannelCredentials()));
          grpc::ClientContext ctx;
          ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
          v1::StatusRequest req;
          v1::StatusResponse resp;
          if (!stub->Status(&ctx, req, &resp).ok()) return false;
          bool meshed = false;
          for (const auto& p : resp.peers())
            for (const auto& t : p.mesh_topics()) meshed |= t == topic;
          if (!meshed) return false;
        }
        return true;
      },
      std::chrono::seconds(30));

  std::vector<std::string> ids;
  for (size_t k = 0; k < messages && !g_interrupted; ++k) {
    const auto& from = children[1 + k % (children.size() - 1)];
    auto stub =
        v1::Messaging::NewStub(grpc::CreateChannel(from.grpc, grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::PublishRequest req;
    req.set_topic(topic);
    req.set_data("sample " + std::to_string(k + 1) + " from " + from.name);
    v1::PublishResponse resp;
    auto status = stub->Publish(&ctx, req, &resp);
    {
      std::lock_guard lock(mu);
      if (status.ok()) {
        std::cout << from.name << " published \"" << req.data() << "\"\n" << std::flush;
        ids.push_back(resp.id());
      } else {
        std::cout << from.name << " publish failed: " << status.error_message() << "\n";
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // pacing for readability
  }
  bool all = wait_until(
      [&] {
        std::lock_guard lock(mu);
        for (const auto& id : ids)
          if (arrivals[id] < children.size() - 1) return false;
        return true;
      },
      std::chrono::seconds(30));
  {
    std::lock_guard lock(mu);
    size_t delivered = 0;
    for (const auto& id : ids) delivered += arrivals[id];
    std::cout << "devnet: " << ids.size() << " messages, " << delivered << " of "
              << ids.size() * (children.size() - 1) << " deliveries"
              << (all ? " (every agent got every message)" : " (some missing)") << "\n"
              << std::flush;
  }
  if (keep_running && !g_interrupted) {
    std::cout << "devnet: running; Ctrl-C stops every agent\n" << std::flush;
    while (!g_interrupted) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  for (auto& ctx : contexts) ctx->TryCancel();
  stop_agents(children);
  for (auto& t : listeners) t.join();
  std::cout << "devnet: stopped" << std::endl;
  return all ? 0 : 1;
}

}  // namespace p2pmq::cli
