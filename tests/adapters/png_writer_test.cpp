#include "adapters/png_writer.hpp"

#include <png.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "adapters/file_error.hpp"
#include "tests/support/test_data.hpp"

namespace livealign {
namespace {

using Catch::Matchers::WithinAbs;

struct DecodedPng {
  int width = 0, height = 0, channels = 0;
  std::vector<std::uint8_t> pixels;
};

// Reads a PNG back with libpng's simplified API, keeping its own format.
DecodedPng ReadPng(const std::string& path) {
  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  REQUIRE(png_image_begin_read_from_file(&image, path.c_str()) != 0);
  DecodedPng out;
  out.width = static_cast<int>(image.width);
  out.height = static_cast<int>(image.height);
  out.channels = static_cast<int>(PNG_IMAGE_SAMPLE_CHANNELS(image.format));
  // Ask for the stored layout, 8-bit, so nothing is converted.
  image.format = out.channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  out.channels = out.channels == 1 ? 1 : 3;
  out.pixels.resize(PNG_IMAGE_SIZE(image));
  REQUIRE(png_image_finish_read(&image, nullptr, out.pixels.data(), 0, nullptr) != 0);
  return out;
}

Frame Ramp(Shape shape) {
  Frame frame(shape);
  for (int r = 0; r < shape.rows; ++r) {
    for (int c = 0; c < shape.cols; ++c) frame.at(r, c) = static_cast<float>(r * shape.cols + c);
  }
  return frame;
}

}  // namespace

TEST_CASE("grey png spans 0..255 between the percentiles and reads back", "[adapters][png]") {
  const std::string dir = testing::ScratchDir("png_grey");
  Frame frame = Ramp({100, 120});
  frame.at(0, 0) = 1e9f;        // a hot pixel: must not squash the contrast
  frame.at(0, 1) = -1e9f;       // a dead one
  frame.at(0, 2) = std::nanf("");
  const ContrastRange range = WriteGreyPng(dir + "/grey.png", frame);
  CHECK(range.low > 0);
  CHECK(range.high < 100 * 120);
  const DecodedPng png = ReadPng(dir + "/grey.png");
  REQUIRE(png.width == 120);
  REQUIRE(png.height == 100);
  REQUIRE(png.channels == 1);
  const auto [lo, hi] = std::minmax_element(png.pixels.begin(), png.pixels.end());
  CHECK(*lo == 0);
  CHECK(*hi == 255);
  CHECK(png.pixels[0] == 255);  // hot pixel clipped to white
  CHECK(png.pixels[1] == 0);    // dead pixel clipped to black
  CHECK(png.pixels[2] == 0);    // NaN drawn black
  // The middle of the ramp sits mid-grey: contrast is linear.
  CHECK(std::abs(static_cast<int>(png.pixels[50 * 120 + 60]) - 128) <= 3);
  // Far more than 2 grey levels are used.
  std::vector<bool> seen(256, false);
  for (std::uint8_t v : png.pixels) seen[v] = true;
  CHECK(std::count(seen.begin(), seen.end(), true) > 250);
}

TEST_CASE("percentile range and scaling behave at the edges", "[adapters][png]") {
  const Frame ramp = Ramp({1, 101});  // values 0..100
  GreyPngOptions options;
  options.low_percentile = 10;
  options.high_percentile = 90;
  const ContrastRange range = PercentileRange(ramp, options);
  CHECK_THAT(range.low, WithinAbs(10, 1e-9));
  CHECK_THAT(range.high, WithinAbs(90, 1e-9));
  const std::vector<std::uint8_t> grey = ScaleToGrey8(ramp, range);
  CHECK(grey[5] == 0);
  CHECK(grey[10] == 0);
  CHECK(grey[50] == 128);
  CHECK(grey[90] == 255);
  CHECK(grey[100] == 255);

  // Shuffled values with repeats and NaNs: the nearest ranks of the finite
  // values, as a full sort gives them, for any pair of percentiles.
  Frame shuffled(Shape{37, 41});
  std::mt19937 random(7);
  std::uniform_int_distribution<int> level(0, 200);
  std::vector<float> finite;
  for (std::int64_t i = 0; i < shuffled.shape().Pixels(); ++i) {
    const bool nan = i % 17 == 3;
    shuffled.data()[i] = nan ? std::nanf("") : static_cast<float>(level(random)) * 0.5f;
    if (!nan) finite.push_back(shuffled.data()[i]);
  }
  std::sort(finite.begin(), finite.end());
  for (const auto& [low, high] : std::vector<std::pair<double, double>>{{0, 100}, {1, 99}, {50, 50.0001}, {37.5, 62.5}}) {
    CAPTURE(low, high);
    GreyPngOptions percentiles;
    percentiles.low_percentile = low;
    percentiles.high_percentile = high;
    const ContrastRange got = PercentileRange(shuffled, percentiles);
    auto rank = [&](double p) { return finite[static_cast<std::size_t>(std::llround(p / 100.0 * (finite.size() - 1)))]; };
    CHECK(got.low == rank(low));
    CHECK(got.high == rank(high));
  }

  Frame constant(Shape{4, 4});
  std::fill(constant.data(), constant.data() + 16, 7.0f);
  const std::vector<std::uint8_t> flat = ScaleToGrey8(constant, PercentileRange(constant));
  CHECK(std::all_of(flat.begin(), flat.end(), [](std::uint8_t v) { return v == 0; }));

  GreyPngOptions bad;
  bad.low_percentile = 60;
  bad.high_percentile = 40;
  std::string error;
  CHECK_FALSE(bad.Check(&error));
  CHECK_FALSE(error.empty());
  CHECK_THROWS_AS(PercentileRange(ramp, bad), std::invalid_argument);
  CHECK_THROWS_AS(EncodeGreyPng(FrameView()), std::invalid_argument);
}

TEST_CASE("rgb png round-trips the exact bytes", "[adapters][png]") {
  const std::string dir = testing::ScratchDir("png_rgb");
  RgbImage image(7, 5, Rgb{10, 20, 30});
  image.set(0, 0, Rgb{255, 0, 0});
  image.set(6, 4, Rgb{0, 0, 255});
  image.FillRect(2, 1, 3, 2, Rgb{0, 200, 0});
  WriteRgbPng(dir + "/rgb.png", image);
  const DecodedPng png = ReadPng(dir + "/rgb.png");
  REQUIRE(png.width == 7);
  REQUIRE(png.height == 5);
  REQUIRE(png.channels == 3);
  CHECK(png.pixels == image.rgb);

  CHECK_THROWS_AS(EncodeRgbPng(RgbImage()), std::invalid_argument);
  RgbImage broken(2, 2);
  broken.rgb.pop_back();
  CHECK_THROWS_AS(EncodeRgbPng(broken), std::invalid_argument);
}

TEST_CASE("png writers report unwritable paths as FileError", "[adapters][png]") {
  const std::string dir = testing::ScratchDir("png_unwritable");
  const std::string path = dir + "/no/such/dir/x.png";
  try {
    WriteRgbPng(path, RgbImage(2, 2));
    FAIL("no FileError");
  } catch (const FileError& e) {
    CHECK(e.path() == path);
    CHECK_THAT(std::string(e.what()), Catch::Matchers::Contains("x.png"));
  }
}

}  // namespace livealign
