#pragma once
// The precision stage: registers one frame against a template (a real-space,
// already aligned and better-averaged image of the same field of view) over the
// full Fourier band, to ~0.01 px.
//
// Method: both images are mean-subtracted and windowed (core/preprocess.hpp),
// transformed, and their cross-power spectrum h = W conj(T) F is formed with a
// light default weight (lowpass to 0 at Nyquist, which suppresses the noisiest
// frequencies and the spectrum corners). h is kept only on the band grid the
// weight allows (BandSize in core/fourier_weight.hpp; W is 0 beyond it, so
// nothing is lost), and the forward FFTs transform only the band's columns
// (RealFft2d::ForwardColumns). The correlation on the pixel grid is summed
// directly from the band over the search window (core/correlation_patch.hpp;
// a zero-padded full-size inverse FFT for a wide window); the highest local
// maximum among the pixels whose cell can hold a peak within
// +-search_radius_px (per axis) of the initial guess is refined
// by Newton iterations on the analytic band-limited correlation
// (MaximizeBandCorrelation in core/correlator.hpp).
//
// Window bias and how it is removed: the window stays put while the content
// moves, so windowed frame and windowed template are not exact translates and
// the peak is pulled toward 0 by ~1 % of the shift. After the first estimate s,
// both images are re-windowed with the same OVERLAP window placed on the
// content, m(x) = w(x) w(x - s) for the frame and m(x + s) for the template;
// for the true s these are exact translates of each other (noise-free), so the
// band-limited correlation peaks exactly at the shift. A couple of these
// fixed-point iterations (each two r2c and a Newton solve from s) remove the
// bias to < 0.01 px for any shift.
//
// Result convention: the returned shift s is frame_from_template: a feature at
// p in the template is at p + s in the frame (core/shift.hpp's j_from_i with
// i = template, j = frame). If the template sits at shift s_T in the series
// (usually the reference, 0), the frame's shift is s_T + s.
//
// Thread-safety: a TemplateRegistrar owns its FFT plan and buffers and is NOT
// thread-safe; use one instance per thread. RegisterToTemplate() is a one-shot
// convenience that plans a fresh instance per call (slower; fine for tests).
//
//   TemplateRegistrar registrar(shape, TemplateRegistrationOptions{});
//   registrar.SetTemplate(average.view());
//   for (const Frame& f : frames) {
//     TemplateRegistrationReport report;
//     Shift s = registrar.Register(f.view(), predicted[f], &report);
//   }
//
// The two spectra may also be computed apart, on different threads (by
// registrars of the same shape and options), and registered afterwards:
//
//   BandSpectrum t, f;
//   registrar_a.ComputeSpectrum(average.view(), &t);   // thread A
//   registrar_b.ComputeSpectrum(frame.view(), &f);     // thread B
//   Shift s = registrar_a.RegisterSpectra(t, average.view(), f, frame.view(), guess, &report);

#include <complex>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/correlation_patch.hpp"
#include "core/correlator.hpp"
#include "core/fft.hpp"
#include "core/fourier_weight.hpp"
#include "core/frame.hpp"
#include "core/preprocess.hpp"
#include "core/shift.hpp"

namespace livealign {

struct TemplateRegistrationOptions {
  WindowType window = WindowType::kTukey;
  double tukey_alpha = 0.25;
  // Light weight: flat to 0.25 cycles/px, raised cosine to 0 at Nyquist (0.5).
  FourierWeightOptions weight = [] {
    FourierWeightOptions w;
    w.type = FourierWeightType::kLowpass;
    w.cutoff_cycles_per_px = 0.5;
    w.rolloff_cycles_per_px = 0.25;
    return w;
  }();
  // The peak is searched within +-search_radius_px of the initial guess per
  // axis; keep it below half the shortest lattice vector to rule out hops.
  double search_radius_px = 3.0;
  double tolerance_px = 1e-4;  // Newton stops when a step is below this
  int max_iterations = 30;
  // Overlap-window re-registrations after the first estimate (see the file
  // comment); 0 leaves the ~1 %-of-shift window bias in. Ignored (no bias to
  // remove) when window is kNone.
  int overlap_iterations = 2;

