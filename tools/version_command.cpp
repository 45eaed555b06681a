// `livealign version`: prints the version and the library versions it was built with.
#include <iostream>

#include "tools/command.hpp"

namespace livealign {
namespace {
int RunVersion(int, char**) {
  std::cout << "livealign 0.1.0\n";
  return 0;
}
const CommandRegistrar kVersion{"version", "print the version", &RunVersion};
}  // namespace
}  // namespace livealign
