#include "core/consistency_solver.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <random>
#include <sstream>
#include <stdexcept>
#include <utility>

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace livealign {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// median |r| / sigma for a 2-D isotropic Gaussian residual (Rayleigh median).
constexpr double kRayleighMedian = 1.1774100225154747;

// Shift::Norm() uses std::hypot, which is several times slower than this and
// dominated the solver's profile; shifts here never approach overflow.
double Length(Shift v) { return std::sqrt(v.x * v.x + v.y * v.y); }

// Geman-McClure IRLS weight: 1 at r = 0, 1/4 at r = scale, ~ (scale/r)^4 beyond.
double GemanMcClureWeight(double r, double scale) {
  const double s2 = scale * scale;
  const double q = s2 / (s2 + r * r);
  return q * q;
}

double Median(std::vector<double>* values) {
  if (values->empty()) return kNaN;
  auto middle = values->begin() + static_cast<std::ptrdiff_t>(values->size() / 2);
  std::nth_element(values->begin(), middle, values->end());
  return *middle;
}

// Weighted median: the smallest value whose cumulative weight reaches half.
double WeightedMedian(std::vector<std::pair<double, double>>* value_weight) {
  std::sort(value_weight->begin(), value_weight->end());
  double total = 0;
  for (const auto& vw : *value_weight) total += vw.second;
  double cumulative = 0;
  for (const auto& vw : *value_weight) {
    cumulative += vw.second;
    if (cumulative >= 0.5 * total) return vw.first;
  }
  return value_weight->back().first;
}

}  // namespace

bool SolverOptions::Check(std::string* error) const {
  auto fail = [error](const char* message) {
    if (error) *error = message;
    return false;
  };
  if (max_iterations < 1) return fail("max_iterations must be >= 1");
  if (max_cg_iterations < 1) return fail("max_cg_iterations must be >= 1");
  if (!(cg_tolerance_px > 0)) return fail("cg_tolerance_px must be > 0");
  if (!(min_threshold_px > 0)) return fail("min_threshold_px must be > 0");
  if (!(scale_multiplier > 0)) return fail("scale_multiplier must be > 0");
  if (!(max_threshold_px >= min_threshold_px)) return fail("max_threshold_px must be >= min_threshold_px");
  if (!(shrink_factor > 0 && shrink_factor < 1)) return fail("shrink_factor must be in (0, 1)");
  if (!(scratch_start_factor >= 1)) return fail("scratch_start_factor must be >= 1");
  if (!(incremental_start_factor >= 1)) return fail("incremental_start_factor must be >= 1");
  if (!(min_inlier_fraction >= 0 && min_inlier_fraction <= 1)) {
    return fail("min_inlier_fraction must be in [0, 1]");
  }
  if (min_inlier_pairs < 0) return fail("min_inlier_pairs must be >= 0");
  if (!(convergence_px > 0)) return fail("convergence_px must be > 0");
  if (max_cycle_checks < 0) return fail("max_cycle_checks must be >= 0");
  if (max_triangle_partners < 1) return fail("max_triangle_partners must be >= 1");
  if (global_update_max_pairs < 0) return fail("global_update_max_pairs must be >= 0");
  if (max_local_iterations < 1) return fail("max_local_iterations must be >= 1");
  if (catch_up_frames_per_solve < 1) return fail("catch_up_frames_per_solve must be >= 1");
  return true;
}

ConsistencySolver::ConsistencySolver(const SolverOptions& options) : options_(options) {
  std::string error;
  if (!options_.Check(&error)) throw std::invalid_argument("ConsistencySolver: " + error);
}

ConsistencySolver::~ConsistencySolver() { StopBackground(); }

void ConsistencySolver::AddFrame(std::vector<PairMeasurement> pairs_with_earlier) {
  const int k = num_frames_;
  if (static_cast<int>(pairs_with_earlier.size()) != k) {
    throw std::invalid_argument("ConsistencySolver::AddFrame: expected one pair per earlier frame");
  }
  for (int i = 0; i < k; ++i) {
    const PairMeasurement& m = pairs_with_earlier[static_cast<std::size_t>(i)];
    if (m.i != i || m.j != k) {
      throw std::invalid_argument("ConsistencySolver::AddFrame: pair " + std::to_string(i) +
                                  " is not (" + std::to_string(i) + ", " + std::to_string(k) + ")");
    }
    for (const PeakCandidate& c : m.candidates) {
      if (!std::isfinite(c.j_from_i.x) || !std::isfinite(c.j_from_i.y)) {
        throw std::invalid_argument("ConsistencySolver::AddFrame: non-finite candidate shift");
      }
    }
  }
  auto block = std::make_shared<Block>();
  for (auto& m : pairs_with_earlier) {
    if (!m.candidates.empty()) block->push_back(std::move(m));
  }
  block->shrink_to_fit();
  std::shared_ptr<const PairIndex> index = IndexOf(*block);
  AppendFrame(std::move(block), std::move(index));
}

std::shared_ptr<const ConsistencySolver::PairIndex> ConsistencySolver::IndexOf(const Block& block) {
  auto index = std::make_shared<PairIndex>();
  index->partners.reserve(block.size());
  index->brightest.reserve(block.size());
  for (const PairMeasurement& m : block) {
    index->partners.push_back(static_cast<int>(m.i));
    index->brightest.push_back(Brightest(m));
  }
  return index;
}

void ConsistencySolver::AppendFrame(std::shared_ptr<const Block> block,
                                    std::shared_ptr<const PairIndex> index) {
  const int k = num_frames_;
  Pair empty;
  empty.state.residual_px = kNaN;
  states_.emplace_back(block->size(), empty);
  later_.emplace_back();
  for (const PairMeasurement& m : *block) later_[static_cast<std::size_t>(m.i)].push_back(k);
  index_.push_back(std::move(index));
  total_pairs_ += block->size();
  blocks_.push_back(std::move(block));
  ++num_frames_;
  shifts_.resize(static_cast<std::size_t>(num_frames_));
  flagged_.resize(static_cast<std::size_t>(num_frames_), false);
  frame_inliers_.resize(static_cast<std::size_t>(num_frames_), 0);
  frame_sum_sq_.resize(static_cast<std::size_t>(num_frames_), 0.0);
}

void ConsistencySolver::LoadSnapshot(const std::vector<std::shared_ptr<const Block>>& blocks,
                                     const std::vector<std::shared_ptr<const PairIndex>>& index) {
  for (std::size_t j = 0; j < blocks.size(); ++j) AppendFrame(blocks[j], index[j]);
}

Shift ConsistencySolver::Brightest(const PairMeasurement& m) {
  return m.candidates.empty() ? Shift{kNaN, kNaN} : m.candidates[0].j_from_i;
}

