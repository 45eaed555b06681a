#pragma once
// Single-precision 2-D real FFTs (FFTW) behind a move-only RAII class, so FFTW
// never appears in core's public headers.
//
// A RealFft2d owns the two aligned buffers a forward (r2c) and an inverse
// (c2r) transform of a shape run on; the plans are made once per shape for the
// process and shared by every instance. It is NOT thread-safe: give each
// worker thread its own instance (planning is serialised internally by a global
// lock, as FFTW requires; execution then runs concurrently).
//
//   RealFft2d fft(Shape{256, 256});
//   std::copy(image, image + 256 * 256, fft.real());
//   fft.Forward();                 // real() -> spectrum(), unnormalised
//   ... modify fft.spectrum() ...
//   fft.Inverse();                 // spectrum() -> real(); spectrum() is destroyed
//
// Layout: spectrum() is rows x (cols/2 + 1), row-major; entry (ky, kx) holds
// frequency (ky < rows/2 ? ky : ky - rows, kx) in cycles per frame.
// Forward followed by Inverse multiplies the image by rows * cols.

#include <complex>
#include <memory>
#include <string>

#include "core/frame.hpp"

namespace livealign {

using cfloat = std::complex<float>;

// The largest n' <= n whose prime factors are all 2, 3, 5 or 7 (n >= 1):
// FFTW plans and runs such sizes fastest, while a size with a large prime
// factor (a mosaic region of 506 = 2 * 11 * 23 rows, say) costs several times
// more to plan and to transform.
int FftFriendlySizeAtMost(int n);

class RealFft2d {
 public:
  // Requires: shape not empty.
  explicit RealFft2d(Shape shape);
  ~RealFft2d();
  RealFft2d(RealFft2d&&) noexcept;
  RealFft2d& operator=(RealFft2d&&) noexcept;
  RealFft2d(const RealFft2d&) = delete;
  RealFft2d& operator=(const RealFft2d&) = delete;

  Shape shape() const;
  int spectrum_cols() const { return shape().cols / 2 + 1; }
  std::size_t spectrum_size() const {
    return static_cast<std::size_t>(shape().rows) * spectrum_cols();
  }

  float* real();
  cfloat* spectrum();

  void Forward();  // real() -> spectrum()
  void Inverse();  // spectrum() -> real(); destroys spectrum()
  // Forward() for spectrum columns 0 .. columns-1 only (the others are left
  // undefined): every row's r2c, then the column transforms of just those
  // columns. Why: a band-limited use (a crop to |kx| < columns) needs a
  // fraction of the columns, and the column pass is half of a 2-D FFT.
  // The first call for a column count plans it (the planner lock, once).
  // Requires: 1 <= columns <= spectrum_cols(); real() is preserved.
  void ForwardColumns(int columns);
  // Plans ForwardColumns(columns) now, so that its first call does not.
  void PlanForwardColumns(int columns);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Plan quality. Plans are FFTW_ESTIMATE by default: made in microseconds
// from FFTW's cost model. Measured plans (FFTW_MEASURE) run up to twice as
// fast on this machine (a 2048^2 r2c 33 -> 17 ms; the 512-row pass of a 512^2
// band transform 0.51 -> 0.39 ms) but take up to seconds each to make, so
// they come from FFTW wisdom, made once per machine by `livealign
// fft-wisdom` and imported when a process starts (tools/livealign_main.cpp).
// A plan is made at the first use of its problem and then kept for the
// process, so these calls belong before the first RealFft2d.
enum class FftPlanning {
  kEstimate,  // the default
  kWisdom,    // measured plans from imported wisdom where it holds the problem, else estimated
  kMeasure,   // every new plan measured (seconds at 2048^2), for making wisdom
};
// Imports wisdom in FFTW's text form (fftwf_export_wisdom_to_string) and
// switches to kWisdom. False, planning unchanged, when FFTW rejects the text.
// A plan made from wisdom is the same plan in every process that imports the
// same wisdom, so results stay repeatable.
bool ImportFftWisdom(const std::string& wisdom);
// Switches to kMeasure.
void MeasureFftPlans();
// The wisdom of every plan measured or imported so far, in FFTW's text form.
std::string ExportFftWisdom();
FftPlanning CurrentFftPlanning();
const char* FftPlanningName(FftPlanning planning);  // "estimate", "wisdom", "measure"

// Signed frequency index for FFT row/column index k of an n-point transform.
// For even n, index n/2 (Nyquist) maps to -n/2.
inline int SignedFrequency(int k, int n) { return k < (n + 1) / 2 ? k : k - n; }

}  // namespace livealign
