#include "adapters/stack_reader.hpp"

#include <catch2/catch.hpp>

#include <optional>
#include <vector>

#include "adapters/file_error.hpp"
#include "adapters/npy_writer.hpp"
#include "adapters/tiff_io.hpp"
#include "tests/support/ramp_frames.hpp"
#include "tests/support/test_data.hpp"

namespace livealign {
namespace {

// Every frame of `reader`, checking that the end stays the end.
std::vector<Frame> Drain(StackFrameReader* reader) {
  std::vector<Frame> out;
  while (std::optional<Frame> frame = reader->Next()) out.push_back(std::move(*frame));
  CHECK_FALSE(reader->Next());
  return out;
}

}  // namespace

TEST_CASE("stack frame reader hands out the frames ReadFrameStack reads, for .npy, .tif and memory",
          "[adapters][stack_reader]") {
  const std::string dir = testing::ScratchDir("stack_frame_reader");
  const Shape shape{6, 9};
  const std::vector<Frame> frames = testing::RampFrames(4, shape);
  WriteNpy(dir + "/s.npy", frames);
  FrameStack tiff_stack;
  for (const Frame& f : frames) tiff_stack.frames.push_back(f.Clone());
  tiff_stack.pixel_size_A = 0.5;
  WriteTiffStack(dir + "/s.tif", tiff_stack);
  for (const std::string name : {"s.npy", "s.tif", "memory"}) {
    CAPTURE(name);
    const std::string path = dir + "/" + (name == std::string("memory") ? "s.npy" : name);
    const FrameStack whole = ReadFrameStack(path);
    std::optional<StackFrameReader> reader;
    if (name == std::string("memory")) {
      reader.emplace(ReadFrameStack(path));
    } else {
      reader.emplace(path);
    }
    CHECK(reader->frame_count() == 4);
    CHECK(reader->frame_shape() == shape);
    CHECK(reader->calibration().source == whole.source);
    CHECK(reader->calibration().pixel_size_A == whole.pixel_size_A);
    CHECK(reader->calibration().frames.empty());
    const std::vector<Frame> read = Drain(&*reader);
    REQUIRE(read.size() == 4);
    for (int k = 0; k < 4; ++k) CHECK(read[k].pixels() == frames[k].pixels());
  }
  CHECK_THROWS_AS(StackFrameReader(dir + "/s.png"), FileError);
  CHECK_THROWS_AS(StackFrameReader(dir + "/missing.npy"), FileError);
}

}  // namespace livealign
