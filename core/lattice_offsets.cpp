#include "core/lattice_offsets.hpp"

#include <cmath>
#include <deque>
#include <map>
#include <stdexcept>
#include <utility>

namespace livealign {
namespace {

// Trusted frames the velocity of the temporal prediction spans: over a gap of
// g frames its error grows as g times the velocity's, and a baseline of b
// frames makes that error about 1/b of a single step's noise.
constexpr int kVelocityBaselineFrames = 8;

// The lattice vector that coarse evidence for frame k supports, if enough
// clear coarse pairs (i, k) with already-pinned i agree on it.
bool CoarseVote(int k, const Shift& candidate_k, const std::vector<Shift>& pinned,
                const std::vector<bool>& pinned_ok,
                const std::vector<std::vector<const CoarsePairEvidence*>>& by_frame,
                const Lattice& lattice, const LatticeOffsetOptions& options, Shift* correction) {
  const double spacing = lattice.ShortestSpacing();
  std::map<std::pair<int, int>, int> votes;
  std::map<std::pair<int, int>, Shift> vectors;
  for (const CoarsePairEvidence* pair : by_frame[k]) {
    if (pair->height < options.min_coarse_height || !pinned_ok[pair->i]) continue;
    const Shift error = (candidate_k - pinned[pair->i]) - pair->j_from_i;
    const LatticeVector nearest = lattice.NearestLatticeVector(error);
    if ((error - nearest.vector).Norm() > options.coarse_tolerance * spacing) continue;
    const auto key = std::make_pair(nearest.na, nearest.nb);
    ++votes[key];
    vectors[key] = nearest.vector;
  }
  int best_votes = 0, total = 0;
  std::pair<int, int> best{0, 0};
  for (const auto& [key, count] : votes) {
    total += count;
    if (count > best_votes) {
      best_votes = count;
      best = key;
    }
  }
  // A clear majority of at least min_coarse_agreeing pairs.
  if (best_votes < options.min_coarse_agreeing || 2 * best_votes <= total) return false;
  *correction = vectors[best].Inverse();
  return true;
}

}  // namespace

LatticeOffsetReport ResolveLatticeOffsets(const std::vector<Shift>& solver_shifts,
                                          const std::vector<bool>& flagged, const Lattice& lattice,
                                          const std::vector<CoarsePairEvidence>& coarse,
                                          const LatticeOffsetOptions& options,
                                          const std::vector<double>& timestamps_s) {
  const int n = static_cast<int>(solver_shifts.size());
  if (static_cast<int>(flagged.size()) != n) {
    throw std::invalid_argument("ResolveLatticeOffsets: flagged and shifts differ in size");
  }
  if (!timestamps_s.empty() && static_cast<int>(timestamps_s.size()) != n) {
    throw std::invalid_argument("ResolveLatticeOffsets: timestamps and shifts differ in size");
  }
  bool use_index = timestamps_s.empty();
  for (int k = 1; k < n && !use_index; ++k) {
    if (!std::isfinite(timestamps_s[k]) || !std::isfinite(timestamps_s[k - 1]) ||
        !(timestamps_s[k] > timestamps_s[k - 1])) {
      use_index = true;
    }
  }
  auto time = [&](int k) { return use_index ? static_cast<double>(k) : timestamps_s[k]; };
  std::vector<std::vector<const CoarsePairEvidence*>> by_frame(n);
  for (const auto& pair : coarse) {
    if (pair.i < 0 || pair.j >= n || pair.i >= pair.j) {
      throw std::invalid_argument("ResolveLatticeOffsets: coarse pair out of range");
    }
    by_frame[pair.j].push_back(&pair);
  }
  const double spacing = lattice.ShortestSpacing();
  LatticeOffsetReport report;
  report.offsets.assign(n, Shift{});
  std::vector<Shift> pinned(n);        // solver shift + offset
  std::vector<bool> pinned_ok(n, false);
  if (n == 0) return report;
  pinned[0] = solver_shifts[0];
  pinned_ok[0] = !flagged[0];

  int previous = flagged[0] ? -1 : 0;  // last unflagged frame
  // Trusted frames since the last jump, oldest first (the velocity baseline;
  // `previous` is the last of them).
  std::deque<int> baseline;
  if (previous == 0) baseline.push_back(0);
  for (int k = 1; k < n; ++k) {
    const Shift carried = previous >= 0 ? report.offsets[previous] : report.offsets[k - 1];
    report.offsets[k] = carried;
    pinned[k] = solver_shifts[k] + carried;
    if (flagged[k] || previous < 0) {
      if (!flagged[k]) {
        previous = k;
        pinned_ok[k] = true;
        baseline.assign(1, k);
      }
      continue;
    }
    // Constant-velocity prediction over the baseline of trusted frames.
    Shift velocity;
    if (baseline.size() >= 2) {
      const int first = baseline.front();
      velocity = (pinned[previous] - pinned[first]) * (1.0 / (time(previous) - time(first)));
    }
    const Shift prediction = pinned[previous] + velocity * (time(k) - time(previous));
    const Shift deviation = pinned[k] - prediction;

    Shift correction;
    bool decided = false;
    if (CoarseVote(k, pinned[k], pinned, pinned_ok, by_frame, lattice, options, &correction)) {
      decided = true;
      ++report.frames_decided_by_coarse;
    }
    bool jump = false;
    if (!decided && deviation.Norm() > options.continuity_tolerance * spacing) {
      const LatticeVector nearest = lattice.NearestLatticeVector(deviation);
      if ((deviation - nearest.vector).Norm() <= options.continuity_tolerance * spacing) {
        correction = nearest.vector.Inverse();  // a hop against smooth drift
      } else {
        jump = true;  // a real stage jump, and no clear coarse evidence
      }
    }
    if (decided) {
      // Coarse evidence also marks a real jump when the corrected frame is
      // still far from the temporal prediction.
      const Shift corrected_deviation = deviation + correction;
      if (corrected_deviation.Norm() > options.continuity_tolerance * spacing) {
        report.jumps.push_back({k, corrected_deviation, true});
      }
    } else if (jump) {
      report.jumps.push_back({k, deviation, false});
    }
    if (correction.Norm() > 0) {
      report.offsets[k] = carried + correction;
      pinned[k] = solver_shifts[k] + report.offsets[k];
    }
    if (report.offsets[k].Norm() > 0) ++report.frames_moved;
    pinned_ok[k] = true;
    // After a jump the old velocity means nothing: restart the prediction.
    if (jump || (decided && !report.jumps.empty() && report.jumps.back().frame == k)) baseline.clear();
    baseline.push_back(k);
    if (static_cast<int>(baseline.size()) > kVelocityBaselineFrames) baseline.pop_front();
    previous = k;
  }
  return report;
}

}  // namespace livealign
