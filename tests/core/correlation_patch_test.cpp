#include "core/correlation_patch.hpp"

#include <catch2/catch.hpp>

#include <complex>
#include <random>
#include <vector>

#include "core/fft.hpp"

namespace livealign {
namespace {

using Catch::Matchers::WithinAbs;

// The spectrum of a random real image with everything outside a
// band.rows x band.cols crop (and the crop's Nyquist) zeroed: a band-limited
// product like the template registration's.
struct BandLimited {
  std::vector<std::complex<float>> band;  // band half spectrum
  std::vector<float> map;                 // c2r of the zero-padded band, full size
};

BandLimited MakeBandLimited(Shape frame, Shape band, unsigned seed) {
  RealFft2d fft(frame);
  std::mt19937 rng(seed);
  std::normal_distribution<float> noise(0, 1);
  for (int k = 0; k < frame.rows * frame.cols; ++k) fft.real()[k] = noise(rng);
  fft.Forward();
  const int band_cols = band.cols / 2 + 1;
  BandLimited out;
  out.band.assign(static_cast<std::size_t>(band.rows) * band_cols, {});
  std::vector<std::complex<float>> padded(fft.spectrum_size());
  for (int r = 0; r < band.rows; ++r) {
    const int fy = SignedFrequency(r, band.rows);
    if (r == band.rows / 2) continue;  // the crop's Nyquist row
    const int full_row = fy < 0 ? fy + frame.rows : fy;
    for (int c = 0; c + 1 < band_cols; ++c) {  // not the crop's Nyquist column
      const std::complex<float> v = fft.spectrum()[static_cast<std::size_t>(full_row) * fft.spectrum_cols() + c];
      out.band[static_cast<std::size_t>(r) * band_cols + c] = v;
      padded[static_cast<std::size_t>(full_row) * fft.spectrum_cols() + c] = v;
    }
  }
  std::copy(padded.begin(), padded.end(), fft.spectrum());
  fft.Inverse();
  out.map.assign(fft.real(), fft.real() + frame.rows * frame.cols);
  return out;
}

}  // namespace

TEST_CASE("the correlation patch equals the inverse FFT of the zero-padded band",
          "[core][correlation_patch]") {
  const Shape frame = GENERATE(Shape{128, 128}, Shape{96, 160});
  const Shape band{frame.rows / 2, frame.cols / 2};
  const BandLimited b = MakeBandLimited(frame, band, 5);
  double scale = 0;
  for (float v : b.map) scale = std::max(scale, double{std::abs(v)});
  CorrelationPatch patch;
  // Around the origin (wrapping to the far edges) and away from it.
  const int y0 = GENERATE(-3, 40), x0 = GENERATE(-2, 70);
  patch.Evaluate(b.band.data(), band, frame, y0, y0 + 5, x0, x0 + 4);
  for (int y = y0; y <= y0 + 5; ++y) {
    for (int x = x0; x <= x0 + 4; ++x) {
      const int row = (y % frame.rows + frame.rows) % frame.rows;
      const int col = (x % frame.cols + frame.cols) % frame.cols;
      CAPTURE(frame, y, x);
      REQUIRE_THAT(patch.at(y, x),
                   WithinAbs(b.map[static_cast<std::size_t>(row) * frame.cols + col], 1e-5 * scale));
    }
  }
}

}  // namespace livealign
