#include "core/engine_options.hpp"
#include "core/check.hpp"

#include <cmath>

namespace livealign {
namespace {
bool OneOf(const std::string& value, std::initializer_list<const char*> names) {
  for (const char* name : names) {
    if (value == name) return true;
  }
  return false;
}
}  // namespace

bool EngineOptions::Check(std::string* error) const {
  if (!OneOf(window, {"none", "hann", "tukey"}))
    return Fail(error, "window must be none, hann or tukey, not '" + window + "'");
  if (!(tukey_alpha >= 0 && tukey_alpha <= 1))
    return Fail(error, "tukey_alpha must be in [0, 1]");
  if (!OneOf(weight, {"none", "gaussian", "lowpass", "bandpass"}))
    return Fail(error, "weight must be none, gaussian, lowpass or bandpass, not '" + weight + "'");
  if (!(weight_sigma > 0 && weight_sigma <= 0.5))
    return Fail(error, "weight_sigma must be in (0, 0.5] cycles/px");
  if (!(weight_cutoff > 0 && weight_cutoff <= 0.5))
    return Fail(error, "weight_cutoff must be in (0, 0.5] cycles/px");
  if (!(weight_low >= 0 && weight_low < weight_cutoff))
    return Fail(error, "weight_low must be in [0, weight_cutoff)");
  if (!OneOf(correlation, {"cc", "pc", "hybrid"}))
    return Fail(error, "correlation must be cc, pc or hybrid, not '" + correlation + "'");
  if (!(hybrid_p >= 0 && hybrid_p <= 1)) return Fail(error, "hybrid_p must be in [0, 1]");
  if (!(max_shift_px >= 0)) return Fail(error, "max_shift_px must be >= 0 (0 = auto)");
  if (top_k < 1 || top_k > 32) return Fail(error, "top_k must be in [1, 32]");
  if (oversample != 1 && oversample != 2) return Fail(error, "oversample must be 1 or 2");
  if (refine_candidates < 1) return Fail(error, "refine_candidates must be >= 1");
  if (!(inlier_floor_px > 0)) return Fail(error, "inlier_floor_px must be > 0");
  if (solver_max_iterations < 1) return Fail(error, "solver_max_iterations must be >= 1");
  if (full_resolve_every < 1) return Fail(error, "full_resolve_every must be >= 1");
  if (!(pixel_size_x_A >= 0 && pixel_size_y_A >= 0))
    return Fail(error, "pixel sizes must be >= 0 (0 = unknown)");
  if (threads < 0) return Fail(error, "threads must be >= 0 (0 = all cores)");
  if (!(target_resolution_A >= 0)) return Fail(error, "target_resolution_A must be >= 0 (0 = none)");
  if (!(target_snr >= 0)) return Fail(error, "target_snr must be >= 0 (0 = none)");
  if (max_frames < 0) return Fail(error, "max_frames must be >= 0 (0 = no limit)");
  if (!(settled_A_per_s >= 0)) return Fail(error, "settled_A_per_s must be >= 0");
  if (!(settled_px_per_frame > 0)) return Fail(error, "settled_px_per_frame must be > 0");
  if (drift_window_frames < 2) return Fail(error, "drift_window_frames must be >= 2");
  if (!(min_overlap_fraction >= 0 && min_overlap_fraction <= 1))
    return Fail(error, "min_overlap_fraction must be in [0, 1]");
  if (!(full_resolve_growth >= 1)) return Fail(error, "full_resolve_growth must be >= 1");
  return true;
}

}  // namespace livealign