int ConsistencySolver::Find(int i, int j) const {
  const std::vector<int>& partners = index_[static_cast<std::size_t>(j)]->partners;
  if (partners.empty()) return -1;
  // A frame's pairs usually run over a contiguous range of earlier frames
  // (all those it overlaps): i's place in that range first, which saves the
  // binary search's mispredicted branches and cache misses.
  const long guess = static_cast<long>(i) - partners.front();
  if (guess >= 0 && guess < static_cast<long>(partners.size()) &&
      partners[static_cast<std::size_t>(guess)] == i) {
    return static_cast<int>(guess);
  }
  auto it = std::lower_bound(partners.begin(), partners.end(), i);
  if (it == partners.end() || *it != i) return -1;
  return static_cast<int>(it - partners.begin());
}

void ConsistencySolver::CheckPairIndices(int i, int j, const char* who) const {
  if (i < 0 || i >= j || j >= num_frames_) {
    throw std::invalid_argument(std::string(who) + ": pair (" + std::to_string(i) + ", " +
                                std::to_string(j) + ") requires i < j < num_frames()");
  }
}

void ConsistencySolver::UpdatePair(const PairMeasurement& m) {
  const int i = static_cast<int>(m.i), j = static_cast<int>(m.j);
  CheckPairIndices(i, j, "ConsistencySolver::UpdatePair");
  for (const PeakCandidate& c : m.candidates) {
    if (!std::isfinite(c.j_from_i.x) || !std::isfinite(c.j_from_i.y)) {
      throw std::invalid_argument("ConsistencySolver::UpdatePair: non-finite candidate shift");
    }
  }
  int index = Find(i, j);
  if (index < 0 && m.candidates.empty()) return;  // missing stays missing
  // Copy on write: a background solve may be reading the old block.
  auto block = std::make_shared<Block>(*blocks_[static_cast<std::size_t>(j)]);
  std::vector<Pair>& states = states_[static_cast<std::size_t>(j)];
  if (index >= 0) {
    (*block)[static_cast<std::size_t>(index)] = m;
  } else {
    auto it = std::lower_bound(block->begin(), block->end(), i,
                               [](const PairMeasurement& p, int value) { return p.i < value; });
    index = static_cast<int>(it - block->begin());
    block->insert(it, m);
    states.insert(states.begin() + index, Pair{});
    std::vector<int>& later = later_[static_cast<std::size_t>(i)];
    later.insert(std::lower_bound(later.begin(), later.end(), j), j);
    ++total_pairs_;
  }
  index_[static_cast<std::size_t>(j)] = IndexOf(*block);
  blocks_[static_cast<std::size_t>(j)] = std::move(block);
  Pair& p = states[static_cast<std::size_t>(index)];
  p = Pair{};
  p.state.residual_px = kNaN;
  ++generation_;
  changed_from_ = std::min(changed_from_, j);
  if (j < placed_frames_ && total_pairs_ > static_cast<std::size_t>(options_.global_update_max_pairs)) {
    // Placement-only solves never revisit old pairs: classify this one now.
    const double threshold = std::max(last_floor_px_, options_.min_threshold_px);
    const double r = Choose(j, index, threshold);
    p.state.inlier = std::isfinite(r) && r <= threshold;
    p.state.weight = std::isfinite(r) ? GemanMcClureWeight(r, threshold) : 0.0;
  }
  RecomputeTotals();
}

void ConsistencySolver::SetHopTest(std::optional<HopTest> hop_test) {
  hop_test_ = std::move(hop_test);
  ++generation_;
  changed_from_ = 0;
}

namespace {
const ConsistencySolver::PairState& MissingState() {
  static const ConsistencySolver::PairState state = [] {
    ConsistencySolver::PairState s;
    s.residual_px = kNaN;
    return s;
  }();
  return state;
}
}  // namespace

const ConsistencySolver::PairState& ConsistencySolver::pair_state(int i, int j) const {
  CheckPairIndices(i, j, "ConsistencySolver::pair_state");
  const int index = Find(i, j);
  if (index < 0) return MissingState();
  return states_[static_cast<std::size_t>(j)][static_cast<std::size_t>(index)].state;
}

const PairMeasurement& ConsistencySolver::pair_measurement(int i, int j) const {
  CheckPairIndices(i, j, "ConsistencySolver::pair_measurement");
  static const PairMeasurement missing;
  const int index = Find(i, j);
  if (index < 0) return missing;
  return (*blocks_[static_cast<std::size_t>(j)])[static_cast<std::size_t>(index)];
}

bool ConsistencySolver::EstimateAt(int j, int index, bool forward, Shift* out) const {
  const Shift brightest = index_[static_cast<std::size_t>(j)]->brightest[static_cast<std::size_t>(index)];
  if (!std::isfinite(brightest.x)) return false;  // no candidates
  const Pair& p = states_[static_cast<std::size_t>(j)][static_cast<std::size_t>(index)];
  Shift j_from_i;
  if (p.state.chosen >= 0) {
    j_from_i = p.state.used_j_from_i;
  } else {
    j_from_i = brightest - p.triangle_hop;
  }
  *out = forward ? j_from_i : j_from_i.Inverse();
  return true;
}

bool ConsistencySolver::Estimate(int a, int b, Shift* b_from_a) const {
  const int i = std::min(a, b), j = std::max(a, b);
  const int index = Find(i, j);
  if (index < 0) return false;
  return EstimateAt(j, index, a < b, b_from_a);
}

