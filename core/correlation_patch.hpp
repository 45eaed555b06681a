#pragma once
// The pixel-grid correlation map over a small rectangle, evaluated directly
// from a band half spectrum instead of by a full-size inverse FFT.
//
// Why: the template registration needs the map only within a few pixels of
// its initial guess (to pick the starting peak for Newton), and its product
// is band-limited. A full inverse FFT computes every pixel; summing the band
// for a 5 x 5 patch costs a small fraction of that and gives the same values
// (up to float rounding in the sums).
//
// Value at integer (x, y), with the Hermitian completion of a c2r transform
// (column 0 once, columns c > 0 twice):
//   map(x, y) = Re sum_r sum_c m_c h(r, c) exp(2 pi i (c x / frame.cols + fy(r) y / frame.rows))
// where fy(r) = SignedFrequency(r, band.rows) and m_0 = 1, m_c = 2; this is
// what FFTW's unnormalised c2r of the full-size, zero-padded product gives at
// pixel (y mod rows, x mod cols).
//
//   CorrelationPatch patch;
//   patch.Evaluate(product, band, frame_shape, -2, 2, -2, 2);
//   double v = patch.at(0, 1);  // map at y = 0, x = 1

#include <complex>
#include <vector>

#include "core/frame.hpp"

namespace livealign {

class CorrelationPatch {
 public:
  // Evaluates the map at every integer y in [y0, y1] and x in [x0, x1].
  // half_band is band.rows x (band.cols / 2 + 1), row-major.
  // Requires y0 <= y1 and x0 <= x1.
  void Evaluate(const std::complex<float>* half_band, Shape band, Shape frame, int y0, int y1,
                int x0, int x1);

  // The map at (y, x); requires y in [y0, y1] and x in [x0, x1] of the last
  // Evaluate.
  double at(int y, int x) const {
    return values_[static_cast<std::size_t>(y - y0_) * static_cast<std::size_t>(nx_) +
                   static_cast<std::size_t>(x - x0_)];
  }

 private:
  int y0_ = 0, x0_ = 0, nx_ = 0;
  std::vector<double> values_;
  std::vector<std::complex<float>> x_phases_;  // band_cols x nx, m_c folded in
  std::vector<std::complex<float>> row_sums_;  // band.rows x nx
  // exp(2 pi i t / n) for t in [0, n), for the n of the last call per axis:
  // every phase above is one of these, so a patch needs no cos or sin.
  struct Turns {
    int n = 0;
    std::vector<double> cos, sin;
    void Resize(int size);
  };
  Turns turns_x_, turns_y_;
};

}  // namespace livealign
