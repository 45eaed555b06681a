#pragma once
// Pre-processing of a frame before its forward FFT: mean subtraction and a
// separable real-space edge window (apodisation).
//
// Why: the FFT treats the frame as periodic, so its non-matching edges put a
// bright cross through the spectrum and a spurious zero-shift ridge into every
// correlation (Savitzky et al., Ultramicroscopy 191, 2018, use a sin^2 window
// for the same reason). Tapering the edges to ~0 removes it.
//
// Window formulas (u = (n + 0.5) / N is the pixel centre in (0, 1), per axis):
//   kNone : w(u) = 1
//   kHann : w(u) = 0.5 * (1 - cos(2 pi u))                 (Tukey with alpha = 1)
//   kTukey: w(u) = 0.5 * (1 - cos(2 pi u / alpha))          for u < alpha / 2
//           w(u) = 1                                        for alpha/2 <= u <= 1 - alpha/2
//           w(u) = 0.5 * (1 - cos(2 pi (1 - u) / alpha))    for u > 1 - alpha / 2
// alpha is the fraction of each axis that is tapered (half at each end);
// alpha = 0 is no window, alpha = 1 is Hann. The 2-D window is w(row) * w(col).
//
// Mean subtraction uses the WINDOW-WEIGHTED mean m = sum(f w) / sum(w), so that
// the output (f - m) w has exactly zero sum (no DC term): a plain mean would
// leave a DC term whose window-shaped autocorrelation biases peaks toward 0.
//
// Preprocessor caches the two 1-D window tables for one shape; it is immutable
// after construction, so one instance may be shared by threads.
//
//   Preprocessor pre(WindowType::kTukey, 0.25, frame.shape());
//   pre.Apply(frame.view(), fft.real());
//   fft.Forward();

#include <optional>
#include <string_view>
#include <vector>

#include "core/frame.hpp"
#include "core/shift.hpp"

namespace livealign {

enum class WindowType { kNone, kHann, kTukey };

// "none" | "hann" | "tukey"; std::nullopt for anything else.
std::optional<WindowType> WindowTypeFromName(std::string_view name);
const char* WindowTypeName(WindowType type);

// The window at a (possibly fractional or out-of-range) pixel position p on an
// n-pixel axis: the formulas above with u = (p + 0.5) / n, and 0 for u outside
// [0, 1]. Used to place a window at a shifted position (template registration
// windows frame and template with the same, moved, overlap window).
// Requires: n >= 1 and, for kTukey, alpha in [0, 1] (not checked here).
double WindowValue(WindowType type, double tukey_alpha, double position_px, int n);

// Writes (frame - m) * row_window[r] * col_window[c] into out, where m is the
// window-weighted mean (so the output sums to 0). Requires: the tables hold
// frame.rows() and frame.cols() values and out holds frame.shape().Pixels().
void ApplySeparableWindow(FrameView frame, const float* row_window, const float* col_window,
                          float* out);

// The 1-D window of length n (formulas above).
// Throws std::invalid_argument when n < 1 or, for kTukey, alpha outside [0, 1].
std::vector<float> WindowTable(WindowType type, int n, double tukey_alpha);

class Preprocessor {
 public:
  // Throws std::invalid_argument for an empty shape or a bad alpha.
  Preprocessor(WindowType type, double tukey_alpha, Shape shape);

  // Writes (frame - weighted mean) * window into out, row-major with rows()
  // rows of cols() floats. Requires: out holds shape().Pixels() floats and does
  // not alias frame. Throws std::invalid_argument on a shape mismatch.
  // Non-finite pixels propagate (refuse them upstream with CountNonFinite()).
  void Apply(FrameView frame, float* out) const;

  // Gradient of log R(s) at shift s (pixels), where R(s) = Rx(s.x) Ry(s.y) and
  // Rx(s) = sum_n w(n) w((n + s) mod cols) is the window's cyclic
  // autocorrelation along x (cyclic like the FFT correlation),
  // normalised to R(0) = 1 (tabulated at integer s, derivative interpolated).
  // Why: windowed images that differ by a translation d correlate, on
  // average, as R_content(s - d) * R(s); the envelope R pulls peaks toward 0 by
  // ~1 % of |d|. Dividing by R removes that bias (see the correlator's
  // window-bias correction). Returns 0 where R vanishes (|s| near the size).
  Shift OverlapLogGradient(Shift s) const;

  Shape shape() const { return shape_; }
  WindowType type() const { return type_; }
  const std::vector<float>& row_window() const { return row_window_; }
  const std::vector<float>& col_window() const { return col_window_; }

 private:
  WindowType type_;
  Shape shape_;
  std::vector<float> row_window_;  // one value per row
  std::vector<float> col_window_;  // one value per column
  std::vector<double> row_log_slope_;  // d/ds log Ry at s = 0 .. rows-1
  std::vector<double> col_log_slope_;  // d/ds log Rx at s = 0 .. cols-1
};

}  // namespace livealign
