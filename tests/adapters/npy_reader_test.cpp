#include "adapters/npy_reader.hpp"
#include "adapters/npy_writer.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "adapters/file_error.hpp"
#include "tests/adapters/random_corruption.hpp"
#include "tests/support/test_data.hpp"

namespace livealign {
namespace {

using Catch::Matchers::Contains;
using Catch::Matchers::WithinAbs;

// An .npy file as numpy.save writes it: magic, version, little-endian header
// length, the dict padded with spaces to a multiple of 64 and ending in '\n'.
std::string NpyBytes(const std::string& dict, const std::string& data, int major = 1) {
  const std::size_t prefix = major == 1 ? 10 : 12;
  std::string header = dict;
  const std::size_t total = prefix + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string out = "\x93NUMPY";
  out += static_cast<char>(major);
  out += '\0';
  const std::uint32_t len = static_cast<std::uint32_t>(header.size());
  out += static_cast<char>(len & 0xff);
  out += static_cast<char>((len >> 8) & 0xff);
  if (major != 1) {
    out += static_cast<char>((len >> 16) & 0xff);
    out += static_cast<char>((len >> 24) & 0xff);
  }
  return out + header + data;
}

std::string Dict(const std::string& descr, const std::string& shape, bool fortran = false) {
  return "{'descr': '" + descr + "', 'fortran_order': " + (fortran ? "True" : "False") +
         ", 'shape': " + shape + ", }";
}

// Element values that every dtype represents exactly (negative only for signed).
template <typename T>
std::string Elements(std::size_t n, bool big_endian) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    T v = static_cast<T>(std::is_signed<T>::value ? static_cast<double>(i) - 7.0
                                                   : static_cast<double>(i * 3 % 251));
    if (std::is_floating_point<T>::value) v = static_cast<T>(static_cast<double>(v) + 0.5);
    char bytes[sizeof(T)];
    std::memcpy(bytes, &v, sizeof(T));
    if (big_endian) std::reverse(bytes, bytes + sizeof(T));
    out.append(bytes, sizeof(T));
  }
  return out;
}

template <typename T>
float Expected(std::size_t i) {
  double v = std::is_signed<T>::value ? static_cast<double>(i) - 7.0
                                      : static_cast<double>(i * 3 % 251);
  if (std::is_floating_point<T>::value) v += 0.5;
  return static_cast<float>(v);
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

template <typename T>
void CheckDtype(const std::string& dir, const std::string& code, bool big_endian) {
  const std::string descr = (sizeof(T) == 1 ? "|" : (big_endian ? ">" : "<")) + code;
  CAPTURE(descr);
  const std::string path = dir + "/" + code + (big_endian ? "_be" : "_le") + ".npy";
  // 3 frames of 4 rows x 5 cols.
  WriteFile(path, NpyBytes(Dict(descr, "(3, 4, 5)"), Elements<T>(60, big_endian)));
  const FrameStack stack = ReadNpy(path);
  REQUIRE(stack.size() == 3);
  REQUIRE(stack.shape() == Shape{4, 5});
  CHECK(stack.source == path);
  CHECK_FALSE(stack.pixel_size_A);
  for (int f = 0; f < 3; ++f) {
    CHECK(stack.frames[f].header().index == f);
    CHECK(std::isnan(stack.frames[f].header().timestamp_s));
    for (int r = 0; r < 4; ++r) {
      for (int c = 0; c < 5; ++c) {
        REQUIRE(stack.frames[f].at(r, c) == Expected<T>(f * 20 + r * 5 + c));
      }
    }
  }
}

// Asserts that ReadNpy(path) throws a FileError naming the file and `problem`.
void RequireFileError(const std::string& path, const std::string& problem) {
  try {
    ReadNpy(path);
    FAIL("no FileError for " << path);
  } catch (const FileError& e) {
    INFO(e.what());
    CHECK(e.path() == path);
    CHECK_THAT(std::string(e.what()), Contains(path) && Contains(problem));
    CHECK(std::string(e.what()).find('\n') == std::string::npos);
  }
}

}  // namespace

