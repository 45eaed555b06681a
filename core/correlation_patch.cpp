#include "core/correlation_patch.hpp"

#include <Eigen/Core>

#include <cmath>

#include "core/check.hpp"
#include "core/fft.hpp"

namespace livealign {

void CorrelationPatch::Turns::Resize(int size) {
  if (size == n) return;
  n = size;
  cos.resize(static_cast<std::size_t>(n));
  sin.resize(static_cast<std::size_t>(n));
  for (int t = 0; t < n; ++t) {
    const double angle = 2 * M_PI * static_cast<double>(t) / n;
    cos[static_cast<std::size_t>(t)] = std::cos(angle);
    sin[static_cast<std::size_t>(t)] = std::sin(angle);
  }
}

void CorrelationPatch::Evaluate(const std::complex<float>* half_band, Shape band, Shape frame,
                                int y0, int y1, int x0, int x1) {
  using cfloat = std::complex<float>;
  using RowMajor = Eigen::Matrix<cfloat, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const int band_cols = band.cols / 2 + 1;
  const int nx = x1 - x0 + 1, ny = y1 - y0 + 1;
  y0_ = y0;
  x0_ = x0;
  nx_ = nx;
  // Phases from integer products reduced mod the frame size, in double, so
  // they stay exact however far the patch is from the origin.
  turns_x_.Resize(frame.cols);
  turns_y_.Resize(frame.rows);
  x_phases_.resize(static_cast<std::size_t>(band_cols) * nx);
  for (int c = 0; c < band_cols; ++c) {
    const float m = c == 0 ? 1.0f : 2.0f;
    for (int j = 0; j < nx; ++j) {
      const std::size_t turn = static_cast<std::size_t>(Mod(c * (x0 + j), frame.cols));
      x_phases_[static_cast<std::size_t>(c) * nx + j] =
          m * cfloat(static_cast<float>(turns_x_.cos[turn]), static_cast<float>(turns_x_.sin[turn]));
    }
  }
  row_sums_.resize(static_cast<std::size_t>(band.rows) * nx);
  const Eigen::Map<const RowMajor> h(half_band, band.rows, band_cols);
  const Eigen::Map<const RowMajor> e(x_phases_.data(), band_cols, nx);
  Eigen::Map<RowMajor> p(row_sums_.data(), band.rows, nx);
  p.noalias() = h * e;
  values_.assign(static_cast<std::size_t>(ny) * nx, 0.0);
  for (int r = 0; r < band.rows; ++r) {
    const int fy = SignedFrequency(r, band.rows);
    for (int i = 0; i < ny; ++i) {
      const std::size_t turn = static_cast<std::size_t>(Mod(fy * (y0 + i), frame.rows));
      const double cy = turns_y_.cos[turn], sy = turns_y_.sin[turn];
      double* out = &values_[static_cast<std::size_t>(i) * nx];
      for (int j = 0; j < nx; ++j) {
        const cfloat q = p(r, j);
        out[j] += cy * q.real() - sy * q.imag();
      }
    }
  }
}

}  // namespace livealign
