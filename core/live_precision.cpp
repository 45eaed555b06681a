#include "core/live_precision.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <tuple>

#include "core/check.hpp"

namespace livealign {

bool LivePrecisionSchedule::Options::Check(std::string* error) const {
  if (per_update < 0) return Fail(error, "per_update must be >= 0");
  if (!(growth > 0) || !std::isfinite(growth)) return Fail(error, "growth must be finite and > 0");
  if (!(moved_px > 0) || !std::isfinite(moved_px)) return Fail(error, "moved_px must be finite and > 0");
  if (min_frames < 2) return Fail(error, "min_frames must be >= 2");
  return true;
}

LivePrecisionSchedule::LivePrecisionSchedule(Options options) : options_(options) {
  std::string error;
  if (!options_.Check(&error)) throw std::invalid_argument("LivePrecisionSchedule::Options: " + error);
}

void LivePrecisionSchedule::Resize(int n) { states_.resize(static_cast<std::size_t>(std::max(0, n))); }

std::vector<int> LivePrecisionSchedule::Select(int num_included,
                                               const std::vector<Shift>& pairwise_shifts,
                                               const std::vector<bool>& flagged, int budget) const {
  std::vector<int> chosen;
  const int n = static_cast<int>(states_.size());
  if (budget < 0) budget = options_.per_update;
  if (budget == 0 || num_included < options_.min_frames || n < 2) return chosen;
  if (static_cast<int>(pairwise_shifts.size()) != n || static_cast<int>(flagged.size()) != n)
    throw std::invalid_argument("LivePrecisionSchedule::Select: one shift and flag per frame needed");
  // The newest frame first: the drift message reports it.
  if (!flagged[n - 1]) chosen.push_back(n - 1);
  // Then by priority: never refined (oldest first), then growth ratio, then move.
  std::vector<std::tuple<int, double, double, int>> due;  // (class, -ratio, -move, index)
  for (int i = 1; i < n - 1; ++i) {
    if (flagged[i]) continue;
    const State& s = states_[static_cast<std::size_t>(i)];
    if (s.included_at_refine == 0) {
      due.emplace_back(0, 0.0, 0.0, i);
      continue;
    }
    const double ratio = static_cast<double>(num_included) / s.included_at_refine;
    const double move = (pairwise_shifts[i] - s.pairwise_at_refine).Norm();
    if (ratio >= 1.0 + options_.growth || move > options_.moved_px) {
      due.emplace_back(1, -ratio, -move, i);
    }
  }
  const std::size_t limit = static_cast<std::size_t>(budget);
  const std::size_t room = limit - std::min(chosen.size(), limit);
  if (due.size() > room) {
    std::partial_sort(due.begin(), due.begin() + static_cast<std::ptrdiff_t>(room), due.end());
    due.resize(room);
  } else {
    std::sort(due.begin(), due.end());
  }
  for (const auto& d : due) chosen.push_back(std::get<3>(d));
  if (chosen.size() > limit) chosen.resize(limit);
  return chosen;
}

std::vector<int> LivePrecisionSchedule::SelectNeverRefined(int num_included,
                                                           const std::vector<bool>& flagged) const {
  const int n = static_cast<int>(states_.size());
  if (static_cast<int>(flagged.size()) != n)
    throw std::invalid_argument("LivePrecisionSchedule::SelectNeverRefined: one flag per frame needed");
  std::vector<int> chosen;
  if (num_included < options_.min_frames) return chosen;
  for (int i = 1; i < n; ++i) {
    if (!flagged[i] && states_[static_cast<std::size_t>(i)].included_at_refine == 0) chosen.push_back(i);
  }
  return chosen;
}

void LivePrecisionSchedule::MarkRefined(int i, int num_included, Shift pairwise) {
  if (i < 0 || i >= static_cast<int>(states_.size()))
    throw std::invalid_argument("LivePrecisionSchedule::MarkRefined: frame index out of range");
  State& s = states_[static_cast<std::size_t>(i)];
  s.included_at_refine = std::max(1, num_included);
  s.pairwise_at_refine = pairwise;
  ++num_refinements_;
}

int LivePrecisionSchedule::num_refined_frames() const {
  return static_cast<int>(std::count_if(states_.begin(), states_.end(),
                                        [](const State& s) { return s.included_at_refine > 0; }));
}

}  // namespace livealign