  // False (with a reason) for bad window/weight options, a radius <= 0,
  // tolerance <= 0, max_iterations < 1 or overlap_iterations < 0.
  bool Check(std::string* error) const;
};

struct TemplateRegistrationReport {
  bool peak_in_window = false;  // a local maximum was found inside the window;
                                // if false, the window's highest point was used
  bool converged = false;       // Newton refinement converged
  int iterations = 0;       // Newton iterations of the last solve
  int overlap_iterations = 0;  // overlap-window re-registrations done
  // Correlation height at the result, normalised by the weighted energies of
  // frame and template (1 for a frame registered against itself).
  double height = 0;
};

// An image's pre-processed spectrum on a registrar's band grid, and its
// weighted energy (the normalisation of TemplateRegistrationReport::height).
struct BandSpectrum {
  std::vector<std::complex<float>> values;  // band half spectrum, row-major
  double energy = 0;
};

class TemplateRegistrar {
 public:
  // Throws std::invalid_argument for an empty shape or !options.Check().
  TemplateRegistrar(Shape shape, const TemplateRegistrationOptions& options);
  ~TemplateRegistrar();
  TemplateRegistrar(TemplateRegistrar&&) noexcept;
  TemplateRegistrar& operator=(TemplateRegistrar&&) noexcept;

  // Pre-processes and caches the template's spectrum; the view is not kept.
  // Throws std::invalid_argument on a shape mismatch.
  void SetTemplate(FrameView template_image);
  bool has_template() const { return has_template_; }

  // frame_from_template (see the file comment). report may be null.
  // Throws std::invalid_argument on a shape mismatch or when no template is set.
  Shift Register(FrameView frame, Shift initial_guess, TemplateRegistrationReport* report);

  // The steps of SetTemplate + Register apart. ComputeSpectrum pre-processes
  // and transforms one image (template or frame alike: both get the same
  // window). RegisterSpectra registers a frame against a template from their
  // spectra, which may come from another registrar of the same shape and
  // options; the images themselves are read by the overlap-window passes
  // only. Both throw std::invalid_argument on a shape mismatch.
  void ComputeSpectrum(FrameView image, BandSpectrum* out);
  // ComputeSpectrum's second half: the band of an image's spectrum that
  // another transform made (RealFft2d layout, `spectrum_cols` per row, at
  // least spectrum_columns() of them transformed), pre-processed with this
  // registrar's window (Preprocessor of the same type and alpha), into *out.
  // Reads only constant members: safe on any thread, beside other calls.
  void BandFromSpectrum(const std::complex<float>* spectrum, int spectrum_cols,
                        BandSpectrum* out) const;
  // The spectrum columns BandFromSpectrum reads: 0 .. spectrum_columns() - 1.
  int spectrum_columns() const { return band_.cols / 2 + 1; }
  Shift RegisterSpectra(const BandSpectrum& template_spectrum, FrameView template_image,
                        const BandSpectrum& frame_spectrum, FrameView frame, Shift initial_guess,
                        TemplateRegistrationReport* report);

  Shape shape() const { return shape_; }
  // The band grid the cross-power spectrum is kept on (shape() when the
  // weight has no band limit).
  Shape band() const { return band_; }

 private:
  // One overlap-window pass around the estimate s; returns the new estimate.
  BandPeak OverlapPass(FrameView template_image, FrameView frame, Shift s);
  // The band rows/columns of a spectrum (RealFft2d layout), into *out (band
  // half spectrum).
  void BandOfSpectrum(const std::complex<float>* spectrum, int spectrum_cols,
                      std::vector<std::complex<float>>* out) const;
  // The pixel-grid correlation of product_ over [y0, y1] x [x0, x1]; the
  // returned accessor (y, x) is valid until the next call.
  std::function<double(int, int)> PixelCorrelation(int y0, int y1, int x0, int x1);

  Shape shape_;
  TemplateRegistrationOptions options_;
  Preprocessor preprocessor_;
  Shape band_;
  std::vector<int> band_rows_;  // spectrum row of each band row
  std::vector<float> weight_;  // W on the band half spectrum (Nyquist rows/cols 0)
  RealFft2d fft_;
  std::vector<float> template_pixels_;  // kept for the overlap-window passes
  BandSpectrum template_spectrum_;
  BandSpectrum frame_spectrum_;
  std::vector<std::complex<float>> overlap_frame_spectrum_;
  std::vector<std::complex<float>> overlap_template_spectrum_;
  CorrelationPatch patch_;
  std::vector<float> frame_rows_, frame_cols_, template_rows_, template_cols_;  // overlap windows
  std::vector<std::complex<float>> product_;
  std::vector<std::complex<float>> ex_scratch_;
  bool has_template_ = false;
};

// One-shot: frame_from_template, as TemplateRegistrar::Register.
Shift RegisterToTemplate(FrameView frame, FrameView template_image, Shift initial_guess,
                         const TemplateRegistrationOptions& options,
                         TemplateRegistrationReport* report);

}  // namespace livealign
