#pragma once
// Runs the built `livealign` binary to completion for end-to-end tests of a
// command, its output (stdout and stderr) captured in a file.

#include <string>

namespace livealign::testing {

struct CommandResult {
  int exit_code;
  std::string output;
};

// `env ENV livealign ARGS` (ENV: "NAME=value ..." or empty), its output in
// log_dir/command_output.txt (each test case passes its own scratch
// directory: ctest runs cases in parallel). ARGS go through the shell.
CommandResult RunLivealign(const std::string& args, const std::string& log_dir,
                           const std::string& env = "");

}  // namespace livealign::testing
