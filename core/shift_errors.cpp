#include "core/shift_errors.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace livealign {

ShiftErrors CompareShifts(const std::vector<Shift>& estimated, const std::vector<Shift>& truth,
                          const std::vector<bool>& skip) {
  if (estimated.size() != truth.size() || (!skip.empty() && skip.size() != truth.size())) {
    throw std::invalid_argument("CompareShifts: inputs differ in size");
  }
  auto used = [&](std::size_t i) { return skip.empty() || !skip[i]; };
  ShiftErrors e;
  Shift mean;
  for (std::size_t i = 0; i < truth.size(); ++i) {
    if (!used(i)) continue;
    mean += estimated[i] - truth[i];
    ++e.frames;
  }
  if (e.frames == 0) return e;
  mean = mean * (1.0 / e.frames);
  for (std::size_t i = 0; i < truth.size(); ++i) {
    if (!used(i)) continue;
    const Shift d = estimated[i] - truth[i] - mean;
    e.rms_x_px += d.x * d.x;
    e.rms_y_px += d.y * d.y;
    e.max_px = std::max(e.max_px, d.Norm());
  }
  e.rms_px = std::sqrt((e.rms_x_px + e.rms_y_px) / e.frames);
  e.rms_x_px = std::sqrt(e.rms_x_px / e.frames);
  e.rms_y_px = std::sqrt(e.rms_y_px / e.frames);
  return e;
}

}  // namespace livealign