TEST_CASE("npy reader reads every supported dtype in both byte orders", "[adapters][npy]") {
  const std::string dir = testing::ScratchDir("npy_dtypes");
  for (bool big_endian : {false, true}) {
    CheckDtype<std::uint8_t>(dir, "u1", big_endian);
    CheckDtype<std::uint16_t>(dir, "u2", big_endian);
    CheckDtype<std::uint32_t>(dir, "u4", big_endian);
    CheckDtype<std::int16_t>(dir, "i2", big_endian);
    CheckDtype<std::int32_t>(dir, "i4", big_endian);
    CheckDtype<float>(dir, "f4", big_endian);
    CheckDtype<double>(dir, "f8", big_endian);
  }
}

TEST_CASE("npy reader reads a 2-D array as one frame, in every format version",
          "[adapters][npy]") {
  const std::string dir = testing::ScratchDir("npy_2d");
  const int major = GENERATE(1, 2, 3);
  CAPTURE(major);
  const std::string path = dir + "/single_v" + std::to_string(major) + ".npy";
  WriteFile(path, NpyBytes(Dict("<f4", "(6, 7)"), Elements<float>(42, false), major));
  const NpyHeader header = ReadNpyHeader(path);
  CHECK(header.version_major == major);
  CHECK(header.frame_count() == 1);
  CHECK(header.data_offset % 64 == 0);
  const FrameStack stack = ReadNpy(path);
  REQUIRE(stack.size() == 1);
  REQUIRE(stack.shape() == Shape{6, 7});
  CHECK(stack.frames[0].at(5, 6) == Expected<float>(41));
  CHECK(stack.frames[0].header().index == 0);
}

TEST_CASE("npy reader accepts Python 2 long suffixes and double-quoted keys",
          "[adapters][npy]") {
  const std::string dir = testing::ScratchDir("npy_py2");
  const std::string path = dir + "/py2.npy";
  WriteFile(path, NpyBytes("{\"descr\": \"<u2\", \"fortran_order\": False, \"shape\": (2L, 3L)}",
                           Elements<std::uint16_t>(6, false)));
  const FrameStack stack = ReadNpy(path);
  REQUIRE(stack.shape() == Shape{2, 3});
  CHECK(stack.frames[0].at(1, 2) == Expected<std::uint16_t>(5));
}

TEST_CASE("npy reader takes the pixel size from the sidecar json", "[adapters][npy]") {
  const std::string dir = testing::ScratchDir("npy_sidecar");
  const std::string path = dir + "/calibrated.npy";
  WriteFile(path, NpyBytes(Dict("<f4", "(2, 2)"), Elements<float>(4, false)));

  SECTION("no sidecar: uncalibrated") { CHECK_FALSE(ReadNpy(path).pixel_size_A); }
  SECTION("isotropic number") {
    WriteFile(dir + "/calibrated.json", R"({"kind": "single", "pixel_size_A": 0.0920239})");
    const FrameStack stack = ReadNpy(path);
    REQUIRE(stack.pixel_size_A);
    CHECK_THAT(*stack.pixel_size_A, WithinAbs(0.0920239, 1e-12));
    CHECK_FALSE(stack.pixel_size_y_A);
  }
  SECTION("[y, x] pair") {
    WriteFile(dir + "/calibrated.json", R"({"pixel_size_A": [0.2, 0.1]})");
    const FrameStack stack = ReadNpy(path);
    REQUIRE(stack.pixel_size_A);
    REQUIRE(stack.pixel_size_y_A);
    CHECK_THAT(*stack.pixel_size_A, WithinAbs(0.1, 1e-12));
    CHECK_THAT(*stack.pixel_size_y_A, WithinAbs(0.2, 1e-12));
  }
  SECTION("null means uncalibrated") {
    WriteFile(dir + "/calibrated.json", R"({"pixel_size_A": null})");
    CHECK_FALSE(ReadNpy(path).pixel_size_A);
  }
  SECTION("invalid sidecars are refused, naming the sidecar") {
    const std::string sidecar = dir + "/calibrated.json";
    const std::string text = GENERATE(std::string("{not json"), std::string(R"({"pixel_size_A": "0.1"})"),
                                      std::string(R"({"pixel_size_A": -1})"),
                                      std::string(R"({"pixel_size_A": [1, 2, 3]})"));
    CAPTURE(text);
    WriteFile(sidecar, text);
    try {
      ReadNpy(path);
      FAIL("no FileError");
    } catch (const FileError& e) {
      CHECK(e.path() == sidecar);
      CHECK_THAT(std::string(e.what()), Contains("calibrated.json"));
    }
  }
}

