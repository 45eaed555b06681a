#pragma once
// Shared by the reader tests: damage a good file at random, many times, and
// require each read to give a non-empty stack or a FileError naming the file,
// never anything else (a crash, another exception, an empty stack).

#include <catch2/catch.hpp>

#include <fstream>
#include <functional>
#include <random>
#include <string>

#include "adapters/file_error.hpp"
#include "adapters/frame_stack.hpp"

namespace livealign::testing {

struct CorruptionPlan {
  std::uint32_t seed = 1;
  int trials = 300;
  int max_edits = 4;           // bytes overwritten per trial: 1 .. max_edits
  std::size_t focus_bytes = 0;  // > 0: edit only the first bytes (the header)
                                // except every 4th trial; 0: anywhere
};

// Returns how many damaged copies the reader refused (callers check > 0, so
// the damage was real).
inline int ReadRandomCorruptions(const std::string& good, const std::string& path,
                                 const CorruptionPlan& plan,
                                 const std::function<FrameStack(const std::string&)>& read) {
  std::mt19937 rng(plan.seed);
  int refused = 0;
  for (int trial = 0; trial < plan.trials; ++trial) {
    std::string bytes = good;
    const int edits = 1 + static_cast<int>(rng() % static_cast<unsigned>(plan.max_edits));
    for (int e = 0; e < edits; ++e) {
      const bool anywhere = plan.focus_bytes == 0 || trial % 4 == 0;
      const std::size_t at = rng() % (anywhere ? bytes.size() : plan.focus_bytes);
      bytes[at] = static_cast<char>(rng() % 256);
    }
    if (trial % 5 == 0) bytes.resize(rng() % bytes.size());
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
    try {
      const FrameStack stack = read(path);
      CHECK(!stack.empty());
    } catch (const FileError& e) {
      ++refused;
      CHECK(e.path() == path);
    }
  }
  return refused;
}

}  // namespace livealign::testing