void ConsistencySolver::ScoreTriangles(int j, int index) {
  const Block& block = *blocks_[static_cast<std::size_t>(j)];
  const int i = static_cast<int>(block[static_cast<std::size_t>(index)].i);
  Pair& p = states_[static_cast<std::size_t>(j)][static_cast<std::size_t>(index)];
  p.triangle_hop = Shift{};
  p.triangle_score = 0;  // neutral when no triangle exists
  const PairMeasurement& measurement = block[static_cast<std::size_t>(index)];
  if (measurement.candidates.empty()) return;
  // The pair's own value is its brightest peak: the question is whether that
  // peak is consistent with the rest of the graph.
  const Shift r_ij = measurement.candidates[0].j_from_i;
  // Third frames: j's partners (earlier ones in its block, then later ones),
  // an evenly spaced sample of them when there are many.
  const std::vector<int>& later = later_[static_cast<std::size_t>(j)];
  const std::size_t partners = block.size() + later.size();
  const std::size_t wanted = static_cast<std::size_t>(options_.max_triangle_partners);
  const double stride = partners > wanted + 1 ? static_cast<double>(partners) / wanted : 1.0;
  const std::size_t samples = partners > wanted + 1 ? wanted : partners;
  // Two passes: where each sample's two pairs (j, m) and (i, m) are, their
  // states prefetched, then their estimates. The states of these ~100 pairs
  // lie all over the series; read one after the other, each was a cache
  // miss waiting for the last.
  const std::vector<int>& partners_j = index_[static_cast<std::size_t>(j)]->partners;
  std::vector<TriangleLookup>& lookups = triangle_lookups_;
  lookups.clear();
  for (std::size_t s = 0; s < samples; ++s) {
    const std::size_t q = static_cast<std::size_t>(s * stride);
    TriangleLookup l;
    int m = 0;
    if (q < block.size()) {
      if (static_cast<int>(q) == index) continue;
      m = partners_j[q];
      l.jm_frame = j;
      l.jm_index = static_cast<int>(q);
    } else {
      m = later[q - block.size()];
      l.jm_frame = m;
      l.jm_index = Find(j, m);
      if (l.jm_index < 0) continue;
    }
    l.im_frame = std::max(i, m);
    l.im_index = Find(std::min(i, m), l.im_frame);
    if (l.im_index < 0) continue;
    for (const auto& [f, at] : {std::pair<int, int>{l.jm_frame, l.jm_index}, {l.im_frame, l.im_index}}) {
      const Pair* state = &states_[static_cast<std::size_t>(f)][static_cast<std::size_t>(at)];
      __builtin_prefetch(state);
      __builtin_prefetch(&state->triangle_hop);
      __builtin_prefetch(&index_[static_cast<std::size_t>(f)]->brightest[static_cast<std::size_t>(at)]);
    }
    lookups.push_back(l);
  }
  std::vector<Shift> errors;
  errors.reserve(lookups.size());
  for (const TriangleLookup& l : lookups) {
    Shift m_from_j, m_from_i;
    // (j, m) runs forward when m is the later frame; (i, m) when i < m.
    if (!EstimateAt(l.jm_frame, l.jm_index, /*forward=*/l.jm_frame != j, &m_from_j)) continue;
    if (!EstimateAt(l.im_frame, l.im_index, /*forward=*/l.im_frame != i, &m_from_i)) continue;
    // R_ij + R_jm + R_mi with R_mi = -(m_from_i).
    errors.push_back(r_ij + m_from_j - m_from_i);
  }
  if (errors.empty()) return;
  std::vector<double> norms(errors.size());
  if (hop_test_) {
    // A hopped pair makes most of its triangles err by the same hop.
    std::vector<std::pair<std::pair<int, int>, Shift>> hops;
    for (const Shift& e : errors) {
      if (const auto n = hop_test_->Hop(e)) hops.push_back({{n->na, n->nb}, n->vector});
    }
    if (2 * hops.size() >= errors.size()) {
      std::sort(hops.begin(), hops.end(),
                [](const auto& a, const auto& b) { return a.first < b.first; });
      std::size_t mode = 0, best = 0;
      for (std::size_t s = 0; s < hops.size();) {
        std::size_t e = s;
        while (e < hops.size() && hops[e].first == hops[s].first) ++e;
        if (e - s > best) {
          best = e - s;
          mode = s;
        }
        s = e;
      }
      if (2 * best >= errors.size()) p.triangle_hop = hops[mode].second;
    }
  }
  for (std::size_t m = 0; m < errors.size(); ++m) norms[m] = Length(errors[m] - p.triangle_hop);
  p.triangle_score = Median(&norms);
}

void ConsistencySolver::WarmStart(int k) {
  const Block& block = *blocks_[static_cast<std::size_t>(k)];
  const std::vector<Pair>& states = states_[static_cast<std::size_t>(k)];
  std::vector<std::pair<double, double>> xs, ys;
  std::vector<double> scores;
  for (std::size_t q = 0; q < block.size(); ++q) {
    Shift k_from_i;
    if (flagged_[static_cast<std::size_t>(block[q].i)] || !EstimateAt(k, static_cast<int>(q), true, &k_from_i)) continue;
    scores.push_back(std::max(0.0, states[q].triangle_score));
  }
  std::vector<double> sorted_scores = scores;
  const double typical = scores.empty() ? 0.0 : Median(&sorted_scores);
  const double scale = std::max(options_.min_threshold_px, typical);
  std::size_t n = 0;
  for (std::size_t q = 0; q < block.size(); ++q) {
    Shift k_from_i;
    const std::size_t i = static_cast<std::size_t>(block[q].i);
    if (flagged_[i] || !EstimateAt(k, static_cast<int>(q), true, &k_from_i)) continue;
    const double d = scores[n++];
    const double weight = 1.0 / (1.0 + (d / scale) * (d / scale));
    const Shift s = shifts_[i] + k_from_i;
    xs.emplace_back(s.x, weight);
    ys.emplace_back(s.y, weight);
  }
  if (xs.empty()) {
    // No usable pair: carry the previous frame's shift (drift is smooth).
    shifts_[static_cast<std::size_t>(k)] = shifts_[static_cast<std::size_t>(k - 1)];
    return;
  }
  shifts_[static_cast<std::size_t>(k)] = Shift{WeightedMedian(&xs), WeightedMedian(&ys)};
}

double ConsistencySolver::Choose(int j, int index, double threshold_px) {
  const PairMeasurement& measurement = (*blocks_[static_cast<std::size_t>(j)])[static_cast<std::size_t>(index)];
  const int i = static_cast<int>(measurement.i);
  const auto& candidates = measurement.candidates;
  PairState& state = states_[static_cast<std::size_t>(j)][static_cast<std::size_t>(index)].state;
  if (candidates.empty()) {
    state.chosen = -1;
    state.snapped = false;
    state.residual_px = kNaN;
    return kNaN;
  }
  const Shift predicted = shifts_[static_cast<std::size_t>(j)] - shifts_[static_cast<std::size_t>(i)];
  // Prefer the closest candidate as measured; snap only when no candidate is
  // within the threshold as it stands (a hop is the less likely explanation).
  int best = 0;
  double best_squared = std::numeric_limits<double>::infinity();
  for (std::size_t c = 0; c < candidates.size(); ++c) {
    const Shift v = predicted - candidates[c].j_from_i;
    const double squared = v.x * v.x + v.y * v.y;
    if (squared < best_squared) {
      best_squared = squared;
      best = static_cast<int>(c);
    }
  }
  double best_residual = std::sqrt(best_squared);
  state.chosen = best;
  state.used_j_from_i = candidates[static_cast<std::size_t>(best)].j_from_i;
  state.snapped = false;
  state.snap_na = state.snap_nb = 0;
  if (hop_test_ && best_residual > threshold_px) {
    double best_snapped = std::numeric_limits<double>::infinity();
    for (std::size_t c = 0; c < candidates.size(); ++c) {
      const Shift v = predicted - candidates[c].j_from_i;
      const std::optional<LatticeVector> n = hop_test_->Hop(v);
      if (!n) continue;
      const double residual = Length(v - n->vector);
      // Candidates a lattice vector apart tie; the margin keeps the earlier
      // (brighter) one so the choice cannot flicker between iterations.
      if (residual < best_snapped - 1e-3) {
        best_snapped = residual;
        state.chosen = static_cast<int>(c);
        state.used_j_from_i = candidates[c].j_from_i + n->vector;
        state.snapped = true;
        state.snap_na = n->na;
        state.snap_nb = n->nb;
      }
    }
    if (state.snapped) best_residual = best_snapped;
  }
  state.residual_px = best_residual;
  return best_residual;
}

