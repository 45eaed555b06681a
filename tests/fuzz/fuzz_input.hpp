#pragma once
// Helpers shared by the libFuzzer targets in tests/fuzz/ (built with
// -DLIVEALIGN_FUZZ=ON; see tools/fuzz).
//
// Multipart inputs: a fuzz input is cut into parts, each written as a 2-byte
// little-endian length followed by that many bytes; a length running past the
// end takes what is left. The seeds in tests/fuzz/corpus/ use this layout
// (tests/fuzz/make_seeds.py writes them), so the fuzzer starts from valid messages.

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace livealign::fuzz {

inline std::vector<std::string_view> SplitParts(const std::uint8_t* data, std::size_t size,
                                                std::size_t max_parts = 8) {
  std::vector<std::string_view> parts;
  const char* p = reinterpret_cast<const char*>(data);
  std::size_t left = size;
  while (left >= 2 && parts.size() < max_parts) {
    std::size_t n = static_cast<std::size_t>(static_cast<unsigned char>(p[0])) |
                    (static_cast<std::size_t>(static_cast<unsigned char>(p[1])) << 8);
    p += 2;
    left -= 2;
    if (n > left) n = left;
    parts.emplace_back(p, n);
    p += n;
    left -= n;
  }
  return parts;
}

// The readers under test take a path: the input goes to one scratch file per
// process (in /dev/shm when present, so it stays in memory).
inline std::string WriteScratch(const std::uint8_t* data, std::size_t size,
                                const std::string& suffix) {
  static const std::string path = [&] {
    const char* dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    return std::string(dir) + "/livealign_fuzz_" + std::to_string(getpid()) + suffix;
  }();
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) __builtin_trap();
  if (size > 0 && std::fwrite(data, 1, size, f) != size) __builtin_trap();
  std::fclose(f);
  return path;
}

}  // namespace livealign::fuzz
