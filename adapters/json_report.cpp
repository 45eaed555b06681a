#include "adapters/json_report.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "adapters/file_error.hpp"

namespace livealign {

void WriteJsonFile(const std::string& path, const nlohmann::json& doc,
                   const AtomicWriteOptions& atomic) {
  std::string text;
  try {
    text = doc.dump(2);
  } catch (const nlohmann::json::exception& e) {
    throw FileError(path, std::string("cannot serialise JSON: ") + e.what());
  }
  text += '\n';
  AtomicWriteBytes(path, text.data(), text.size(), atomic);
}

nlohmann::json ReadJsonFile(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw FileError(path, "no such file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw FileError(path, "cannot open");
  std::stringstream buffer;
  buffer << in.rdbuf();
  try {
    return nlohmann::json::parse(buffer.str());
  } catch (const nlohmann::json::exception& e) {
    throw FileError(path, std::string("invalid JSON: ") + e.what());
  }
}

}  // namespace livealign
