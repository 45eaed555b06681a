#include "core/temporal_check.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace livealign {
namespace {

double Median(std::vector<double> values) {
  if (values.empty()) return 0.0;
  auto middle = values.begin() + static_cast<std::ptrdiff_t>(values.size() / 2);
  std::nth_element(values.begin(), middle, values.end());
  return *middle;
}

}  // namespace

bool TemporalCheckOptions::Check(std::string* error) const {
  auto fail = [error](const char* message) {
    if (error) *error = message;
    return false;
  };
  if (!(spike_threshold_px > 0)) return fail("spike_threshold_px must be > 0");
  return true;
}

TemporalCheckReport TemporalCheck(const std::vector<Shift>& shifts,
                                  const std::vector<double>& timestamps,
                                  const std::optional<HopTest>& hops,
                                  const TemporalCheckOptions& options) {
  std::string error;
  if (!options.Check(&error)) throw std::invalid_argument("TemporalCheck: " + error);
  if (!timestamps.empty() && timestamps.size() != shifts.size()) {
    throw std::invalid_argument("TemporalCheck: timestamps and shifts differ in size");
  }
  TemporalCheckReport report;
  const int n = static_cast<int>(shifts.size());
  if (n < 3) return report;
  bool use_index = timestamps.empty();
  for (int k = 1; k < n && !use_index; ++k) {
    if (!std::isfinite(timestamps[k]) || !std::isfinite(timestamps[k - 1]) ||
        !(timestamps[k] > timestamps[k - 1])) {
      use_index = true;  // unknown or non-increasing times: frame index instead
    }
  }
  auto time = [&](int k) { return use_index ? static_cast<double>(k) : timestamps[k]; };

  // Robust drift velocity (median first difference per unit time, per axis).
  std::vector<double> vx, vy;
  for (int k = 1; k < n; ++k) {
    const double dt = time(k) - time(k - 1);
    vx.push_back((shifts[k].x - shifts[k - 1].x) / dt);
    vy.push_back((shifts[k].y - shifts[k - 1].y) / dt);
  }
  const Shift velocity{Median(vx), Median(vy)};

  for (int k = 1; k + 1 < n; ++k) {
    const double t = (time(k) - time(k - 1)) / (time(k + 1) - time(k - 1));
    const Shift interpolated = shifts[k - 1] * (1 - t) + shifts[k + 1] * t;
    const Shift deviation = shifts[k] - interpolated;
    // A spike needs continuous neighbours: their gap is only drift. A step
    // puts the jump into this gap, so it is never mistaken for a spike.
    const Shift gap = (shifts[k + 1] - shifts[k - 1]) - velocity * (time(k + 1) - time(k - 1));
    if (gap.Norm() >= 0.5 * deviation.Norm()) continue;
    TemporalSpike spike;
    spike.frame = k;
    spike.deviation = deviation;
    if (hops) {
      const std::optional<LatticeVector> hop = hops->Hop(deviation);
      if (!hop) continue;
      spike.lattice_vector = *hop;
      spike.is_lattice_vector = true;
    } else if (deviation.Norm() <= options.spike_threshold_px) {
      continue;
    }
    report.spikes.push_back(spike);
  }
  return report;
}

}  // namespace livealign