TEST_CASE("npy reader refuses corrupt and unsupported files with one clear line",
          "[adapters][npy]") {
  const std::string dir = testing::ScratchDir("npy_corrupt");
  const std::string good = NpyBytes(Dict("<f4", "(4, 4, 4)"), Elements<float>(64, false));

  SECTION("missing file") { RequireFileError(dir + "/absent.npy", "no such file"); }
  SECTION("directory") { RequireFileError(dir, "directory"); }
  SECTION("empty file") {
    WriteFile(dir + "/empty.npy", "");
    RequireFileError(dir + "/empty.npy", "empty file");
  }
  SECTION("bad magic") {
    std::string bytes = good;
    bytes[1] = 'X';
    WriteFile(dir + "/magic.npy", bytes);
    RequireFileError(dir + "/magic.npy", "bad magic");
  }
  SECTION("too short for a preamble") {
    WriteFile(dir + "/short.npy", "\x93NUM");
    RequireFileError(dir + "/short.npy", "not an npy file");
  }
  SECTION("unsupported version") {
    std::string bytes = good;
    bytes[6] = 4;
    WriteFile(dir + "/v4.npy", bytes);
    RequireFileError(dir + "/v4.npy", "unsupported npy format version 4.0");
  }
  SECTION("truncated header") {
    WriteFile(dir + "/header.npy", good.substr(0, 40));
    RequireFileError(dir + "/header.npy", "truncated header");
  }
  SECTION("truncated data") {
    WriteFile(dir + "/data.npy", good.substr(0, good.size() - 10));
    RequireFileError(dir + "/data.npy", "truncated: header says 4x4x4 <f4 (256 bytes), file holds 246 bytes");
  }
  SECTION("trailing data") {
    WriteFile(dir + "/trailing.npy", good + "xx");
    RequireFileError(dir + "/trailing.npy", "trailing data");
  }
  SECTION("unsupported dtypes") {
    const std::string descr = GENERATE(std::string("<i8"), std::string("|i1"), std::string("<f2"),
                                       std::string("<c8"), std::string("|O"), std::string("|u2"));
    CAPTURE(descr);
    WriteFile(dir + "/dtype.npy", NpyBytes(Dict(descr, "(2, 2)"), std::string(32, '\0')));
    RequireFileError(dir + "/dtype.npy", "unsupported dtype '" + descr + "'");
  }
  SECTION("structured dtype") {
    WriteFile(dir + "/struct.npy",
              NpyBytes("{'descr': [('a', '<f4'), ('b', '<f4')], 'fortran_order': False, "
                       "'shape': (2, 2), }",
                       std::string(32, '\0')));
    RequireFileError(dir + "/struct.npy", "unsupported dtype");
  }
  SECTION("fortran order") {
    WriteFile(dir + "/fortran.npy", NpyBytes(Dict("<f4", "(4, 4, 4)", true), Elements<float>(64, false)));
    RequireFileError(dir + "/fortran.npy", "fortran_order");
  }
  SECTION("wrong rank") {
    const std::string shape = GENERATE(std::string("(64,)"), std::string("(2, 2, 4, 4)"), std::string("()"));
    CAPTURE(shape);
    WriteFile(dir + "/rank.npy", NpyBytes(Dict("<f4", shape), Elements<float>(64, false)));
    RequireFileError(dir + "/rank.npy", "unsupported shape");
  }
  SECTION("zero-sized axis") {
    WriteFile(dir + "/zero.npy", NpyBytes(Dict("<f4", "(0, 512, 512)"), ""));
    RequireFileError(dir + "/zero.npy", "empty array");
  }
  SECTION("absurd shapes never allocate") {
    const std::string shape =
        GENERATE(std::string("(40, 512, 512)"), std::string("(1000000000, 1000000000)"),
                 std::string("(2000000000, 1048576, 1048576)"),
                 std::string("(99999999999999999999, 4)"));
    CAPTURE(shape);
    WriteFile(dir + "/absurd.npy", NpyBytes(Dict("<f4", shape), Elements<float>(64, false)));
    try {
      ReadNpy(dir + "/absurd.npy");
      FAIL("no FileError");
    } catch (const FileError& e) {
      INFO(e.what());
      CHECK_THAT(std::string(e.what()), Contains("absurd.npy") &&
                                            (Contains("truncated") || Contains("absurd") ||
                                             Contains("overflow")));
    }
  }
  SECTION("garbled header dict") {
    WriteFile(dir + "/garbled.npy", NpyBytes("{'descr' '<f4', 'shape': (2, 2)}", std::string(16, '\0')));
    RequireFileError(dir + "/garbled.npy", "corrupt header");
  }
  SECTION("header without a shape") {
    WriteFile(dir + "/noshape.npy", NpyBytes("{'descr': '<f4', 'fortran_order': False}", std::string(16, '\0')));
    RequireFileError(dir + "/noshape.npy", "missing");
  }
}