void ConsistencySolver::SolveLinear() {
  // Minimises sum_ij w_ij |s_j - s_i - U_ij|^2 + eps sum_i |s_i - s_i^prev|^2.
  // The tiny eps term makes the Laplacian definite (gauge) and keeps frames
  // without any weight where they were. The weighted pairs are gathered into
  // flat arrays once, so each PCG sweep is one pass over them.
  const std::size_t n = static_cast<std::size_t>(num_frames_);
  std::vector<int> from, to;
  std::vector<double> weight;
  from.reserve(total_pairs_);
  to.reserve(total_pairs_);
  weight.reserve(total_pairs_);
  std::vector<double> degree(n, 0.0), rhs_x(n, 0.0), rhs_y(n, 0.0);
  for (std::size_t j = 1; j < n; ++j) {
    const Block& block = *blocks_[j];
    const std::vector<Pair>& states = states_[j];
    for (std::size_t q = 0; q < block.size(); ++q) {
      const double w = states[q].work_weight;
      if (w <= 0) continue;
      const std::size_t i = static_cast<std::size_t>(block[q].i);
      const Shift u = states[q].state.used_j_from_i;
      from.push_back(static_cast<int>(i));
      to.push_back(static_cast<int>(j));
      weight.push_back(w);
      degree[i] += w;
      degree[j] += w;
      rhs_x[j] += w * u.x;
      rhs_y[j] += w * u.y;
      rhs_x[i] -= w * u.x;
      rhs_y[i] -= w * u.y;
    }
  }
  double degree_sum = 0;
  for (double d : degree) degree_sum += d;
  const double mean_degree = degree_sum / static_cast<double>(n);
  if (!(mean_degree > 0)) return;
  const double eps = 1e-9 * mean_degree;
  std::vector<double> x(n), y(n), diagonal(n);
  for (std::size_t i = 0; i < n; ++i) {
    x[i] = shifts_[i].x;
    y[i] = shifts_[i].y;
    rhs_x[i] += eps * x[i];
    rhs_y[i] += eps * y[i];
    diagonal[i] = degree[i] + eps;
  }
  // Both axes at once (same matrix): one pass over the pairs per sweep.
  const std::size_t edges = weight.size();
  auto apply = [&](const std::vector<double>& vx, const std::vector<double>& vy, std::vector<double>* ox,
                   std::vector<double>* oy) {
    for (std::size_t i = 0; i < n; ++i) {
      (*ox)[i] = diagonal[i] * vx[i];
      (*oy)[i] = diagonal[i] * vy[i];
    }
    for (std::size_t e = 0; e < edges; ++e) {
      const std::size_t a = static_cast<std::size_t>(from[e]), b = static_cast<std::size_t>(to[e]);
      const double w = weight[e];
      (*ox)[a] -= w * vx[b];
      (*oy)[a] -= w * vy[b];
      (*ox)[b] -= w * vx[a];
      (*oy)[b] -= w * vy[a];
    }
  };
  std::vector<double> rx(n), ry(n), zx(n), zy(n), px(n), py(n), qx(n), qy(n);
  apply(x, y, &qx, &qy);
  double rz[2] = {0, 0};
  for (std::size_t i = 0; i < n; ++i) {
    rx[i] = rhs_x[i] - qx[i];
    ry[i] = rhs_y[i] - qy[i];
    zx[i] = rx[i] / diagonal[i];
    zy[i] = ry[i] / diagonal[i];
    px[i] = zx[i];
    py[i] = zy[i];
    rz[0] += rx[i] * zx[i];
    rz[1] += ry[i] * zy[i];
  }
  std::vector<double>* xs[2] = {&x, &y};
  std::vector<double>* rs[2] = {&rx, &ry};
  std::vector<double>* zs[2] = {&zx, &zy};
  std::vector<double>* ps[2] = {&px, &py};
  std::vector<double>* qs[2] = {&qx, &qy};
  for (int iteration = 0; iteration < options_.max_cg_iterations; ++iteration) {
    double z_max = 0;
    for (std::size_t i = 0; i < n; ++i) z_max = std::max({z_max, std::abs(zx[i]), std::abs(zy[i])});
    if (z_max < options_.cg_tolerance_px) break;
    apply(px, py, &qx, &qy);
    bool progressed = false;
    for (int axis = 0; axis < 2; ++axis) {
      const std::vector<double>& p = *ps[axis];
      const std::vector<double>& q = *qs[axis];
      double pq = 0;
      for (std::size_t i = 0; i < n; ++i) pq += p[i] * q[i];
      if (!(pq > 0) || !(rz[axis] > 0)) continue;
      const double alpha = rz[axis] / pq;
      std::vector<double>& xa = *xs[axis];
      std::vector<double>& r = *rs[axis];
      for (std::size_t i = 0; i < n; ++i) {
        xa[i] += alpha * p[i];
        r[i] -= alpha * q[i];
      }
      progressed = true;
    }
    if (!progressed) break;
    for (int axis = 0; axis < 2; ++axis) {
      std::vector<double>& r = *rs[axis];
      std::vector<double>& z = *zs[axis];
      std::vector<double>& p = *ps[axis];
      double rz_next = 0;
      for (std::size_t i = 0; i < n; ++i) {
        z[i] = r[i] / diagonal[i];
        rz_next += r[i] * z[i];
      }
      const double beta = rz[axis] > 0 ? rz_next / rz[axis] : 0.0;
      for (std::size_t i = 0; i < n; ++i) p[i] = z[i] + beta * p[i];
      rz[axis] = rz_next;
    }
    ++last_cg_iterations_;
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (std::isfinite(x[i]) && std::isfinite(y[i])) shifts_[i] = Shift{x[i], y[i]};
  }
}

