#pragma once
#include <CLI/CLI.hpp>

namespace p2pmq::cli {

void register_commands(CLI::App& app);
// The exit status the command that ran chose.
int exit_code();

}  // namespace p2pmq::cli
