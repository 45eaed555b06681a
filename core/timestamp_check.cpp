#include "core/timestamp_check.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace livealign {

bool TimestampCheck::PlausibleAfter(const Stamp& before, const Stamp& now) const {
  const double dt = now.time_s - before.time_s;
  if (!(dt > 0)) return false;
  if (intervals_.size() < kMinIntervals) return true;
  const double steps = static_cast<double>(std::max<frame_id_t>(1, now.index - before.index));
  const double per_step = dt / steps;
  std::vector<double> sorted(intervals_.begin(), intervals_.end());
  std::nth_element(sorted.begin(), sorted.begin() + sorted.size() / 2, sorted.end());
  const double median = sorted[sorted.size() / 2];
  return per_step <= kMaxIntervalRatio * median && per_step * kMaxIntervalRatio >= median;
}

void TimestampCheck::Accept(const Stamp& before, const Stamp& now) {
  const double steps = static_cast<double>(std::max<frame_id_t>(1, now.index - before.index));
  intervals_.push_back((now.time_s - before.time_s) / steps);
  if (intervals_.size() > kRecentIntervals) intervals_.pop_front();
}

double TimestampCheck::Judge(frame_id_t index, double time_s) {
  if (!std::isfinite(time_s)) return std::nan("");
  const Stamp now{index, time_s};
  if (!last_ || PlausibleAfter(*last_, now)) {
    if (last_) Accept(*last_, now);
    last_ = now;
    pending_.reset();
    return time_s;
  }
  // Implausible after the last good frame. If it follows the previous
  // implausible one at the usual rate, the clock jumped (forwards or back)
  // and runs on: the new clock is taken from here.
  if (pending_ && PlausibleAfter(*pending_, now)) {
    Accept(*pending_, now);
    last_ = now;
    pending_.reset();
    return time_s;
  }
  pending_ = now;
  ++implausible_;
  return std::nan("");
}

}  // namespace livealign