SolverReport ConsistencySolver::Solve(bool from_scratch) {
  // Every report says from which frame on the pair states may have changed
  // since the previous one, and the next report starts from "none".
  auto stamp = [this](SolverReport report, int changed_from) {
    report.first_changed_frame = std::min(changed_from_, changed_from);
    changed_from_ = num_frames_;
    return report;
  };
  if (from_scratch) {
    StopBackground();
    return stamp(SolveGlobal(true), 0);
  }
  const int adopted = AdoptBackground();
  auto mark = [adopted](SolverReport report) {
    report.adopted_background = adopted > 0;
    report.background_frames = adopted;
    return report;
  };
  if (total_pairs_ <= static_cast<std::size_t>(options_.global_update_max_pairs) || placed_frames_ == 0) {
    return stamp(mark(SolveGlobal(false)), 0);
  }
  // Placement only: the new frames against the fixed earlier ones (after an
  // adoption, every frame's pairs may have changed).
  const double threshold = std::max(last_floor_px_, options_.min_threshold_px);
  last_cg_iterations_ = 0;
  int iterations = 0;
  const int first_new = placed_frames_;
  const int first_caught_up = CatchUp(threshold);
  const int changed_from = adopted > 0 ? 0 : std::min(first_new, first_caught_up);
  for (int k = first_new; k < num_frames_; ++k) {
    const std::size_t size = blocks_[static_cast<std::size_t>(k)]->size();
    for (std::size_t q = 0; q < size; ++q) ScoreTriangles(k, static_cast<int>(q));
    WarmStart(k);
    iterations = std::max(iterations, PlaceFrame(k, threshold));
  }
  placed_frames_ = num_frames_;
  // The earlier frames did not move: only the new pairs change the totals.
  for (int k = first_new; k < num_frames_; ++k) AddToTotals(k);
  return stamp(mark(MakeReport(iterations, /*converged=*/iterations < options_.max_local_iterations, 0)),
               changed_from);
}

SolverReport ConsistencySolver::SolveScheduled(bool full_resolve_due) {
  if (full_resolve_due && total_pairs_ <= static_cast<std::size_t>(options_.global_update_max_pairs)) {
    return Solve(true);
  }
  SolverReport report = Solve(false);  // adopts a finished background solve first
  // A due re-solve waits while the previous one still runs: the schedule is
  // geometric, so skipping one delays the next at most by one run.
  if (full_resolve_due && !background_.valid()) StartBackground();
  return report;
}

int ConsistencySolver::PlaceFrame(int k, double threshold) {
  const Block& block = *blocks_[static_cast<std::size_t>(k)];
  std::vector<Pair>& states = states_[static_cast<std::size_t>(k)];
  Shift& s_k = shifts_[static_cast<std::size_t>(k)];
  std::vector<int> previous(block.size(), -2);
  int iteration = 0;
  // IRLS over the frame's own pairs; with the partners fixed the weighted
  // least-squares step is a weighted mean of s_i + U_ik.
  while (iteration < options_.max_local_iterations) {
    ++iteration;
    int changes = 0;
    double sum_w = 0, sum_x = 0, sum_y = 0;
    for (std::size_t q = 0; q < block.size(); ++q) {
      const std::size_t i = static_cast<std::size_t>(block[q].i);
      double r = Choose(k, static_cast<int>(q), threshold);
      Pair& p = states[q];
      const int choice = p.state.chosen * 64 + (p.state.snapped ? 1 + (p.state.snap_na + 3) * 7 + p.state.snap_nb + 3 : 0);
      if (choice != previous[q]) ++changes;
      previous[q] = choice;
      p.work_weight = 0;
      if (!std::isfinite(r) || flagged_[i]) continue;
      // First iteration: the triangle score vetoes pairs the warm start fits.
      if (iteration == 1) r = std::max(r, p.triangle_score);
      const double w = GemanMcClureWeight(r, threshold);
      p.work_weight = w;
      const Shift v = shifts_[i] + p.state.used_j_from_i;
      sum_w += w;
      sum_x += w * v.x;
      sum_y += w * v.y;
    }
    if (!(sum_w > 0)) break;
    const Shift next{sum_x / sum_w, sum_y / sum_w};
    const double moved = Length(next - s_k);
    s_k = next;
    if (iteration > 1 && changes == 0 && moved < options_.convergence_px) break;
  }
  // Classification and flagging of the new frame.
  int measured = 0, inliers = 0;
  for (std::size_t q = 0; q < block.size(); ++q) {
    const std::size_t i = static_cast<std::size_t>(block[q].i);
    const double r = Choose(k, static_cast<int>(q), threshold);
    PairState& state = states[q].state;
    if (std::isfinite(r)) ++measured;
    state.inlier = std::isfinite(r) && r <= threshold && !flagged_[i];
    state.weight = std::isfinite(r) && !flagged_[i] ? GemanMcClureWeight(r, threshold) : 0.0;
    inliers += state.inlier;
  }
  const double required = std::max(options_.min_inlier_fraction * measured,
                                   static_cast<double>(std::min(options_.min_inlier_pairs, k)));
  const bool flagged = k > 0 && (inliers < required || inliers == 0);
  flagged_[static_cast<std::size_t>(k)] = flagged;
  if (flagged) {
    for (Pair& p : states) {
      p.state.inlier = false;
      p.state.weight = 0;
    }
    int before = k - 1;
    while (before >= 0 && flagged_[static_cast<std::size_t>(before)]) --before;
    if (before >= 0) s_k = shifts_[static_cast<std::size_t>(before)];
  }
  return iteration;
}

void ConsistencySolver::RecomputeTotals() {
  totals_ = Totals{};
  std::fill(frame_inliers_.begin(), frame_inliers_.end(), 0);
  std::fill(frame_sum_sq_.begin(), frame_sum_sq_.end(), 0.0);
  for (std::size_t j = 1; j < blocks_.size(); ++j) AddToTotals(static_cast<int>(j));
}

int ConsistencySolver::CatchUp(double threshold) {
  const int first = catch_up_next_ < catch_up_end_ ? catch_up_next_ : num_frames_;
  for (int done = 0; done < options_.catch_up_frames_per_solve && catch_up_next_ < catch_up_end_; ++done) {
    const int k = catch_up_next_++;
    AddToTotals(k, -1);
    WarmStart(k);
    PlaceFrame(k, threshold);
    AddToTotals(k);
  }
  return first;
}

void ConsistencySolver::AddToTotals(int frame, int sign) {
  const std::size_t j = static_cast<std::size_t>(frame);
  const Block& block = *blocks_[j];
  std::vector<Pair>& states = states_[j];
  for (std::size_t q = 0; q < block.size(); ++q) {
    if (block[q].candidates.empty()) continue;
    PairState& state = states[q].state;
    const std::size_t i = static_cast<std::size_t>(block[q].i);
    totals_.measured += sign;
    if (state.chosen > 0) totals_.not_brightest += sign;
    // Taking away uses the residual that was added, not today's.
    if (sign > 0 && state.chosen >= 0) state.residual_px = Length(shifts_[j] - shifts_[i] - state.used_j_from_i);
    if (!state.inlier) continue;
    totals_.inlier += sign;
    if (state.snapped) totals_.snapped += sign;
    const double r2 = sign * state.residual_px * state.residual_px;
    totals_.sum_sq += r2;
    frame_sum_sq_[i] += r2;
    frame_sum_sq_[j] += r2;
    frame_inliers_[i] += sign;
    frame_inliers_[j] += sign;
  }
}

