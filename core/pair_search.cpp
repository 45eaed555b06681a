#include "core/pair_search.hpp"

#include <algorithm>
#include <cmath>

namespace livealign {
namespace {

// Prediction-window search: per-axis half width as a fraction of the shortest
// lattice spacing (corner at 0.49), and the height the windowed peak of the
// newest pair must keep relative to an unrestricted search; below it the
// frame is taken to follow a stage jump.
constexpr double kPredictionWindowFraction = 0.35;
constexpr double kJumpHeightRatio = 0.8;
// A windowed peak further than this from the prediction has the stage-jump
// test refine every candidate of its unrestricted search (WherePredicted);
// steady drift leaves 0.1-0.3 px.
constexpr double kThoroughJumpTestPx = 1.0;
// Coarse, hop-free stage: a raised-cosine low-pass at this fraction of the
// first Bragg ring, so lattice peaks vanish and only non-periodic content
// correlates; before a lattice is known, a fixed low cut-off.
constexpr double kCoarseCutoffFraction = 0.6;
constexpr double kCoarseCutoffDefault = 0.03;  // cycles/px
// Frames the velocity of the prediction spans: its noise is that of one
// step over the baseline, and after g lost frames the prediction's error is
// g times it, against a window of a third of a lattice spacing.
constexpr int kVelocityBaselineFrames = 8;
// Each new frame is coarse-correlated with this many predecessors.
constexpr int kCoarsePartners = 4;

// Whether new frame k = frames.size() lies where `predicted_k` put it, so
// that the pairs searched in the prediction windows (`pairs`, half-width
// `radius`) stand; false after a stage jump.
//  - A stage jump leaves no real peak in the window: the newest pair's
//    windowed peak must keep kJumpHeightRatio of an unrestricted search's.
//  - At low dose that can fail with no jump, a noise maximum elsewhere
//    outgrowing the real peak: seen once in about 3000 updates of 256^2
//    frames at 0.2 counts/px (it depends on the prediction, so on when
//    background re-solves are taken, and did not recur in 3800 later ones),
//    where searching every pair without the windows then made the update
//    4.4 times the median. So before that search the two next-newest
//    partners are searched without the window too: if the maximum of each
//    lies inside its window, the frame is where the prediction put it. After
//    a stage jump (every window is centred on the one prediction of the new
//    frame) each of them lies where the jump took the frame, outside, and a
//    maximum outside that merely ties gives the same answer.
bool WherePredicted(const Correlator& correlator, const std::vector<FrameState>& frames,
                    const std::vector<int>& partners, const std::vector<PairMeasurement>& pairs,
                    Shift predicted_k, double radius) {
  const int k = static_cast<int>(frames.size());
  // Where pair (i, k)'s candidate lies relative to its prediction.
  const auto from_prediction = [&](int i, const PeakCandidate& candidate) {
    return candidate.j_from_i - (predicted_k - frames[static_cast<std::size_t>(i)].shift);
  };
  const PairMeasurement& windowed = pairs[static_cast<std::size_t>(k - 1)];
  // The unrestricted search refines one candidate, the one of highest fitted
  // height; at low dose on a crystal that is often a lattice translate lower
  // than the real peak, which any translate in the window then outgrows. So
  // when the windowed peak is off the prediction by more than steady drift
  // puts it (what a jump that brought a translate into the window leaves),
  // every candidate is refined, and the test compares the highest maxima.
  const bool off_prediction = windowed.candidates.empty() ||
                              from_prediction(k - 1, windowed.candidates.front()).Norm() > kThoroughJumpTestPx;
  const PairMeasurement free = off_prediction ? correlator.CorrelateEveryCandidate(k - 1, k, 0)
                                              : correlator.Correlate(k - 1, k, 0);
  if (!windowed.candidates.empty() && !free.candidates.empty() &&
      windowed.candidates.front().height >= kJumpHeightRatio * free.candidates.front().height) {
    return true;
  }
  const int count = static_cast<int>(partners.size());
  if (count < 3) return false;
  for (int n = count - 2; n >= count - 3; --n) {
    const int i = partners[static_cast<std::size_t>(n)];
    const PairMeasurement check = correlator.CorrelateEveryCandidate(i, k, 0);
    if (check.candidates.empty()) return false;
    const Shift offset = from_prediction(i, check.candidates.front());
    if (std::abs(offset.x) > radius || std::abs(offset.y) > radius) return false;
  }
  return true;
}

}  // namespace

double OverlapFraction(Shape shape, Shift a, Shift b) {
  const Shift d = b - a;
  const double fx = std::max(0.0, 1.0 - std::abs(d.x) / shape.cols);
  const double fy = std::max(0.0, 1.0 - std::abs(d.y) / shape.rows);
  return fx * fy;
}

Shift PredictNewShift(const std::vector<FrameState>& frames, double new_timestamp_s,
                      bool* velocity_known) {
  const int k = static_cast<int>(frames.size());
  *velocity_known = k >= 3 && !frames[k - 1].flagged && !frames[k - 2].flagged;
  if (!*velocity_known) return k >= 1 ? frames[k - 1].shift : Shift{};
  // The baseline: the earliest of the unflagged run ending at k - 1, at most
  // kVelocityBaselineFrames back.
  int first = k - 2;
  while (first > 0 && k - 1 - (first - 1) <= kVelocityBaselineFrames && !frames[first - 1].flagged) --first;
  const FrameState& last = frames[k - 1];
  const FrameState& base = frames[first];
  const Shift span = last.shift - base.shift;
  const double dt_span = last.timestamp_s - base.timestamp_s;
  const double dt_new = new_timestamp_s - last.timestamp_s;
  bool timed = std::isfinite(dt_span) && std::isfinite(dt_new) && dt_span > 0 && dt_new > 0;
  for (int i = first + 1; i < k && timed; ++i) timed = frames[i].timestamp_s > frames[i - 1].timestamp_s;
  if (timed) return last.shift + span * (dt_new / dt_span);
  return last.shift + span * (1.0 / (k - 1 - first));
}

std::vector<int> OverlapPartners(Shape shape, const std::vector<FrameState>& frames,
                                 Shift predicted, double min_overlap_fraction) {
  const int k = static_cast<int>(frames.size());
  std::vector<int> partners;
  partners.reserve(k);
  for (int i = 0; i < k; ++i) {
    if (i == k - 1 || min_overlap_fraction <= 0 ||
        OverlapFraction(shape, frames[i].shift, predicted) >= min_overlap_fraction) {
      partners.push_back(i);
    }
  }
  return partners;
}

NewFramePairs SearchNewFramePairs(const Correlator& correlator, ThreadPool& pool, Shape shape,
                                  const std::vector<FrameState>& frames, double new_timestamp_s,
                                  const std::optional<Lattice>& lattice,
                                  const PairSearchOptions& options) {
  const int k = static_cast<int>(frames.size());
  NewFramePairs result;
  std::vector<PairMeasurement>& pairs = result.pairs;
  pairs.resize(k);
  for (int i = 0; i < k; ++i) {
    pairs[i].i = i;
    pairs[i].j = k;
  }
  bool velocity_known = false;
  const Shift predicted_k = PredictNewShift(frames, new_timestamp_s, &velocity_known);
  const std::vector<int> partners =
      OverlapPartners(shape, frames, predicted_k, options.min_overlap_fraction);
  result.no_overlap.assign(k, true);
  for (int i : partners) result.no_overlap[i] = false;
  const int count = static_cast<int>(partners.size());
  const bool can_predict = options.predicted_search && lattice && velocity_known;
  if (can_predict) {
    // Per-axis half-width: the window's corner (radius * sqrt 2) stays within
    // half the shortest lattice spacing, so no other translate fits in it.
    const double radius = kPredictionWindowFraction * lattice->ShortestSpacing();
    pool.ParallelFor(count, [&](int n, int worker) {
      const int i = partners[n];
      // Newton on the exact band-limited correlation straight from the
      // prediction needs no inverse FFT and no peak search; only when it does
      // not converge inside the window is the windowed map searched.
      const Shift predicted = predicted_k - frames[i].shift;
      const PeakCandidate direct = correlator.Refine(i, k, predicted, worker);
      const Shift offset = direct.j_from_i - predicted;
      if (direct.refined && std::abs(offset.x) <= radius && std::abs(offset.y) <= radius) {
        pairs[i].i = i;
        pairs[i].j = k;
        pairs[i].candidates = {direct};
      } else {
        pairs[i] = correlator.Correlate(i, k, worker, predicted, radius);
      }
    });
    if (WherePredicted(correlator, frames, partners, pairs, predicted_k, radius)) {
      result.used_prediction = true;
      return result;
    }
  }
  // Free search, around zero; a partner whose predicted shift lies beyond the
  // search range (a long series drifts further than that) is searched in a
  // window of the same size around its prediction.
  const double reach_x = options.max_shift_px > 0 ? std::min(options.max_shift_px, shape.cols / 2.0) : shape.cols / 4.0;
  const double reach_y = options.max_shift_px > 0 ? std::min(options.max_shift_px, shape.rows / 2.0) : shape.rows / 4.0;
  pool.ParallelFor(count, [&](int n, int worker) {
    const int i = partners[n];
    const Shift predicted = predicted_k - frames[i].shift;
    if (k >= 2 && (std::abs(predicted.x) > 0.5 * reach_x || std::abs(predicted.y) > 0.5 * reach_y)) {
      pairs[i] = correlator.Correlate(i, k, worker, predicted, std::min(reach_x, reach_y));
    } else {
      pairs[i] = correlator.Correlate(i, k, worker);
    }
  });
  return result;
}

double CoarseCutoffCyclesPerPx(const std::optional<Lattice>& lattice) {
  if (!lattice) return kCoarseCutoffDefault;
  // The first Bragg ring is at 1 / d_max, d_max the largest interplanar
  // spacing: that of the planes along the shortest lattice vector.
  const double d_max = lattice->CellArea() / lattice->ShortestSpacing();
  return std::min(kCoarseCutoffFraction / d_max, 0.25);
}

std::vector<CoarsePairEvidence> SearchCoarsePairs(const Correlator& correlator, ThreadPool& pool,
                                                  int k, const std::optional<Lattice>& lattice) {
  const int count = std::min(k, kCoarsePartners);
  std::vector<CoarsePairEvidence> found(count);
  const double cutoff = CoarseCutoffCyclesPerPx(lattice);
  pool.ParallelFor(count, [&](int n, int worker) {
    const int i = k - 1 - n;
    const PairMeasurement m = correlator.CorrelateCoarse(i, k, cutoff, worker);
    found[n] = {i, k, m.has_coarse ? m.coarse_j_from_i : Shift{},
                m.has_coarse && !m.candidates.empty() ? m.candidates.front().height : 0.0};
  });
  return found;
}

}  // namespace livealign
