#include "core/template_registration.hpp"
#include "core/check.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <stdexcept>


namespace livealign {
namespace {

double ThreePointOffset(double m, double z, double p) {
  const double denom = m - 2 * z + p;
  if (denom < 0) return std::clamp(0.5 * (m - p) / denom, -0.5, 0.5);
  return 0.0;
}

}  // namespace

bool TemplateRegistrationOptions::Check(std::string* error) const {
  if (window == WindowType::kTukey && !(tukey_alpha >= 0 && tukey_alpha <= 1))
    return Fail(error, "tukey_alpha must be in [0, 1]");
  std::string weight_error;
  if (!weight.Check(&weight_error)) return Fail(error, "weight: " + weight_error);
  if (!(search_radius_px > 0) || !std::isfinite(search_radius_px))
    return Fail(error, "search_radius_px must be > 0");
  if (!(tolerance_px > 0)) return Fail(error, "tolerance_px must be > 0");
  if (max_iterations < 1) return Fail(error, "max_iterations must be >= 1");
  if (overlap_iterations < 0) return Fail(error, "overlap_iterations must be >= 0");
  return true;
}

TemplateRegistrar::TemplateRegistrar(Shape shape, const TemplateRegistrationOptions& options)
    : shape_(shape),
      options_(options),
      preprocessor_(options.window, options.tukey_alpha, shape.Empty() ? Shape{1, 1} : shape),
      fft_(shape.Empty() ? Shape{1, 1} : shape) {
  if (shape.Empty()) throw std::invalid_argument("TemplateRegistrar: empty shape");
  std::string error;
  if (!options.Check(&error)) throw std::invalid_argument("TemplateRegistrar: " + error);
  const FourierWeight weight(options.weight);
  const double band_limit = weight.band_limit_cycles_per_px();
  band_ = std::isfinite(band_limit)
              ? Shape{BandSize(band_limit, shape.rows), BandSize(band_limit, shape.cols)}
              : shape;
  const int band_cols = band_.cols / 2 + 1;
  band_rows_.resize(static_cast<std::size_t>(band_.rows));
  weight_.assign(static_cast<std::size_t>(band_.rows) * band_cols, 0.0f);
  for (int r = 0; r < band_.rows; ++r) {
    const int fy = SignedFrequency(r, band_.rows);
    band_rows_[static_cast<std::size_t>(r)] = Mod(fy, shape.rows);
    // The Nyquist rows/columns (the band's and the frame's) stay 0: the
    // Hermitian completion in MaximizeBandCorrelation requires it.
    if (band_.rows % 2 == 0 && r == band_.rows / 2) continue;
    if (shape.rows % 2 == 0 && Mod(fy, shape.rows) == shape.rows / 2) continue;
    const double ky = static_cast<double>(fy) / shape.rows;
    for (int c = 0; c < band_cols; ++c) {
      if (band_.cols % 2 == 0 && c == band_.cols / 2) continue;
      if (shape.cols % 2 == 0 && c == shape.cols / 2) continue;
      weight_[static_cast<std::size_t>(r) * band_cols + c] =
          static_cast<float>(weight.At(static_cast<double>(c) / shape.cols, ky));
    }
  }
  product_.resize(weight_.size());
  // Planned now: a plan made in the first registration would stall it
  // (a live update's refinement) on the planner.
  fft_.PlanForwardColumns(band_.cols / 2 + 1);
}

// The spectrum comes from ForwardColumns: only the band's columns are
// transformed, which is all BandOfSpectrum reads.
void TemplateRegistrar::BandOfSpectrum(const cfloat* spectrum, int cols,
                                       std::vector<std::complex<float>>* out) const {
  const int band_cols = band_.cols / 2 + 1;
  out->resize(weight_.size());
  for (int r = 0; r < band_.rows; ++r) {
    const cfloat* from = spectrum + static_cast<std::size_t>(band_rows_[static_cast<std::size_t>(r)]) * cols;
    std::copy(from, from + band_cols, out->data() + static_cast<std::size_t>(r) * band_cols);
  }
}

TemplateRegistrar::~TemplateRegistrar() = default;
TemplateRegistrar::TemplateRegistrar(TemplateRegistrar&&) noexcept = default;
TemplateRegistrar& TemplateRegistrar::operator=(TemplateRegistrar&&) noexcept = default;

void TemplateRegistrar::SetTemplate(FrameView template_image) {
  if (template_image.shape() != shape_) {
    throw std::invalid_argument("TemplateRegistrar::SetTemplate: shape does not match");
  }
  if (options_.window != WindowType::kNone && options_.overlap_iterations > 0) {
    template_pixels_.assign(template_image.data(), template_image.data() + shape_.Pixels());
  }
  ComputeSpectrum(template_image, &template_spectrum_);
  has_template_ = true;
}

void TemplateRegistrar::ComputeSpectrum(FrameView image, BandSpectrum* out) {
  if (image.shape() != shape_) {
    throw std::invalid_argument("TemplateRegistrar::ComputeSpectrum: shape does not match");
  }
  preprocessor_.Apply(image, fft_.real());
  fft_.ForwardColumns(band_.cols / 2 + 1);
  BandFromSpectrum(fft_.spectrum(), fft_.spectrum_cols(), out);
}

void TemplateRegistrar::BandFromSpectrum(const cfloat* spectrum, int spectrum_cols,
                                         BandSpectrum* out) const {
  if (spectrum_cols != shape_.cols / 2 + 1) {
    throw std::invalid_argument("TemplateRegistrar::BandFromSpectrum: spectrum of another shape");
  }
  BandOfSpectrum(spectrum, spectrum_cols, &out->values);
  const int band_cols = band_.cols / 2 + 1;
  // Columns > 0 count twice (the Hermitian-complete band).
  double energy = 0;
  for (int r = 0; r < band_.rows; ++r) {
    const std::size_t row = static_cast<std::size_t>(r) * band_cols;
    const float* w = weight_.data() + row;
    const cfloat* v = out->values.data() + row;
    double sum = 0;
    for (int c = 1; c < band_cols; ++c) sum += double{w[c] * std::norm(v[c])};
    energy += 2 * sum + double{w[0] * std::norm(v[0])};
  }
  out->energy = energy;
}

Shift TemplateRegistrar::Register(FrameView frame, Shift initial_guess,
                                  TemplateRegistrationReport* report) {
  if (!has_template_) throw std::invalid_argument("TemplateRegistrar::Register: no template set");
  if (frame.shape() != shape_) {
    throw std::invalid_argument("TemplateRegistrar::Register: shape does not match");
  }
  ComputeSpectrum(frame, &frame_spectrum_);
  const FrameView template_view(template_pixels_.empty() ? nullptr : template_pixels_.data(),
                                template_pixels_.empty() ? Shape{} : shape_);
  return RegisterSpectra(template_spectrum_, template_view, frame_spectrum_, frame, initial_guess,
                         report);
}

Shift TemplateRegistrar::RegisterSpectra(const BandSpectrum& template_spectrum,
                                         FrameView template_image,
                                         const BandSpectrum& frame_spectrum, FrameView frame,
                                         Shift initial_guess, TemplateRegistrationReport* report) {
  if (template_spectrum.values.size() != weight_.size() ||
      frame_spectrum.values.size() != weight_.size()) {
    throw std::invalid_argument("TemplateRegistrar::RegisterSpectra: spectrum of another band");
  }
  // With no window there is no moving-window bias, and the overlap "window"
  // would be a hard-edged box (not band-limited): no passes, no images read.
  const int passes = options_.window == WindowType::kNone ? 0 : options_.overlap_iterations;
  if (passes > 0 && (template_image.shape() != shape_ || frame.shape() != shape_)) {
    throw std::invalid_argument("TemplateRegistrar::RegisterSpectra: shape does not match");
  }
  TemplateRegistrationReport local;
  TemplateRegistrationReport& rep = report ? *report : local;
  rep = {};

  const cfloat* f = frame_spectrum.values.data();
  const cfloat* t = template_spectrum.values.data();
  for (std::size_t k = 0; k < product_.size(); ++k) {
    product_[k] = weight_[k] * std::conj(t[k]) * f[k];
  }
  double norm = std::sqrt(frame_spectrum.energy * template_spectrum.energy);
  if (!(norm > 0)) norm = 1.0;

  // The pixel-grid correlation over the search window and its neighbours.
  // The window holds the pixels whose cell (+-1/2) can hold a peak within
  // the radius of the guess: the pixels closer than radius + 1/2. For a whole
  // guess these are the pixels within the radius; a fractional guess gets
  // the pixel beyond it that a peak near the window's edge rounds to.
  const double reach = options_.search_radius_px + 0.5;
  const int y0 = static_cast<int>(std::floor(initial_guess.y - reach)) + 1;
  const int y1 = static_cast<int>(std::ceil(initial_guess.y + reach)) - 1;
  const int x0 = static_cast<int>(std::floor(initial_guess.x - reach)) + 1;
  const int x1 = static_cast<int>(std::ceil(initial_guess.x + reach)) - 1;
  const int guess_y = static_cast<int>(std::lround(initial_guess.y));
  const int guess_x = static_cast<int>(std::lround(initial_guess.x));
  // The window's neighbours too, and the rounded guess's (the fallback
  // start when the window holds no pixel).
  const auto at = PixelCorrelation(std::min(y0, guess_y) - 1, std::max(y1, guess_y) + 1,
                                   std::min(x0, guess_x) - 1, std::max(x1, guess_x) + 1);
  int best_y = guess_y;
  int best_x = guess_x;
  double best = -INFINITY, best_any = -INFINITY;
  int any_y = best_y, any_x = best_x;
  for (int ry = y0; ry <= y1; ++ry) {
    for (int rx = x0; rx <= x1; ++rx) {
      const double v = at(ry, rx);
      if (v > best_any) {
        best_any = v;
        any_y = ry;
        any_x = rx;
      }
      if (v <= best) continue;
      bool is_max = true;
      for (int dy = -1; dy <= 1 && is_max; ++dy)
        for (int dx = -1; dx <= 1; ++dx)
          if ((dy != 0 || dx != 0) && at(ry + dy, rx + dx) > v) {
            is_max = false;
            break;
          }
      if (is_max) {
        best = v;
        best_y = ry;
        best_x = rx;
        rep.peak_in_window = true;
      }
    }
  }
  if (!rep.peak_in_window) {
    best_y = any_y;
    best_x = any_x;
  }
  const double z = at(best_y, best_x);
  const Shift start{best_x + ThreePointOffset(at(best_y, best_x - 1), z, at(best_y, best_x + 1)),
                    best_y + ThreePointOffset(at(best_y - 1, best_x), z, at(best_y + 1, best_x))};
  const BandPeak peak = MaximizeBandCorrelation(product_.data(), band_, shape_, start, 1.0,
                                                options_.tolerance_px, options_.max_iterations,
                                                &ex_scratch_);
  Shift s = CorrectWindowBias(peak, preprocessor_.OverlapLogGradient(peak.position));
  rep.converged = peak.converged;
  rep.iterations = peak.iterations;
  rep.height = peak.value / norm;
  for (int pass = 0; pass < passes; ++pass) {
    const BandPeak refined = OverlapPass(template_image, frame, s);
    const double moved = (refined.position - s).Norm();
    s = refined.position;
    rep.converged = refined.converged;
    rep.iterations = refined.iterations;
    rep.overlap_iterations = pass + 1;
    if (moved < options_.tolerance_px) break;
  }
  return s;
}

std::function<double(int, int)> TemplateRegistrar::PixelCorrelation(int y0, int y1, int x0,
                                                                     int x1) {
  // A window of a few pixels costs a fraction of an inverse FFT summed
  // directly; a wide one (a large search radius) is cheaper by the FFT of
  // the zero-padded band product.
  constexpr int kLargestDirectSide = 16;
  if (y1 - y0 < kLargestDirectSide && x1 - x0 < kLargestDirectSide) {
    patch_.Evaluate(product_.data(), band_, shape_, y0, y1, x0, x1);
    return [this](int ry, int rx) { return patch_.at(ry, rx); };
  }
  const int band_cols = band_.cols / 2 + 1;
  const int cols = fft_.spectrum_cols();
  cfloat* spectrum = fft_.spectrum();
  std::fill(spectrum, spectrum + fft_.spectrum_size(), cfloat{});
  for (int r = 0; r < band_.rows; ++r) {
    std::copy(product_.begin() + static_cast<std::ptrdiff_t>(r) * band_cols,
              product_.begin() + static_cast<std::ptrdiff_t>(r + 1) * band_cols,
              spectrum + static_cast<std::size_t>(band_rows_[static_cast<std::size_t>(r)]) * cols);
  }
  fft_.Inverse();
  const float* map = fft_.real();
  return [this, map](int ry, int rx) {
    return double{map[static_cast<std::size_t>(Mod(ry, shape_.rows)) * shape_.cols +
                      Mod(rx, shape_.cols)]};
  };
}

BandPeak TemplateRegistrar::OverlapPass(FrameView template_image, FrameView frame, Shift s) {
  const WindowType type = options_.window;
  const double alpha = options_.tukey_alpha;
  auto fill = [&](int n, double shift, std::vector<float>* on_frame, std::vector<float>* on_template) {
    on_frame->resize(static_cast<std::size_t>(n));
    on_template->resize(static_cast<std::size_t>(n));
    for (int k = 0; k < n; ++k) {
      const double w = WindowValue(type, alpha, k, n);
      (*on_frame)[k] = static_cast<float>(w * WindowValue(type, alpha, k - shift, n));
      (*on_template)[k] = static_cast<float>(w * WindowValue(type, alpha, k + shift, n));
    }
  };
  fill(shape_.rows, s.y, &frame_rows_, &template_rows_);
  fill(shape_.cols, s.x, &frame_cols_, &template_cols_);

  ApplySeparableWindow(template_image, template_rows_.data(), template_cols_.data(), fft_.real());
  fft_.ForwardColumns(band_.cols / 2 + 1);
  BandOfSpectrum(fft_.spectrum(), fft_.spectrum_cols(), &overlap_template_spectrum_);
  ApplySeparableWindow(frame, frame_rows_.data(), frame_cols_.data(), fft_.real());
  fft_.ForwardColumns(band_.cols / 2 + 1);
  BandOfSpectrum(fft_.spectrum(), fft_.spectrum_cols(), &overlap_frame_spectrum_);
  const cfloat* f = overlap_frame_spectrum_.data();
  for (std::size_t k = 0; k < product_.size(); ++k) {
    product_[k] = weight_[k] * std::conj(overlap_template_spectrum_[k]) * f[k];
  }
  return MaximizeBandCorrelation(product_.data(), band_, shape_, s, 1.0, options_.tolerance_px,
                                 options_.max_iterations, &ex_scratch_);
}

Shift RegisterToTemplate(FrameView frame, FrameView template_image, Shift initial_guess,
                         const TemplateRegistrationOptions& options,
                         TemplateRegistrationReport* report) {
  TemplateRegistrar registrar(template_image.shape(), options);
  registrar.SetTemplate(template_image);
  return registrar.Register(frame, initial_guess, report);
}

}  // namespace livealign