SolverReport ConsistencySolver::MakeReport(int iterations, bool converged, int reselections) const {
  SolverReport report;
  const int n = num_frames_;
  report.shifts = shifts_;
  report.flagged = flagged_;
  report.frame_residual_px.assign(static_cast<std::size_t>(n), kNaN);
  report.frame_inlier_pairs = frame_inliers_;
  for (int k = 0; k < n; ++k) {
    const int count = frame_inliers_[static_cast<std::size_t>(k)];
    // (max: AddToTotals' subtractions may leave a rounding below 0.)
    if (count > 0) report.frame_residual_px[static_cast<std::size_t>(k)] = std::sqrt(std::max(0.0, frame_sum_sq_[static_cast<std::size_t>(k)]) / count);
    if (flagged_[static_cast<std::size_t>(k)]) ++report.flagged_frames;
  }
  report.measured_pairs = totals_.measured;
  report.inlier_pairs = totals_.inlier;
  report.pairs_snapped = totals_.snapped;
  report.pairs_not_brightest = totals_.not_brightest;
  report.reselections = reselections;
  report.consistency_rms_px = totals_.inlier > 0 ? std::sqrt(std::max(0.0, totals_.sum_sq) / totals_.inlier) : 0.0;
  report.rejected_pair_fraction =
      totals_.measured > 0 ? static_cast<double>(totals_.measured - totals_.inlier) / totals_.measured : 0.0;
  report.inlier_threshold_px = last_threshold_px_;
  report.robust_sigma_px = last_sigma_px_;
  report.cycles = last_cycles_;
  report.iterations = iterations;
  report.cg_iterations = last_cg_iterations_;
  report.converged = converged;
  std::ostringstream message;
  message << (converged ? "converged" : "iteration limit reached") << " after " << iterations
          << " iterations; " << report.inlier_pairs << "/" << report.measured_pairs
          << " pairs inlier (threshold " << last_threshold_px_ << " px), " << report.flagged_frames
          << " frames flagged";
  report.message = message.str();
  return report;
}

void ConsistencySolver::StartBackground() {
  if (background_.valid() || num_frames_ == 0) return;
  auto cancel = std::make_shared<std::atomic<bool>>(false);
  background_cancel_ = cancel;
  background_generation_ = generation_;
  // The snapshot shares the immutable blocks and their index: O(frames) here, the O(pairs)
  // copy of the state happens on the background thread.
  background_ = std::async(std::launch::async, [options = options_, hop_test = hop_test_, blocks = blocks_,
                                                index = index_, cancel]() {
    // Low priority (Linux: per-thread nice 10, ~10 % of a core's share
    // against the live update's threads): the re-solve mostly uses the cycles
    // the live updates leave idle, so it barely delays a drift message, yet
    // still progresses when frames arrive back to back. (At 19 it starved on
    // a loaded machine: one of eight re-solves over 1000 frames finished.)
    setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 10);
    auto solver = std::make_unique<ConsistencySolver>(options);
    solver->cancel_ = cancel.get();
    solver->hop_test_ = hop_test;
    solver->LoadSnapshot(blocks, index);
    solver->SolveGlobal(true);
    solver->cancel_ = nullptr;
    return solver;
  });
}

void ConsistencySolver::StopBackground() {
  if (!background_.valid()) return;
  background_cancel_->store(true);
  background_.get();
}

int ConsistencySolver::AdoptBackground() {
  if (!background_.valid() ||
      background_.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
    return 0;
  }
  std::unique_ptr<ConsistencySolver> done = background_.get();
  if (background_cancel_->load() || background_generation_ != generation_) return 0;
  const int frames = done->num_frames_;
  if (frames > num_frames_) return 0;
  for (int j = 0; j < frames; ++j) {
    if (done->blocks_[static_cast<std::size_t>(j)] != blocks_[static_cast<std::size_t>(j)]) return 0;
  }
  for (int j = 0; j < frames; ++j) states_[static_cast<std::size_t>(j)].swap(done->states_[static_cast<std::size_t>(j)]);
  std::copy(done->shifts_.begin(), done->shifts_.end(), shifts_.begin());
  std::copy(done->flagged_.begin(), done->flagged_.end(), flagged_.begin());
  last_floor_px_ = done->last_floor_px_;
  last_threshold_px_ = done->last_threshold_px_;
  last_sigma_px_ = done->last_sigma_px_;
  last_cycles_ = done->last_cycles_;
  // The snapshot's totals cover its own pairs (blocks 0..frames-1); the
  // frames placed since add their pairs. Frames not yet placed add theirs
  // when the caller places them. So adoption costs O(frames + pairs of the
  // frames added meanwhile), not a pass over every pair.
  totals_ = done->totals_;
  std::copy(done->frame_inliers_.begin(), done->frame_inliers_.end(), frame_inliers_.begin());
  std::copy(done->frame_sum_sq_.begin(), done->frame_sum_sq_.end(), frame_sum_sq_.begin());
  std::fill(frame_inliers_.begin() + frames, frame_inliers_.end(), 0);
  std::fill(frame_sum_sq_.begin() + frames, frame_sum_sq_.end(), 0.0);
  // The frames placed since keep their shifts for now (counted as they
  // are) and are re-placed against the new solution a few per update
  // (CatchUp), so adoption costs no more than an update or so.
  for (int k = frames; k < placed_frames_; ++k) AddToTotals(k);
  catch_up_next_ = frames;
  catch_up_end_ = placed_frames_;
  return frames;
}

