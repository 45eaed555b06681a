#include "tools/control_token.hpp"

#include <cctype>
#include <fstream>
#include <iterator>

namespace livealign {

std::optional<std::string> ReadControlTokenFile(const std::string& path) {
  std::ifstream in(path);
  std::string token((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  if ((!in.good() && !in.eof()) || token.empty()) return std::nullopt;
  return token;
}

}  // namespace livealign
