#include "adapters/fft_wisdom_file.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "adapters/atomic_file.hpp"
#include "core/fft.hpp"

namespace livealign {

std::string DefaultFftWisdomPath() {
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec || exe.empty()) return "";
  return (exe.parent_path() / "fftw_wisdom").string();
}

bool LoadFftWisdomFile(const std::string& path, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot open " + path;
    return false;
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    *error = "cannot read " + path;
    return false;
  }
  if (!ImportFftWisdom(text.str())) {
    *error = path + " is not FFTW wisdom this FFTW accepts";
    return false;
  }
  return true;
}

void SaveFftWisdomFile(const std::string& path) {
  const std::string wisdom = ExportFftWisdom();
  AtomicWriteBytes(path, wisdom.data(), wisdom.size());
}

}  // namespace livealign