SolverReport ConsistencySolver::SolveGlobal(bool from_scratch) {
  const int n = num_frames_;
  if (n == 0) {
    SolverReport report;
    report.converged = true;
    report.message = "no frames";
    return report;
  }
  last_cg_iterations_ = 0;
  catch_up_next_ = catch_up_end_ = 0;  // every frame is solved here
  // Flat index of pair q of frame j: offset[j] + q.
  std::vector<std::size_t> offset(static_cast<std::size_t>(n) + 1, 0);
  for (int j = 0; j < n; ++j) offset[static_cast<std::size_t>(j) + 1] = offset[static_cast<std::size_t>(j)] + blocks_[static_cast<std::size_t>(j)]->size();
  const std::size_t total = offset.back();
  std::vector<int> chosen_before(total);
  for (int j = 0; j < n; ++j) {
    const std::vector<Pair>& states = states_[static_cast<std::size_t>(j)];
    for (std::size_t q = 0; q < states.size(); ++q) chosen_before[offset[static_cast<std::size_t>(j)] + q] = states[q].state.chosen;
  }
  // Every stored pair, in (j, q) order.
  auto for_each_pair = [&](auto&& f) {
    for (int j = 1; j < n; ++j) {
      const std::size_t size = blocks_[static_cast<std::size_t>(j)]->size();
      for (std::size_t q = 0; q < size; ++q) f(j, static_cast<int>(q), offset[static_cast<std::size_t>(j)] + q);
    }
  };
  auto state_of = [&](int j, int q) -> Pair& {
    return states_[static_cast<std::size_t>(j)][static_cast<std::size_t>(q)];
  };
  auto measurement_of = [&](int j, int q) -> const PairMeasurement& {
    return (*blocks_[static_cast<std::size_t>(j)])[static_cast<std::size_t>(q)];
  };

  // 1-2. Triangle scores and warm start of the frames not yet placed.
  int first_new = std::max(1, placed_frames_);
  if (from_scratch) {
    first_new = 1;
    for (auto& states : states_) {
      for (Pair& p : states) {
        p.state.chosen = -1;
        p.triangle_score = -1;
        p.triangle_hop = Shift{};
      }
    }
    std::fill(flagged_.begin(), flagged_.end(), false);
    last_floor_px_ = options_.min_threshold_px;
  }
  std::vector<char> fresh_score(total, 0);
  for (int j = 1; j < n; ++j) {
    if (Cancelled()) return SolverReport{};
    const std::size_t size = blocks_[static_cast<std::size_t>(j)]->size();
    for (std::size_t q = 0; q < size; ++q) {
      Pair& p = state_of(j, static_cast<int>(q));
      if (j >= first_new || p.triangle_score < 0) {
        ScoreTriangles(j, static_cast<int>(q));
        fresh_score[offset[static_cast<std::size_t>(j)] + q] = 1;
      }
    }
  }
  shifts_[0] = Shift{};
  for (int k = first_new; k < n; ++k) WarmStart(k);
  placed_frames_ = n;

  // 3. IRLS with a shrinking threshold.
  std::size_t measured_pairs = 0;
  for_each_pair([&](int j, int q, std::size_t) { measured_pairs += !measurement_of(j, q).candidates.empty(); });
  auto robust_floor = [&](double threshold, double* sigma) {
    std::vector<double> inlier_residuals;
    for_each_pair([&](int j, int q, std::size_t) {
      // Unsnapped pairs only: with a lattice, random garbage snaps to some
      // lattice vector and would inflate the scale (and so the threshold).
      const PairState& state = state_of(j, q).state;
      if (std::isfinite(state.residual_px) && state.residual_px < threshold && !state.snapped) {
        inlier_residuals.push_back(state.residual_px);
      }
    });
    // Too few pairs to measure a scale (garbage): fall back to the minimum
    // threshold rather than to a scale estimated from random residuals.
    const std::size_t needed = std::max<std::size_t>(3, measured_pairs / 10);
    *sigma = inlier_residuals.size() < needed ? 0.0 : Median(&inlier_residuals) / kRayleighMedian;
    double cap = options_.max_threshold_px;
    if (hop_test_) cap = std::min(cap, hop_test_->hop_px());
    return std::max(options_.min_threshold_px, std::min(cap, options_.scale_multiplier * *sigma));
  };
  struct Choice {
    int candidate = -2, na = 0, nb = 0;
    bool operator==(const Choice& o) const { return candidate == o.candidate && na == o.na && nb == o.nb; }
  };
  // Start from the choices of the previous Solve so that an incremental solve
  // whose old pairs keep their candidates can converge at once.
  std::vector<Choice> choice_previous(total);
  for_each_pair([&](int j, int q, std::size_t index) {
    const PairState& state = state_of(j, q).state;
    choice_previous[index] = Choice{state.chosen, state.snapped ? state.snap_na : 0,
                                    state.snapped ? state.snap_nb : 0};
  });
  double threshold = std::numeric_limits<double>::infinity();
  double sigma = 0;
  if (from_scratch) {
    // The warm start's median residual sets the scale of the first, nearly
    // convex, iterations.
    std::vector<double> finite;
    for_each_pair([&](int j, int q, std::size_t) {
      const double r = Choose(j, q, threshold);
      if (std::isfinite(r)) finite.push_back(r);
    });
    const double median = finite.empty() ? 0.0 : Median(&finite);
    threshold = std::max(options_.scratch_start_factor * options_.min_threshold_px, 2 * median);
  } else {
    threshold = options_.incremental_start_factor * std::max(last_floor_px_, options_.min_threshold_px);
  }
  double floor = options_.min_threshold_px;
  int iteration = 0;
  bool converged = false;
  while (iteration < options_.max_iterations) {
    if (Cancelled()) return SolverReport{};
    ++iteration;
    floor = robust_floor(threshold, &sigma);
    threshold = std::max(threshold, floor);
    int changes = 0;
    for_each_pair([&](int j, int q, std::size_t index) {
      Pair& p = state_of(j, q);
      double r = Choose(j, q, threshold);
      if (!std::isfinite(r)) {
        p.work_weight = 0;
        return;
      }
      // Only discrete changes (candidate, snap) count: the weights are
      // continuous in r, so borderline inlier flips do not move the solution.
      const PairState& state = p.state;
      const Choice choice{state.chosen, state.snapped ? state.snap_na : 0,
                          state.snapped ? state.snap_nb : 0};
      if (!(choice == choice_previous[index])) ++changes;
      choice_previous[index] = choice;
      // First iteration: the triangle score vetoes pairs the warm start
      // happens to fit (MPLS-style initial weights).
      if (iteration == 1 && fresh_score[index]) r = std::max(r, p.triangle_score);
      p.work_weight = GemanMcClureWeight(r, threshold);
    });
    const std::vector<Shift> before = shifts_;
    SolveLinear();
    double moved = 0;
    for (int k = 0; k < n; ++k) {
      moved = std::max(moved, Length(shifts_[static_cast<std::size_t>(k)] -
                                      before[static_cast<std::size_t>(k)]));
    }
    if (threshold <= floor && changes == 0 && moved < options_.convergence_px) {
      converged = true;
      break;
    }
    threshold = std::max(floor, threshold * options_.shrink_factor);
  }

  // 4. Final classification, flagging, re-solve without flagged frames.
  auto classify = [&](const std::vector<bool>& excluded) {
    for_each_pair([&](int j, int q, std::size_t) {
      const int i = static_cast<int>(measurement_of(j, q).i);
      Pair& p = state_of(j, q);
      PairState& state = p.state;
      const double r = Choose(j, q, threshold);
      const bool kept = !excluded[static_cast<std::size_t>(i)] && !excluded[static_cast<std::size_t>(j)];
      state.inlier = std::isfinite(r) && r <= threshold && kept;
      state.weight = std::isfinite(r) && kept ? GemanMcClureWeight(r, threshold) : 0.0;
      p.work_weight = state.weight;
    });
  };
  auto find_flagged = [&]() {
    std::vector<bool> flagged(static_cast<std::size_t>(n), false);
    std::vector<int> measured(static_cast<std::size_t>(n), 0), inliers(static_cast<std::size_t>(n), 0);
    for_each_pair([&](int j, int q, std::size_t) {
      const PairMeasurement& m = measurement_of(j, q);
      if (m.candidates.empty()) return;
      const std::size_t i = static_cast<std::size_t>(m.i);
      ++measured[i];
      ++measured[static_cast<std::size_t>(j)];
      if (state_of(j, q).state.inlier) {
        ++inliers[i];
        ++inliers[static_cast<std::size_t>(j)];
      }
    });
    for (int k = 0; k < n && n > 1; ++k) {
      const double required =
          std::max(options_.min_inlier_fraction * measured[static_cast<std::size_t>(k)],
                   static_cast<double>(std::min(options_.min_inlier_pairs, n - 1)));
      flagged[static_cast<std::size_t>(k)] =
          inliers[static_cast<std::size_t>(k)] < required || inliers[static_cast<std::size_t>(k)] == 0;
    }
    return flagged;
  };
  std::vector<bool> none(static_cast<std::size_t>(n), false);
  classify(none);
  std::vector<bool> flagged = find_flagged();
  if (std::find(flagged.begin(), flagged.end(), true) != flagged.end()) {
    classify(flagged);
    SolveLinear();
    classify(flagged);
    // Frames that lost their inliers with the flagged frames are flagged too;
    // no further iteration (bounded work).
    const std::vector<bool> again = find_flagged();
    for (int k = 0; k < n; ++k) {
      if (again[static_cast<std::size_t>(k)]) flagged[static_cast<std::size_t>(k)] = true;
    }
  }
  flagged_ = flagged;
  last_floor_px_ = floor;

  // Flagged frames: linear interpolation in frame index between the nearest
  // placed neighbours (drift is smooth); nearest one when only one side exists.
  for (int k = 0; k < n; ++k) {
    if (!flagged_[static_cast<std::size_t>(k)]) continue;
    int before = k - 1, after = k + 1;
    while (before >= 0 && flagged_[static_cast<std::size_t>(before)]) --before;
    while (after < n && flagged_[static_cast<std::size_t>(after)]) ++after;
    Shift& s = shifts_[static_cast<std::size_t>(k)];
    if (before >= 0 && after < n) {
      const double t = static_cast<double>(k - before) / (after - before);
      s = shifts_[static_cast<std::size_t>(before)] * (1 - t) + shifts_[static_cast<std::size_t>(after)] * t;
    } else if (before >= 0) {
      s = shifts_[static_cast<std::size_t>(before)];
    } else if (after < n) {
      s = shifts_[static_cast<std::size_t>(after)];
    }
  }
  const Shift gauge = shifts_[0];
  for (Shift& s : shifts_) s -= gauge;

  // Report.
  RecomputeTotals();
  int reselections = 0;
  for_each_pair([&](int j, int q, std::size_t index) {
    const int chosen = state_of(j, q).state.chosen;
    if (chosen_before[index] >= 0 && chosen_before[index] != chosen) ++reselections;
  });
  last_threshold_px_ = threshold;
  last_sigma_px_ = sigma;
  last_cycles_ = EvaluateCycles();
  return MakeReport(iteration, converged, reselections);
}

