// `livealign <command> [options]`: dispatches to the registered subcommands.
#include <cstring>
#include <exception>
#include <iostream>
#include <string>

#include "tools/command.hpp"

namespace livealign {
std::map<std::string, CommandInfo>& Commands() {
  static std::map<std::string, CommandInfo> commands;
  return commands;
}
}  // namespace livealign

namespace {
void PrintUsage(std::ostream& os) {
  os << "usage: livealign <command> [options]\n\ncommands:\n";
  for (const auto& [name, info] : livealign::Commands()) {
    os << "  " << name << std::string(name.size() < 10 ? 10 - name.size() : 1, ' ')
       << info.summary << "\n";
  }
  os << "\n`livealign <command> --help` describes each command's options.\n";
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") ||
      !std::strcmp(argv[1], "help")) {
    PrintUsage(std::cout);
    return argc < 2 ? 2 : 0;
  }
  const auto it = livealign::Commands().find(argv[1]);
  if (it == livealign::Commands().end()) {
    std::cerr << "livealign: unknown command '" << argv[1] << "'\n";
    PrintUsage(std::cerr);
    return 2;
  }
  std::string name = std::string("livealign ") + argv[1];
  argv[1] = name.data();
  try {
    return it->second.run(argc - 1, argv + 1);
  } catch (const std::exception& e) {
    std::cerr << "livealign " << it->first << ": error: " << e.what() << "\n";
    return 1;
  }
}