TEST_CASE("npy reader survives random corruption: a frame stack or a FileError, nothing else",
          "[adapters][npy]") {
  const std::string dir = testing::ScratchDir("npy_mutations");
  const std::string good = NpyBytes(Dict("<u2", "(3, 8, 8)"), Elements<std::uint16_t>(192, false));
  // Damage the header region most of the time: that is where parsing lives.
  testing::CorruptionPlan plan;
  plan.seed = 1234;
  plan.max_edits = 4;
  plan.focus_bytes = 128;
  const int refused = testing::ReadRandomCorruptions(good, dir + "/m.npy", plan, ReadNpy);
  CHECK(refused > 0);
}

TEST_CASE("npy reader reads the real 5-frame STO movie with its pixel size",
          "[adapters][npy][realdata]") {
  const auto path = testing::SharedDataFile("hsdemos_sto_abf_movie_5f.npy");
  if (!path) {
    // Catch2 v2 has no SKIP: warn and pass.
    WARN("skipped: ../shared/data/npy/hsdemos_sto_abf_movie_5f.npy is absent");
    return;
  }
  const FrameStack stack = ReadNpy(*path);
  REQUIRE(stack.size() == 5);
  CHECK(stack.shape() == Shape{512, 512});
  REQUIRE(stack.pixel_size_A);
  CHECK_THAT(*stack.pixel_size_A, WithinAbs(0.0920, 0.0005));
  for (const Frame& frame : stack.frames) {
    CHECK(CountNonFinite(frame) == 0);
    const auto [lo, hi] = std::minmax_element(frame.pixels().begin(), frame.pixels().end());
    CHECK(*hi > *lo);  // real image content, not zeros
  }
}

}  // namespace livealign

