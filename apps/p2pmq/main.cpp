// p2pmq: the one command-line binary (agent daemon, keys, diagnostics).
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <cstdlib>

#include "commands.hpp"

int main(int argc, char** argv) {
  // Logs go to stderr: stdout carries the command's results.
  spdlog::set_default_logger(spdlog::stderr_color_mt("p2pmq"));
  if (const char* level = std::getenv("P2PMQ_LOG"))
    spdlog::set_level(spdlog::level::from_str(level));

  CLI::App app{"p2pmq: a distributed, permissionless message queue over libp2p"};
  app.require_subcommand(1);
  std::string log_level;
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error");
  app.parse_complete_callback([&] {
    if (!log_level.empty()) spdlog::set_level(spdlog::level::from_str(log_level));
  });
  p2pmq::cli::register_commands(app);
  CLI11_PARSE(app, argc, argv);
  return p2pmq::cli::exit_code();
}
