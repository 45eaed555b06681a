#include "tests/support/run_livealign.hpp"

#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "tests/support/test_data.hpp"

namespace livealign::testing {

CommandResult RunLivealign(const std::string& args, const std::string& log_dir, const std::string& env) {
  const std::string log = log_dir + "/command_output.txt";
  const std::string command = "env " + env + " " + LivealignBinary() + " " + args + " > " + log + " 2>&1";
  const int status = std::system(command.c_str());
  std::stringstream text;
  text << std::ifstream(log).rdbuf();
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text.str()};
}

}  // namespace livealign::testing