namespace livealign {
namespace {

TEST_CASE("WriteNpy output reads back exactly, 2-D and 3-D", "[adapters][npy]") {
  const std::string dir = testing::ScratchDir("npy_writer");
  std::vector<Frame> frames;
  for (int k = 0; k < 3; ++k) {
    Frame f(Shape{5, 7});
    for (int i = 0; i < 35; ++i) f.data()[i] = 0.5f * i - k;
    frames.push_back(std::move(f));
  }
  WriteNpy(dir + "/stack.npy", frames);
  const FrameStack stack = ReadNpy(dir + "/stack.npy");
  REQUIRE(stack.frames.size() == 3);
  for (int k = 0; k < 3; ++k) CHECK(stack.frames[k].pixels() == frames[k].pixels());
  std::vector<Frame> one;
  one.push_back(frames[1].Clone());
  WriteNpy(dir + "/one.npy", one);
  const NpyHeader header = ReadNpyHeader(dir + "/one.npy");
  CHECK(header.dims.size() == 2);
  CHECK_THROWS_AS(WriteNpy(dir + "/none.npy", {}), std::invalid_argument);
}

TEST_CASE("npy channel reader splits a 4-D stack along either leading axis", "[adapters][npy][channels]") {
  const std::string dir = testing::ScratchDir("npy_channels");
  // (2, 3, 4, 5): element i of the file is image i / 20, pixel i % 20.
  const std::string path = dir + "/four.npy";
  WriteFile(path, NpyBytes(Dict("<f4", "(2, 3, 4, 5)"), Elements<float>(120, false)));
  SECTION("axis 1: (frames, channels, rows, cols)") {
    const std::vector<FrameStack> channels = ReadNpyChannels(path, 1);
    REQUIRE(channels.size() == 3);
    for (std::size_t c = 0; c < 3; ++c) {
      REQUIRE(channels[c].frames.size() == 2);
      CHECK(channels[c].shape() == Shape{4, 5});
      for (std::size_t f = 0; f < 2; ++f) {
        CHECK(channels[c].frames[f].data()[7] == Expected<float>((f * 3 + c) * 20 + 7));
        CHECK(channels[c].frames[f].header().index == static_cast<frame_id_t>(f));
      }
    }
  }
  SECTION("axis 0: (channels, frames, rows, cols)") {
    const std::vector<FrameStack> channels = ReadNpyChannels(path, 0);
    REQUIRE(channels.size() == 2);
    REQUIRE(channels[1].frames.size() == 3);
    CHECK(channels[1].frames[2].data()[0] == Expected<float>((1 * 3 + 2) * 20));
  }
  CHECK_THROWS_AS(ReadNpyChannels(path, 2), FileError);
  CHECK_THROWS_AS(ReadNpy(path), FileError);  // 4-D needs a channel axis
  const std::string three = dir + "/three.npy";
  WriteFile(three, NpyBytes(Dict("<f4", "(2, 4, 5)"), Elements<float>(40, false)));
  CHECK_THROWS_AS(ReadNpyChannels(three, 1), FileError);
  WriteFile(dir + "/short.npy", NpyBytes(Dict("<f4", "(2, 3, 4, 5)"), Elements<float>(119, false)));
  CHECK_THROWS_AS(ReadNpyChannels(dir + "/short.npy", 1), FileError);
}

}  // namespace

TEST_CASE("npy frame reader streams the frames ReadNpy reads, and stops cleanly",
          "[adapters][npy]") {
  const std::string dir = testing::ScratchDir("npy_frame_reader");
  for (bool big_endian : {false, true}) {
    CAPTURE(big_endian);
    // <f4 is read straight into the frame, >f4 through the byte-swap buffer.
    const std::string path = dir + (big_endian ? "/be.npy" : "/le.npy");
    WriteFile(path, NpyBytes(Dict(big_endian ? ">f4" : "<f4", "(3, 4, 5)"),
                             Elements<float>(60, big_endian)));
    const FrameStack whole = ReadNpy(path);
    NpyFrameReader reader(path);
    CHECK(reader.header().frame_count() == 3);
    CHECK(reader.calibration().source == path);
    CHECK(reader.calibration().frames.empty());
    for (int f = 0; f < 3; ++f) {
      std::optional<Frame> frame = reader.Next();
      REQUIRE(frame);
      CHECK(frame->header().index == f);
      CHECK(frame->pixels() == whole.frames[f].pixels());
    }
    CHECK_FALSE(reader.Next());
    CHECK_FALSE(reader.Next());
  }
}

TEST_CASE("npy frame reader reads any frame at its offset, from several threads, beside Next",
          "[adapters][npy]") {
  const std::string dir = testing::ScratchDir("npy_read_at");
  // <f4 is read straight into the frame; >u2 through the buffer, swapped
  // and converted.
  for (const char* descr : {"<f4", ">u2"}) {
    CAPTURE(descr);
    const bool big_endian = descr[0] == '>';
    const std::string path = dir + "/stack" + (big_endian ? "_be" : "_le") + ".npy";
    WriteFile(path, NpyBytes(Dict(descr, "(4, 3, 5)"),
                             big_endian ? Elements<std::uint16_t>(60, true) : Elements<float>(60, false)));
    const FrameStack whole = ReadNpy(path);
    NpyFrameReader reader(path);
    REQUIRE(reader.Next());  // the stream's position must not matter
    // Catch2 assertions are not thread-safe: the threads only read, the
    // checks follow the join.
    std::vector<std::vector<float>> got(4);
    std::vector<frame_id_t> indices(4, kInvalidFrameId);
    std::vector<std::thread> threads;
    for (int f = 3; f >= 0; --f) {
      threads.emplace_back([&reader, &got, &indices, f] {
        const Frame frame = reader.ReadAt(f);
        got[static_cast<std::size_t>(f)] = frame.pixels();
        indices[static_cast<std::size_t>(f)] = frame.header().index;
      });
    }
    for (std::thread& t : threads) t.join();
    for (int f = 0; f < 4; ++f) {
      CHECK(indices[static_cast<std::size_t>(f)] == f);
      CHECK(got[static_cast<std::size_t>(f)] == whole.frames[f].pixels());
    }
    // Next goes on from where it was.
    const std::optional<Frame> second = reader.Next();
    REQUIRE(second);
    CHECK(second->header().index == 1);
    CHECK_THROWS_AS(reader.ReadAt(4), std::out_of_range);
    CHECK_THROWS_AS(reader.ReadAt(-1), std::out_of_range);
  }
}

TEST_CASE("npy frame reader: a frame read at its offset from a file cut short is a FileError",
          "[adapters][npy]") {
  const std::string dir = testing::ScratchDir("npy_read_at_cut");
  const std::string path = dir + "/cut.npy";
  WriteFile(path, NpyBytes(Dict("<f4", "(3, 4, 5)"), Elements<float>(60, false)));
  const std::vector<float> frame0 = ReadNpy(path).frames[0].pixels();
  NpyFrameReader reader(path);
  // Another process truncates the file in the middle of frame 1.
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 30 * sizeof(float));
  CHECK(reader.ReadAt(0).pixels() == frame0);  // whole frames still read
  try {
    reader.ReadAt(2);
    FAIL("no FileError for the cut frame");
  } catch (const FileError& e) {
    CHECK(e.path() == path);
    CHECK_THAT(std::string(e.what()), Contains("truncated") && Contains("frame 2"));
  }
}

TEST_CASE("npy frame reader: a file cut short while streaming is a FileError after the whole frames",
          "[adapters][npy]") {
  const std::string dir = testing::ScratchDir("npy_frame_reader_cut");
  const std::string path = dir + "/cut.npy";
  WriteFile(path, NpyBytes(Dict("<f4", "(3, 4, 5)"), Elements<float>(60, false)));
  NpyFrameReader reader(path);
  // Another process truncates the file in the middle of frame 1.
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 30 * sizeof(float));
  REQUIRE(reader.Next());
  try {
    reader.Next();
    FAIL("no FileError for the cut frame");
  } catch (const FileError& e) {
    CHECK(e.path() == path);
    CHECK_THAT(std::string(e.what()), Contains("truncated"));
  }
}

}  // namespace livealign
