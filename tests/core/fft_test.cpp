#include "core/fft.hpp"

#include <catch2/catch.hpp>

#include <cmath>

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
}  // namespace livealign
