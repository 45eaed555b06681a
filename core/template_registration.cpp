#include "core/template_registration.hpp"
#include "core/check.hpp"

#include <algorithm>
#include <cmath>
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
  const int cols = fft_.spectrum_cols();
  weight_.assign(fft_.spectrum_size(), 0.0f);
  for (int r = 0; r < shape.rows; ++r) {
    // The Nyquist row/column stay 0: the Hermitian completion in
    // MaximizeBandCorrelation requires it.
    if (shape.rows % 2 == 0 && r == shape.rows / 2) continue;
    const double ky = static_cast<double>(SignedFrequency(r, shape.rows)) / shape.rows;
    for (int c = 0; c < cols; ++c) {
      if (shape.cols % 2 == 0 && c == shape.cols / 2) continue;
      weight_[static_cast<std::size_t>(r) * cols + c] =
          static_cast<float>(weight.At(static_cast<double>(c) / shape.cols, ky));
    }
  }
  template_spectrum_.resize(fft_.spectrum_size());
  product_.resize(fft_.spectrum_size());
}

TemplateRegistrar::~TemplateRegistrar() = default;
TemplateRegistrar::TemplateRegistrar(TemplateRegistrar&&) noexcept = default;
TemplateRegistrar& TemplateRegistrar::operator=(TemplateRegistrar&&) noexcept = default;

void TemplateRegistrar::SetTemplate(FrameView template_image) {
  if (template_image.shape() != shape_) {
    throw std::invalid_argument("TemplateRegistrar::SetTemplate: shape does not match");
  }
  template_pixels_.assign(template_image.data(), template_image.data() + shape_.Pixels());
  preprocessor_.Apply(template_image, fft_.real());
  fft_.Forward();
  std::copy(fft_.spectrum(), fft_.spectrum() + fft_.spectrum_size(), template_spectrum_.begin());
  const int cols = fft_.spectrum_cols();
  double energy = 0;
  for (std::size_t k = 0; k < template_spectrum_.size(); ++k) {
    energy += (k % cols == 0 ? 1.0 : 2.0) * weight_[k] * std::norm(template_spectrum_[k]);
  }
  template_energy_ = energy;
  has_template_ = true;
}

Shift TemplateRegistrar::Register(FrameView frame, Shift initial_guess,
                                  TemplateRegistrationReport* report) {
  if (!has_template_) throw std::invalid_argument("TemplateRegistrar::Register: no template set");
  if (frame.shape() != shape_) {
    throw std::invalid_argument("TemplateRegistrar::Register: shape does not match");
  }
  TemplateRegistrationReport local;
  TemplateRegistrationReport& rep = report ? *report : local;
  rep = {};

  preprocessor_.Apply(frame, fft_.real());
  fft_.Forward();
  const int cols = fft_.spectrum_cols();
  double frame_energy = 0;
  const cfloat* f = fft_.spectrum();
  for (std::size_t k = 0; k < product_.size(); ++k) {
    frame_energy += (k % cols == 0 ? 1.0 : 2.0) * weight_[k] * std::norm(f[k]);
    product_[k] = weight_[k] * std::conj(template_spectrum_[k]) * f[k];
  }
  double norm = std::sqrt(frame_energy * template_energy_);
  if (!(norm > 0)) norm = 1.0;

  // Pixel-grid correlation (c2r destroys its input, so transform a copy).
  std::copy(product_.begin(), product_.end(), fft_.spectrum());
  fft_.Inverse();
  const float* map = fft_.real();
  auto at = [&](int ry, int rx) {
    return map[static_cast<std::size_t>(Mod(ry, shape_.rows)) * shape_.cols + Mod(rx, shape_.cols)];
  };
  const double radius = options_.search_radius_px;
  const int y0 = static_cast<int>(std::ceil(initial_guess.y - radius));
  const int y1 = static_cast<int>(std::floor(initial_guess.y + radius));
  const int x0 = static_cast<int>(std::ceil(initial_guess.x - radius));
  const int x1 = static_cast<int>(std::floor(initial_guess.x + radius));
  int best_y = static_cast<int>(std::lround(initial_guess.y));
  int best_x = static_cast<int>(std::lround(initial_guess.x));
  float best = -INFINITY, best_any = -INFINITY;
  int any_y = best_y, any_x = best_x;
  for (int ry = y0; ry <= y1; ++ry) {
    for (int rx = x0; rx <= x1; ++rx) {
      const float v = at(ry, rx);
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
  const BandPeak peak = MaximizeBandCorrelation(product_.data(), shape_, shape_, start, 1.0,
                                                options_.tolerance_px, options_.max_iterations,
                                                &ex_scratch_);
  Shift s = CorrectWindowBias(peak, preprocessor_.OverlapLogGradient(peak.position));
  rep.converged = peak.converged;
  rep.iterations = peak.iterations;
  rep.height = peak.value / norm;
  // With no window there is no moving-window bias, and the overlap "window"
  // would be a hard-edged box (not band-limited): skip the passes.
  const int passes = options_.window == WindowType::kNone ? 0 : options_.overlap_iterations;
  for (int pass = 0; pass < passes; ++pass) {
    const BandPeak refined = OverlapPass(frame, s);
    const double moved = (refined.position - s).Norm();
    s = refined.position;
    rep.converged = refined.converged;
    rep.iterations = refined.iterations;
    rep.overlap_iterations = pass + 1;
    if (moved < options_.tolerance_px) break;
  }
  return s;
}

BandPeak TemplateRegistrar::OverlapPass(FrameView frame, Shift s) {
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

  const FrameView template_view(template_pixels_.data(), shape_);
  ApplySeparableWindow(template_view, template_rows_.data(), template_cols_.data(), fft_.real());
  fft_.Forward();
  overlap_template_spectrum_.assign(fft_.spectrum(), fft_.spectrum() + fft_.spectrum_size());
  ApplySeparableWindow(frame, frame_rows_.data(), frame_cols_.data(), fft_.real());
  fft_.Forward();
  const cfloat* f = fft_.spectrum();
  for (std::size_t k = 0; k < product_.size(); ++k) {
    product_[k] = weight_[k] * std::conj(overlap_template_spectrum_[k]) * f[k];
  }
  return MaximizeBandCorrelation(product_.data(), shape_, shape_, s, 1.0, options_.tolerance_px,
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
