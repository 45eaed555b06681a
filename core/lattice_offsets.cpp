#include "core/lattice_offsets.hpp"

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>
#include <utility>

namespace livealign {
namespace {

// Trusted frames the velocity of the temporal prediction spans: over a gap of
// g frames its error grows as g times the velocity's, and a baseline of b
// frames makes that error about 1/b of a single step's noise.
constexpr int kVelocityBaselineFrames = 8;

// A frame more than kGapSteps typical steps after its predecessor is "after a
// gap": its prediction extrapolates the velocity over many frame periods, so
// the hop test's gap tolerance (HopTest::GapSite) places it.
constexpr double kGapSteps = 2.0;

// Smooth drift is also judged against the series' own steadiness: a frame
// that deviates from its prediction by more than kJumpDeviations times the
// RMS deviation of the last kSteadinessFrames frames (and at least
// kMinJumpPx) is a stage jump even within the hop test's tolerance. On a
// crystal whose basis has two kinds of site (a perovskite's A and B
// columns), a jump can bring the correlation of one kind with the other into
// the pair search's prediction window: the frame then lands near its
// prediction, off by a vector that is not a lattice vector, and a quarter
// of a lattice spacing (the hop test's tolerance) would call that drift.
// Measured on simulated perovskite series at 0.2 counts/px (256^2 x 1000,
// three seeds; 512^2 x 200; 256^2 x 600 at 0.7 px/frame): RMS deviations of
// 0.19-0.28 px, the largest 0.40 px, none beyond the threshold; 3.7 px after
// such a jump.
constexpr int kSteadinessFrames = 16;
constexpr int kMinSteadinessFrames = 8;
constexpr double kJumpDeviations = 8.0;
constexpr double kMinJumpPx = 1.5;

// The lattice vector that coarse evidence for frame k supports, if enough
// clear coarse pairs (i, k) with already-pinned i agree on it.
bool CoarseVote(int k, const Shift& candidate_k, const std::vector<Shift>& pinned,
                const std::vector<bool>& pinned_ok,
                const std::vector<std::vector<const CoarsePairEvidence*>>& by_frame,
                const HopTest& hops, const LatticeOffsetOptions& options, Shift* correction) {
  std::map<std::pair<int, int>, int> votes;
  std::map<std::pair<int, int>, Shift> vectors;
  for (const CoarsePairEvidence* pair : by_frame[k]) {
    if (pair->height < options.min_coarse_height || !pinned_ok[pair->i]) continue;
    const Shift error = (candidate_k - pinned[pair->i]) - pair->j_from_i;
    const std::optional<LatticeVector> site = hops.CoarseSite(error);
    if (!site) continue;
    const auto key = std::make_pair(site->na, site->nb);
    ++votes[key];
    vectors[key] = site->vector;
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

// A flagged frame's solver shift is an interpolation in the solver's
// modulo-lattice coordinates, so when its neighbours' offsets differ it sits
// between two lattice sites. Its offset is the lattice vector that puts it
// nearest the interpolation, in time, of its unflagged neighbours' final
// positions (the one they have on either side; else the one neighbour's).
template <typename Time>
void PlaceFlaggedFrames(const std::vector<Shift>& solver_shifts, const std::vector<bool>& flagged,
                        const Lattice& lattice, Time time, std::vector<Shift>* offsets) {
  const int n = static_cast<int>(solver_shifts.size());
  auto position = [&](int k) { return solver_shifts[k] + (*offsets)[k]; };
  int before = -1;
  for (int k = 0; k < n; ++k) {
    if (!flagged[k]) {
      before = k;
      continue;
    }
    int after = k + 1;
    while (after < n && flagged[after]) ++after;
    for (int f = k; f < after; ++f) {
      Shift target;
      if (before >= 0 && after < n) {
        const double t = (time(f) - time(before)) / (time(after) - time(before));
        target = position(before) * (1 - t) + position(after) * t;
      } else if (before >= 0) {
        target = position(before);
      } else if (after < n) {
        target = position(after);
      } else {
        continue;  // no unflagged frame at all
      }
      (*offsets)[f] += lattice.NearestLatticeVector(target - position(f)).vector;
    }
    k = after - 1;
  }
}

// Decides the lattice offset across each jump coarse pairs left undecided,
// from the run correlation of the frames before it with those after it (up
// to the next jump), and moves every frame from the jump on by the lattice
// vector it finds. Jumps are taken in order, so a later jump's first run
// holds the frames this one has moved.
void DecideJumpsByRuns(const std::vector<Shift>& solver_shifts, const std::vector<bool>& flagged,
                       const HopTest& hops, const LatticeOffsetOptions& options,
                       const CoarseRunScore& runs, LatticeOffsetReport* report) {
  const int n = static_cast<int>(solver_shifts.size());
  const Lattice& lattice = hops.lattice();
  const int reach = std::max(options.run_candidate_reach, 0);
  for (std::size_t jump = 0; jump < report->jumps.size(); ++jump) {
    StageJumpRecord& record = report->jumps[jump];
    if (record.lattice_offset_observable) continue;
    const int begin = record.frame;
    const int end = jump + 1 < report->jumps.size() ? report->jumps[jump + 1].frame : n;
    CoarseRunQuery query;
    for (int f = begin - 1; f >= 0 && static_cast<int>(query.first.size()) < options.run_frames; --f) {
      if (flagged[f]) continue;
      query.first.push_back(f);
      query.first_shifts.push_back(solver_shifts[f] + report->offsets[f]);
    }
    std::vector<int> after;
    for (int f = begin; f < end && static_cast<int>(after.size()) < options.run_frames; ++f) {
      if (!flagged[f]) after.push_back(f);
    }
    // Two frames a side at least: the check below splits each run in two.
    if (query.first.size() < 2 || after.size() < 2) continue;
    // A power of two, so a growing run is correlated again only when it has
    // doubled (and the scorer can keep what it computed for each size).
    std::size_t used = 1;
    while (2 * used <= after.size()) used *= 2;
    for (std::size_t m = 0; m < used; ++m) {
      query.second.push_back(after[m]);
      query.second_shifts.push_back(solver_shifts[after[m]] + report->offsets[after[m]]);
    }
    std::vector<LatticeVector> candidates;
    for (int na = -reach; na <= reach; ++na) {
      for (int nb = -reach; nb <= reach; ++nb) {
        candidates.push_back({na, nb, lattice.Vector(na, nb)});
        query.offsets.push_back(candidates.back().vector);
      }
    }
    // The best candidate of the runs' sums; and, as the check that noise did
    // not pick it, of the two halves (alternate frames of each run), whose
    // noise is independent: all three must agree.
    const auto best_of = [&](const CoarseRunQuery& q, double* height, double* margin) -> int {
      const std::vector<double> heights = runs(q);
      if (heights.size() != candidates.size()) return -1;
      std::size_t best = 0;
      for (std::size_t c = 1; c < heights.size(); ++c) {
        if (heights[c] > heights[best]) best = c;
      }
      double second = -std::numeric_limits<double>::infinity();
      for (std::size_t c = 0; c < heights.size(); ++c) {
        if (c != best) second = std::max(second, heights[c]);
      }
      *height = heights[best];
      *margin = heights[best] - second;
      return static_cast<int>(best);
    };
    double height = 0, margin = 0;
    const int best = best_of(query, &height, &margin);
    if (best < 0 || !(height >= options.min_run_height && margin >= options.min_run_margin &&
                      margin >= options.min_run_margin_to_mismatch * (1 - height))) {
      continue;
    }
    bool halves_agree = true;
    for (std::size_t half = 0; half < 2 && halves_agree; ++half) {
      CoarseRunQuery part;
      part.offsets = query.offsets;
      for (std::size_t m = half; m < query.first.size(); m += 2) {
        part.first.push_back(query.first[m]);
        part.first_shifts.push_back(query.first_shifts[m]);
      }
      for (std::size_t m = half; m < query.second.size(); m += 2) {
        part.second.push_back(query.second[m]);
        part.second_shifts.push_back(query.second_shifts[m]);
      }
      double part_height = 0, part_margin = 0;
      halves_agree = best_of(part, &part_height, &part_margin) == best;
    }
    if (!halves_agree) continue;
    record.lattice_offset_observable = true;
    record.run_height = height;
    record.run_frames_after = static_cast<int>(used);
    const Shift correction = candidates[best].vector;
    if (candidates[best].IsZero()) continue;
    record.jump_px = record.jump_px + correction;
    for (int f = begin; f < n; ++f) report->offsets[f] = report->offsets[f] + correction;
  }
}

}  // namespace

LatticeOffsetReport ResolveLatticeOffsets(const std::vector<Shift>& solver_shifts,
                                          const std::vector<bool>& flagged, const HopTest& hops,
                                          const std::vector<CoarsePairEvidence>& coarse,
                                          const LatticeOffsetOptions& options,
                                          const std::vector<double>& timestamps_s,
                                          const CoarseRunScore& runs) {
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
  const Lattice& lattice = hops.lattice();
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
  // |deviation|^2 of the latest smoothly drifting frames (kSteadinessFrames).
  std::deque<double> steadiness;
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

    // Continuity decides: drift is smooth, so a deviation from the
    // prediction within the tolerance is drift, and one within the tolerance
    // of a lattice vector is a hop. Only a deviation that is neither is a real
    // stage jump, where continuity says nothing about the lattice offset and
    // clear coarse evidence decides it. (Coarse evidence is counted on every
    // frame, as the measure of whether the offset is observable, but applied
    // only there: over a long series a few frames get two agreeing coarse
    // pairs on a wrong lattice vector, and letting them override smooth drift
    // put those frames a lattice vector off.)
    Shift coarse_correction;
    const bool coarse_clear =
        CoarseVote(k, pinned[k], pinned, pinned_ok, by_frame, hops, options, &coarse_correction);
    if (coarse_clear) ++report.frames_decided_by_coarse;
    Shift correction;
    bool jump = false;
    bool after_gap = false;
    if (baseline.size() >= 2) {
      const double step = (time(previous) - time(baseline.front())) / (baseline.size() - 1);
      after_gap = time(k) - time(previous) > kGapSteps * step;
    }
    // Across a gap the prediction's error grows with the gap: only the hop
    // test's tolerance applies there.
    bool unsteady = false;
    if (!after_gap && static_cast<int>(steadiness.size()) >= kMinSteadinessFrames) {
      double mean_square = 0;
      for (double d2 : steadiness) mean_square += d2;
      mean_square /= static_cast<double>(steadiness.size());
      unsteady = deviation.Norm() > std::max(kMinJumpPx, kJumpDeviations * std::sqrt(mean_square));
    }
    if (!hops.WithinHop(deviation) || unsteady) {
      const std::optional<LatticeVector> site_after_gap =
          after_gap ? hops.GapSite(deviation) : std::nullopt;
      if (const std::optional<LatticeVector> hop = hops.Hop(deviation)) {
        correction = hop->vector.Inverse();  // a hop against smooth drift
      } else if (coarse_clear) {
        correction = coarse_correction;
        report.jumps.push_back({k, deviation + correction, true});
        jump = true;
      } else if (site_after_gap) {
        correction = site_after_gap->vector.Inverse();  // drift over a gap, or a hop after one
      } else {
        report.jumps.push_back({k, deviation, false});
        jump = true;
      }
    }
    if (correction.Norm() > 0) {
      report.offsets[k] = carried + correction;
      pinned[k] = solver_shifts[k] + report.offsets[k];
    }
    pinned_ok[k] = true;
    // After a jump the old velocity means nothing: restart the prediction.
    if (jump) {
      baseline.clear();
      steadiness.clear();
    } else if (correction.Norm() == 0) {
      steadiness.push_back(deviation.Norm() * deviation.Norm());
      if (static_cast<int>(steadiness.size()) > kSteadinessFrames) steadiness.pop_front();
    }
    baseline.push_back(k);
    if (static_cast<int>(baseline.size()) > kVelocityBaselineFrames) baseline.pop_front();
    previous = k;
  }
  if (runs) DecideJumpsByRuns(solver_shifts, flagged, hops, options, runs, &report);
  PlaceFlaggedFrames(solver_shifts, flagged, lattice, time, &report.offsets);
  for (const Shift& offset : report.offsets) {
    if (offset.Norm() > 0) ++report.frames_moved;
  }
  return report;
}

}  // namespace livealign
