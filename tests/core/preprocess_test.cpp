#include "core/preprocess.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <numeric>
#include <stdexcept>
#include <vector>

namespace livealign {
namespace {

using Catch::Matchers::WithinAbs;

TEST_CASE("window names parse and print back", "[core][preprocess]") {
  for (WindowType type : {WindowType::kNone, WindowType::kHann, WindowType::kTukey}) {
    REQUIRE(WindowTypeFromName(WindowTypeName(type)) == type);
  }
  REQUIRE_FALSE(WindowTypeFromName("hamming").has_value());
  REQUIRE_FALSE(WindowTypeFromName("").has_value());
}

TEST_CASE("a Tukey window is flat in the middle and tapers symmetrically", "[core][preprocess]") {
  const int n = 100;
  const std::vector<float> w = WindowTable(WindowType::kTukey, n, 0.2);
  // alpha = 0.2 tapers 10 px at each end.
  for (int i = 10; i < 90; ++i) REQUIRE(w[i] == 1.0f);
  REQUIRE(w[0] < 0.05f);
  REQUIRE(w[5] < w[9]);
  for (int i = 0; i < n; ++i) REQUIRE_THAT(w[i], WithinAbs(w[n - 1 - i], 1e-7));
  // u = 0.025 is the middle of the ramp: w = 0.5 (1 - cos(pi / 4 ... )) by formula.
  REQUIRE_THAT(w[2], WithinAbs(0.5 * (1 - std::cos(2 * M_PI * 0.025 / 0.2)), 1e-6));
}

TEST_CASE("Tukey with alpha 1 is Hann and alpha 0 is no window", "[core][preprocess]") {
  const std::vector<float> hann = WindowTable(WindowType::kHann, 64, 0.0);
  const std::vector<float> tukey1 = WindowTable(WindowType::kTukey, 64, 1.0);
  const std::vector<float> tukey0 = WindowTable(WindowType::kTukey, 64, 0.0);
  for (int i = 0; i < 64; ++i) {
    REQUIRE_THAT(hann[i], WithinAbs(tukey1[i], 1e-7));
    REQUIRE_THAT(hann[i], WithinAbs(0.5 * (1 - std::cos(2 * M_PI * (i + 0.5) / 64)), 1e-6));
    REQUIRE(tukey0[i] == 1.0f);
  }
}

TEST_CASE("bad window arguments throw", "[core][preprocess]") {
  REQUIRE_THROWS_AS(WindowTable(WindowType::kTukey, 10, 1.5), std::invalid_argument);
  REQUIRE_THROWS_AS(WindowTable(WindowType::kTukey, 10, -0.1), std::invalid_argument);
  REQUIRE_THROWS_AS(WindowTable(WindowType::kHann, 0, 0.25), std::invalid_argument);
  REQUIRE_THROWS_AS(Preprocessor(WindowType::kHann, 0.25, Shape{0, 5}), std::invalid_argument);
}

TEST_CASE("pre-processing removes the weighted mean and applies the window", "[core][preprocess]") {
  const Shape shape{24, 40};
  Frame frame(shape);
  for (int r = 0; r < shape.rows; ++r)
    for (int c = 0; c < shape.cols; ++c) frame.at(r, c) = 100.0f + std::sin(0.3 * r) * c * 0.1f;
  std::vector<float> out(static_cast<std::size_t>(shape.Pixels()));

  SECTION("tukey output sums to zero and vanishes towards the corners") {
    const Preprocessor pre(WindowType::kTukey, 0.25, shape);
    pre.Apply(frame.view(), out.data());
    const double sum = std::accumulate(out.begin(), out.end(), 0.0);
    REQUIRE_THAT(sum, WithinAbs(0.0, 1e-2));  // float rounding of 960 values ~100
    REQUIRE(std::abs(out[0]) < 0.05f * std::abs(out[12 * 40 + 20] + 1.0f));
    // Flat middle: differences of pixels are preserved exactly there.
    REQUIRE_THAT(out[12 * 40 + 20] - out[12 * 40 + 21],
                 WithinAbs(frame.at(12, 20) - frame.at(12, 21), 1e-4));
  }
  SECTION("no window subtracts the plain mean") {
    const Preprocessor pre(WindowType::kNone, 0.25, shape);
    pre.Apply(frame.view(), out.data());
    const double sum = std::accumulate(out.begin(), out.end(), 0.0);
    REQUIRE_THAT(sum, WithinAbs(0.0, 1e-2));  // float rounding of 960 values ~100
    REQUIRE_THAT(out[5] - out[6], WithinAbs(frame.view().data()[5] - frame.view().data()[6], 1e-4));
  }
  SECTION("a constant frame becomes zero") {
    Frame flat(shape);
    for (int r = 0; r < shape.rows; ++r)
      for (int c = 0; c < shape.cols; ++c) flat.at(r, c) = 7.5f;
    const Preprocessor pre(WindowType::kHann, 0.25, shape);
    pre.Apply(flat.view(), out.data());
    for (float v : out) REQUIRE_THAT(v, WithinAbs(0.0, 1e-5));
  }
  SECTION("a shape mismatch throws") {
    const Preprocessor pre(WindowType::kHann, 0.25, Shape{24, 41});
    REQUIRE_THROWS_AS(pre.Apply(frame.view(), out.data()), std::invalid_argument);
  }
}

}  // namespace
}  // namespace livealign
