#pragma once
// Subcommand registry for the `livealign` executable.
//
// Each tools/<name>_command.cpp defines a Run function and registers it at
// static-initialisation time:
//
//   static const CommandRegistrar kRegister{"register", "register a stack offline", &RunRegister};
//
// Run functions receive the arguments after the subcommand name (argv[0] is
// "livealign <name>") and return the process exit code. They are the last catch
// for exceptions only through livealign_main.cpp.

#include <map>
#include <string>

namespace livealign {

using CommandFn = int (*)(int argc, char** argv);

struct CommandInfo {
  std::string summary;
  CommandFn run;
};

std::map<std::string, CommandInfo>& Commands();

struct CommandRegistrar {
  CommandRegistrar(const char* name, const char* summary, CommandFn run) {
    Commands()[name] = CommandInfo{summary, run};
  }
};

}  // namespace livealign