CycleStatistics ConsistencySolver::EvaluateCycles() const {
  CycleStatistics stats;
  const int n = num_frames_;
  if (n < 3 || options_.max_cycle_checks == 0) return stats;
  std::vector<double> errors;
  auto lookup = [&](int i, int j) -> std::pair<const PairMeasurement*, const Pair*> {
    const int q = Find(i, j);
    if (q < 0) return {nullptr, nullptr};
    return {&(*blocks_[static_cast<std::size_t>(j)])[static_cast<std::size_t>(q)],
            &states_[static_cast<std::size_t>(j)][static_cast<std::size_t>(q)]};
  };
  // Triangle i < j < m.
  auto check = [&](int i, int j, int m) {
    const auto ij = lookup(i, j), jm = lookup(j, m), im = lookup(i, m);
    if (!ij.second || !jm.second || !im.second) return;
    if (!ij.second->state.inlier || !jm.second->state.inlier || !im.second->state.inlier) return;
    const Shift used = ij.second->state.used_j_from_i + jm.second->state.used_j_from_i -
                       im.second->state.used_j_from_i;
    errors.push_back(Length(used));
    if (hop_test_) {
      auto raw = [](const std::pair<const PairMeasurement*, const Pair*>& p) {
        return p.first->candidates[static_cast<std::size_t>(p.second->state.chosen)].j_from_i;
      };
      const Shift e = raw(ij) + raw(jm) - raw(im);
      if (hop_test_->Hop(e)) ++stats.lattice_vector_count;
    }
  };
  const double all = static_cast<double>(n) * (n - 1) * (n - 2) / 6.0;
  if (all <= options_.max_cycle_checks) {
    for (int m = 2; m < n; ++m)
      for (int j = 1; j < m; ++j)
        for (int i = 0; i < j; ++i) check(i, j, m);
  } else {
    // Random triangles among stored pairs: a frame m, two of its earlier
    // partners (far-apart frames have no pair, so uniform triples would
    // rarely form a triangle).
    std::mt19937 rng(static_cast<unsigned>(n));
    std::uniform_int_distribution<int> frame(2, n - 1);
    for (int sample = 0; sample < options_.max_cycle_checks; ++sample) {
      const int m = frame(rng);
      const Block& block = *blocks_[static_cast<std::size_t>(m)];
      if (block.size() < 2) continue;
      std::uniform_int_distribution<std::size_t> partner(0, block.size() - 1);
      int a = static_cast<int>(block[partner(rng)].i), b = static_cast<int>(block[partner(rng)].i);
      if (a == b) continue;
      if (a > b) std::swap(a, b);
      check(a, b, m);
    }
  }
  stats.evaluated = static_cast<int>(errors.size());
  if (!errors.empty()) {
    stats.max_px = *std::max_element(errors.begin(), errors.end());
    stats.median_px = Median(&errors);
  }
  return stats;
}

ShiftMatrix ConsistencySolver::Matrices() const {
  ShiftMatrix matrix = ShiftMatrix::Missing(num_frames_);
  ForEachUsedPair(0, num_frames_, [&](int i, int j, Shift u, PairStatus status, Shift /*snap*/) {
    matrix.Set(i, j, u, status);
  });
  return matrix;
}

}  // namespace livealign
