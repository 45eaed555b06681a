#include "core/fft.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

namespace livealign {
namespace {

using Catch::Matchers::WithinAbs;

TEST_CASE("forward then inverse FFT scales the image by its pixel count", "[core][fft]") {
  const Shape shape{8, 12};
  RealFft2d fft(shape);
  for (int i = 0; i < shape.Pixels(); ++i) fft.real()[i] = std::sin(0.3f * i) + 0.1f * i;
  std::vector<float> original(fft.real(), fft.real() + shape.Pixels());
  fft.Forward();
  fft.Inverse();
  for (int i = 0; i < shape.Pixels(); ++i) {
    REQUIRE_THAT(fft.real()[i] / shape.Pixels(), WithinAbs(original[i], 1e-4));
  }
}

TEST_CASE("a plane wave lands on its signed frequency", "[core][fft]") {
  const Shape shape{16, 16};
  RealFft2d fft(shape);
  const int ky = -3, kx = 2;
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 16; ++c)
      fft.real()[r * 16 + c] = std::cos(2 * M_PI * (ky * r + kx * c) / 16.0);
  fft.Forward();
  int best_r = 0, best_c = 0;
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < fft.spectrum_cols(); ++c)
      if (std::abs(fft.spectrum()[r * fft.spectrum_cols() + c]) >
          std::abs(fft.spectrum()[best_r * fft.spectrum_cols() + best_c])) {
        best_r = r;
        best_c = c;
      }
  CHECK(SignedFrequency(best_r, 16) == ky);
  CHECK(best_c == kx);
  CHECK(SignedFrequency(8, 16) == -8);
  CHECK(SignedFrequency(7, 16) == 7);
}

}  // namespace
TEST_CASE("forward transforms of the first columns match the full forward transform",
          "[core][fft]") {
  const Shape shape = GENERATE(Shape{32, 48}, Shape{30, 25});
  RealFft2d fft(shape);
  for (int i = 0; i < shape.Pixels(); ++i) fft.real()[i] = std::sin(0.37f * i) + 0.01f * (i % 17);
  const std::vector<float> image(fft.real(), fft.real() + shape.Pixels());
  fft.Forward();
  const std::vector<cfloat> full(fft.spectrum(), fft.spectrum() + fft.spectrum_size());
  const int columns = GENERATE(1, 7, 13);
  for (int repeat = 0; repeat < 2; ++repeat) {  // the second call reuses the plan
    std::fill(fft.spectrum(), fft.spectrum() + fft.spectrum_size(), cfloat{});
    fft.ForwardColumns(columns);
    for (int i = 0; i < shape.Pixels(); ++i) REQUIRE(fft.real()[i] == image[i]);  // preserved
    for (int r = 0; r < shape.rows; ++r) {
      for (int c = 0; c < columns; ++c) {
        const std::size_t k = static_cast<std::size_t>(r) * fft.spectrum_cols() + c;
        CAPTURE(shape, columns, r, c);
        REQUIRE_THAT(fft.spectrum()[k].real(), WithinAbs(full[k].real(), 1e-3));
        REQUIRE_THAT(fft.spectrum()[k].imag(), WithinAbs(full[k].imag(), 1e-3));
      }
    }
  }
  REQUIRE_THROWS_AS(fft.ForwardColumns(0), std::invalid_argument);
  REQUIRE_THROWS_AS(fft.ForwardColumns(fft.spectrum_cols() + 1), std::invalid_argument);
}

}  // namespace livealign
