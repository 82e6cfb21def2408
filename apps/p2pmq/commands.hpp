#pragma once
#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <vector>

namespace p2pmq::cli {

void register_commands(CLI::App& app);
// The exit status the command that ran chose.
int exit_code();

// gRPC clients of a running agent (client_commands.cpp).
int run_pub(const std::string& agent, const std::string& topic,
            const std::optional<std::string>& data);
int run_sub(const std::string& agent, const std::vector<std::string>& topics, bool json,
            uint64_t count, bool ordered);
int run_status(const std::string& agent);
// A local network of agents (devnet.cpp).
int run_devnet(size_t nodes, size_t messages, const std::string& topic, bool keep_running);
// `p2pmq bench` (bench_command.cpp); its callback stores the exit status in `exit_status`.
void add_bench_command(CLI::App& app, int& exit_status);

}  // namespace p2pmq::cli
