#pragma once
// Radial Fourier weights W(|k|) for correlations, and the band (crop) size a
// weight allows.
//
// Frequencies are in cycles per pixel (Nyquist 0.5); for an N-pixel axis,
// FFT index f (signed) is f / N cycles/px, and |k| = hypot(fx / cols, fy / rows).
// Formulas (k = |k|):
//   none     : W = 1                                            (band limit: none)
//   gaussian : W = exp(-k^2 / (2 sigma^2)) for k < cutoff, 0 for k >= cutoff
//   lowpass  : W = 1                                            for k <= cutoff - rolloff
//              W = 0.5 (1 + cos(pi (k - cutoff + rolloff) / rolloff))  in between
//              W = 0                                            for k >= cutoff
//   bandpass : W = H(k) * L(k), where L is `lowpass` with cutoff = high and
//              H(k) = 0.5 (1 - cos(pi k / low)) for k < low, 1 otherwise
//              (a raised-cosine high-pass from 0 at DC to 1 at `low`).
// Every weight except `none` is exactly 0 for k >= band_limit (cutoff, cutoff,
// high): this is what makes the cropped inverse FFT exact: the product is then
// band-limited, so the cropped map is the full map sampled every N/M px.
//
// Band size rule (per axis of n pixels): the crop keeps signed frequencies
// -M/2 .. M/2 - 1 and the correlator zeroes the crop's Nyquist (-M/2), so it is
// exact when every frequency with W != 0, i.e. |f| < band_limit * n, satisfies
// |f| <= M/2 - 1. BandSize() returns the smallest FFT-friendly even M
// (2^a 3^b 5^c) with M/2 >= ceil(band_limit * n), capped at n (no crop).
// Example: 512 px, band limit 0.125 -> M = 128; 1024 -> 256; 500 -> 128.
//
// FourierWeight is an immutable value; share it between threads freely.

#include <optional>
#include <string>
#include <string_view>

namespace livealign {

enum class FourierWeightType { kNone, kGaussian, kLowpass, kBandpass };

// "none" | "gaussian" | "lowpass" | "bandpass"; std::nullopt otherwise.
std::optional<FourierWeightType> FourierWeightTypeFromName(std::string_view name);
const char* FourierWeightTypeName(FourierWeightType type);

struct FourierWeightOptions {
  // Default: a Gaussian matched filter for smooth, low-dose STEM content. The
  // cutoff 0.125 cycles/px gives a band of N/4 per axis (16x fewer cached
  // numbers); sigma 0.05 puts the cutoff at 2.5 sigma, where W = 0.044, so the
  // truncation step is small.
  FourierWeightType type = FourierWeightType::kGaussian;
  double sigma_cycles_per_px = 0.05;    // gaussian width
  double cutoff_cycles_per_px = 0.125;  // gaussian truncation / lowpass zero
  // Width of the lowpass raised-cosine roll-off (also used at `high` for
  // bandpass); larger is smoother (broader peaks) but passes less signal.
  double rolloff_cycles_per_px = 0.04;
  double low_cycles_per_px = 0.01;    // bandpass: high-pass reaches 1 here
  double high_cycles_per_px = 0.125;  // bandpass: low-pass reaches 0 here

  // False (with a reason in *error, if given) for non-positive widths,
  // cutoffs above 0.5*sqrt(2), rolloff > cutoff, or low >= high.
  bool Check(std::string* error) const;
};

class FourierWeight {
 public:
  // Throws std::invalid_argument when !options.Check().
  explicit FourierWeight(const FourierWeightOptions& options);

  // W at radial frequency k (cycles/px, k >= 0).
  double operator()(double k_cycles_per_px) const;
  // W at the 2-D frequency (kx, ky) in cycles/px.
  double At(double kx_cycles_per_px, double ky_cycles_per_px) const;

  // The |k| at and beyond which W is exactly 0; +infinity for `none`.
  double band_limit_cycles_per_px() const;

  const FourierWeightOptions& options() const { return options_; }

 private:
  FourierWeightOptions options_;
};

// True when n is even and has no prime factors other than 2, 3, 5.
bool IsFftFriendlyEven(int n);

// Smallest FFT-friendly even M with M / 2 >= ceil(band_limit * n), capped at n
// (returns n when no crop is possible or the band limit is infinite).
// Throws std::invalid_argument when n < 1 or band_limit <= 0.
int BandSize(double band_limit_cycles_per_px, int n);

}  // namespace livealign
