#include "tests/support/test_data.hpp"

#include <cstdlib>
#include <filesystem>

namespace livealign::testing {

std::optional<std::string> SharedDataFile(const std::string& name) {
  namespace fs = std::filesystem;
  const fs::path path = fs::path(LIVEALIGN_SOURCE_DIR) / ".." / "shared" / "data" / "npy" / name;
  if (!fs::exists(path)) return std::nullopt;
  return fs::canonical(path).string();
}

std::string SourceFile(const std::string& relative) {
  return std::string(LIVEALIGN_SOURCE_DIR) + "/" + relative;
}

std::string LivealignBinary() {
  if (const char* env = std::getenv("LIVEALIGN_BINARY")) return env;
  return std::string(LIVEALIGN_BINARY_DIR) + "/livealign";
}

std::string ScratchDir(const std::string& name) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(LIVEALIGN_BINARY_DIR) / "test_scratch" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

}  // namespace livealign::testing
