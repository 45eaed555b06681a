// `livealign config`: prints config/livealign.ini, every engine option at its
// compiled-in default with its help, generated from core/engine_options.def.
#include <iostream>

#include "tools/command.hpp"
#include "tools/engine_option_binding.hpp"

namespace livealign {
namespace {
int RunConfig(int argc, char** argv) {
  if (argc > 1) {
    std::cout << "usage: livealign config > config/livealign.ini\n"
                 "prints every engine option at its default, as an ini file\n";
    return std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h" ? 0 : 2;
  }
  std::cout << EngineOptionsIni();
  return 0;
}
const CommandRegistrar kConfig{"config", "print the engine defaults as an ini file", &RunConfig};
}  // namespace
}  // namespace livealign
