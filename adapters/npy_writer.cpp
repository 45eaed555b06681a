#include "adapters/npy_writer.hpp"

#include <cstdio>
#include <stdexcept>

#include "adapters/atomic_file.hpp"
#include "adapters/file_error.hpp"

namespace livealign {

void WriteNpy(const std::string& path, const std::vector<Frame>& frames) {
  if (frames.empty()) throw std::invalid_argument("WriteNpy: no frames");
  const Shape shape = frames.front().shape();
  for (const Frame& f : frames) {
    if (f.shape() != shape) throw std::invalid_argument("WriteNpy: frames differ in shape");
  }
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
  if (frames.size() > 1) dict += std::to_string(frames.size()) + ", ";
  dict += std::to_string(shape.rows) + ", " + std::to_string(shape.cols) + "), }";
  // Magic (6) + version (2) + length (2) + header, padded with spaces and
  // ended by '\n' to a multiple of 64 bytes, as numpy writes it.
  std::string header = dict;
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  AtomicWrite(path, [&](const std::string& tmp_path) {
    std::FILE* file = std::fopen(tmp_path.c_str(), "wb");
    if (!file) throw FileError(path, "cannot open for writing");
    const unsigned char preamble[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                                        static_cast<unsigned char>(header.size() & 0xff),
                                        static_cast<unsigned char>(header.size() >> 8)};
    bool ok = std::fwrite(preamble, 1, sizeof preamble, file) == sizeof preamble &&
              std::fwrite(header.data(), 1, header.size(), file) == header.size();
    for (const Frame& f : frames) {
      // float32 little-endian is the machine's own layout (x86-64, aarch64).
      ok = ok && std::fwrite(f.data(), sizeof(float), f.pixels().size(), file) == f.pixels().size();
    }
    ok = std::fclose(file) == 0 && ok;
    if (!ok) throw FileError(path, "write failed");
  });
}

}  // namespace livealign
