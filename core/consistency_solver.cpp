#include "core/consistency_solver.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <sstream>
#include <stdexcept>
#include <utility>

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
  if (max_hop_rounds < 0) return fail("max_hop_rounds must be >= 0");
  if (!(shrink_factor > 0 && shrink_factor < 1)) return fail("shrink_factor must be in (0, 1)");
  if (!(scratch_start_factor >= 1)) return fail("scratch_start_factor must be >= 1");
  if (!(incremental_start_factor >= 1)) return fail("incremental_start_factor must be >= 1");
  if (!(snap_tolerance > 0 && snap_tolerance < 0.5)) return fail("snap_tolerance must be in (0, 0.5)");
  if (!(min_inlier_fraction >= 0 && min_inlier_fraction <= 1)) {
    return fail("min_inlier_fraction must be in [0, 1]");
  }
  if (min_inlier_pairs < 0) return fail("min_inlier_pairs must be >= 0");
  if (!(convergence_px > 0)) return fail("convergence_px must be > 0");
  if (max_cycle_checks < 0) return fail("max_cycle_checks must be >= 0");
  return true;
}

ConsistencySolver::ConsistencySolver(const SolverOptions& options) : options_(options) {
  std::string error;
  if (!options_.Check(&error)) throw std::invalid_argument("ConsistencySolver: " + error);
}

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
  for (auto& m : pairs_with_earlier) {
    Pair p;
    p.measurement = std::move(m);
    p.state.residual_px = kNaN;
    pairs_.push_back(std::move(p));
  }
  ++num_frames_;
  shifts_.resize(static_cast<std::size_t>(num_frames_));
  flagged_.resize(static_cast<std::size_t>(num_frames_), false);
}

void ConsistencySolver::CheckPairIndices(int i, int j, const char* who) const {
  if (i < 0 || i >= j || j >= num_frames_) {
    throw std::invalid_argument(std::string(who) + ": pair (" + std::to_string(i) + ", " +
                                std::to_string(j) + ") requires i < j < num_frames()");
  }
}

void ConsistencySolver::UpdatePair(const PairMeasurement& m) {
  CheckPairIndices(static_cast<int>(m.i), static_cast<int>(m.j), "ConsistencySolver::UpdatePair");
  for (const PeakCandidate& c : m.candidates) {
    if (!std::isfinite(c.j_from_i.x) || !std::isfinite(c.j_from_i.y)) {
      throw std::invalid_argument("ConsistencySolver::UpdatePair: non-finite candidate shift");
    }
  }
  Pair& p = pair(static_cast<int>(m.i), static_cast<int>(m.j));
  p.measurement = m;
  p.state = PairState{};
  p.state.residual_px = kNaN;
  p.triangle_score = -1;
  p.triangle_na = p.triangle_nb = 0;
}

void ConsistencySolver::SetLattice(std::optional<Lattice> lattice) {
  if (lattice) lattice = Lattice::Reduced(lattice->a, lattice->b);  // validates
  lattice_ = lattice;
}

const ConsistencySolver::PairState& ConsistencySolver::pair_state(int i, int j) const {
  CheckPairIndices(i, j, "ConsistencySolver::pair_state");
  return pair(i, j).state;
}

const PairMeasurement& ConsistencySolver::pair_measurement(int i, int j) const {
  CheckPairIndices(i, j, "ConsistencySolver::pair_measurement");
  return pair(i, j).measurement;
}

bool ConsistencySolver::Estimate(int a, int b, Shift* b_from_a) const {
  const int i = std::min(a, b), j = std::max(a, b);
  const Pair& p = pair(i, j);
  if (p.measurement.candidates.empty()) return false;
  Shift j_from_i;
  if (p.state.chosen >= 0) {
    j_from_i = p.state.used_j_from_i;
  } else {
    j_from_i = p.measurement.candidates[0].j_from_i;
    if (lattice_) j_from_i -= lattice_->Vector(p.triangle_na, p.triangle_nb);
  }
  *b_from_a = a < b ? j_from_i : j_from_i.Inverse();
  return true;
}

ConsistencySolver::EstimateTable ConsistencySolver::BuildEstimateTable() const {
  const std::size_t n = static_cast<std::size_t>(num_frames_);
  EstimateTable table;
  table.b_from_a.assign(n * n, Shift{});
  table.valid.assign(n * n, 0);
  for (int j = 1; j < num_frames_; ++j)
    for (int i = 0; i < j; ++i) RefreshEstimate(i, j, &table);
  return table;
}

void ConsistencySolver::RefreshEstimate(int i, int j, EstimateTable* table) const {
  const std::size_t n = static_cast<std::size_t>(num_frames_);
  const std::size_t ij = static_cast<std::size_t>(i) * n + static_cast<std::size_t>(j);
  const std::size_t ji = static_cast<std::size_t>(j) * n + static_cast<std::size_t>(i);
  Shift j_from_i;
  const bool valid = Estimate(i, j, &j_from_i);
  table->valid[ij] = table->valid[ji] = valid;
  table->b_from_a[ij] = j_from_i;
  table->b_from_a[ji] = j_from_i.Inverse();
}

void ConsistencySolver::ScoreTriangles(int i, int j, const EstimateTable& table) {
  Pair& p = pair(i, j);
  p.triangle_na = p.triangle_nb = 0;
  p.triangle_score = 0;  // neutral when no triangle exists
  if (p.measurement.candidates.empty()) return;
  // The pair's own value is its brightest peak: the question is whether that
  // peak is consistent with the rest of the graph.
  const Shift r_ij = p.measurement.candidates[0].j_from_i;
  const std::size_t n = static_cast<std::size_t>(num_frames_);
  const Shift* row_j = &table.b_from_a[static_cast<std::size_t>(j) * n];  // m_from_j
  const char* valid_j = &table.valid[static_cast<std::size_t>(j) * n];
  const Shift* row_i = &table.b_from_a[static_cast<std::size_t>(i) * n];  // m_from_i
  const char* valid_i = &table.valid[static_cast<std::size_t>(i) * n];
  std::vector<Shift> errors;
  errors.reserve(n);
  for (std::size_t m = 0; m < n; ++m) {
    if (!valid_j[m] || !valid_i[m] || static_cast<int>(m) == i || static_cast<int>(m) == j) continue;
    // R_ij + R_jm + R_mi with R_mi = -(m_from_i).
    errors.push_back(r_ij + row_j[m] - row_i[m]);
  }
  if (errors.empty()) return;
  std::vector<double> norms(errors.size());
  if (lattice_) {
    // A hopped pair makes most of its triangles err by the same lattice vector.
    const double tolerance = options_.snap_tolerance * lattice_->ShortestSpacing();
    std::vector<std::pair<int, int>> hops;
    for (const Shift& e : errors) {
      if (Length(e) < tolerance) continue;  // cheap exit for consistent triangles
      const LatticeVector n = lattice_->NearestLatticeVector(e);
      if (!n.IsZero() && Length(e - n.vector) < tolerance) hops.emplace_back(n.na, n.nb);
    }
    if (2 * hops.size() >= errors.size()) {
      std::sort(hops.begin(), hops.end());
      std::pair<int, int> mode = hops[0];
      std::size_t best = 0;
      for (std::size_t s = 0; s < hops.size();) {
        std::size_t e = s;
        while (e < hops.size() && hops[e] == hops[s]) ++e;
        if (e - s > best) {
          best = e - s;
          mode = hops[s];
        }
        s = e;
      }
      if (2 * best >= errors.size()) {
        p.triangle_na = mode.first;
        p.triangle_nb = mode.second;
      }
    }
  }
  const Shift hop = lattice_ ? lattice_->Vector(p.triangle_na, p.triangle_nb) : Shift{};
  for (std::size_t m = 0; m < errors.size(); ++m) norms[m] = Length(errors[m] - hop);
  p.triangle_score = Median(&norms);
}

void ConsistencySolver::WarmStart(int k) {
  std::vector<std::pair<double, double>> xs, ys;
  std::vector<double> scores;
  for (int i = 0; i < k; ++i) {
    Shift k_from_i;
    if (flagged_[static_cast<std::size_t>(i)] || !Estimate(i, k, &k_from_i)) continue;
    scores.push_back(std::max(0.0, pair(i, k).triangle_score));
  }
  std::vector<double> sorted_scores = scores;
  const double typical = scores.empty() ? 0.0 : Median(&sorted_scores);
  const double scale = std::max(options_.min_threshold_px, typical);
  std::size_t n = 0;
  for (int i = 0; i < k; ++i) {
    Shift k_from_i;
    if (flagged_[static_cast<std::size_t>(i)] || !Estimate(i, k, &k_from_i)) continue;
    const double d = scores[n++];
    const double weight = 1.0 / (1.0 + (d / scale) * (d / scale));
    const Shift s = shifts_[static_cast<std::size_t>(i)] + k_from_i;
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

double ConsistencySolver::Choose(int i, int j, double threshold_px) {
  Pair& p = pair(i, j);
  const auto& candidates = p.measurement.candidates;
  PairState& state = p.state;
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
  if (lattice_ && best_residual > threshold_px) {
    const double tolerance = options_.snap_tolerance * lattice_->ShortestSpacing();
    double best_snapped = std::numeric_limits<double>::infinity();
    for (std::size_t c = 0; c < candidates.size(); ++c) {
      const Shift v = predicted - candidates[c].j_from_i;
      const LatticeVector n = lattice_->NearestLatticeVector(v);
      const double residual = Length(v - n.vector);
      // Candidates a lattice vector apart tie; the margin keeps the earlier
      // (brighter) one so the choice cannot flicker between iterations.
      if (!n.IsZero() && residual < tolerance && residual < best_snapped - 1e-3) {
        best_snapped = residual;
        state.chosen = static_cast<int>(c);
        state.used_j_from_i = candidates[c].j_from_i + n.vector;
        state.snapped = true;
        state.snap_na = n.na;
        state.snap_nb = n.nb;
      }
    }
    if (state.snapped) best_residual = best_snapped;
  }
  state.residual_px = best_residual;
  return best_residual;
}

void ConsistencySolver::SolveLinear(const Eigen::MatrixXd& weights) {
  // Minimises sum_ij w_ij |s_j - s_i - U_ij|^2 + eps sum_i |s_i - s_i^prev|^2.
  // The tiny eps term makes the Laplacian definite (gauge) and keeps frames
  // without any weight where they were.
  const int n = num_frames_;
  Eigen::VectorXd degree = weights.rowwise().sum();
  const double mean_degree = degree.sum() / n;
  if (!(mean_degree > 0)) return;
  const double eps = 1e-9 * mean_degree;
  Eigen::MatrixXd rhs = Eigen::MatrixXd::Zero(n, 2);
  Eigen::MatrixXd x(n, 2);
  for (int i = 0; i < n; ++i) {
    x(i, 0) = shifts_[static_cast<std::size_t>(i)].x;
    x(i, 1) = shifts_[static_cast<std::size_t>(i)].y;
  }
  for (int j = 1; j < n; ++j) {
    for (int i = 0; i < j; ++i) {
      const double w = weights(i, j);
      if (w <= 0) continue;
      const Shift u = pair(i, j).state.used_j_from_i;
      rhs(j, 0) += w * u.x;
      rhs(j, 1) += w * u.y;
      rhs(i, 0) -= w * u.x;
      rhs(i, 1) -= w * u.y;
    }
  }
  rhs += eps * x;
  const Eigen::VectorXd diagonal = degree.array() + eps;
  const Eigen::VectorXd inverse_diagonal = diagonal.cwiseInverse();
  // Both axes at once (same matrix): one pass over the weights per sweep.
  auto apply = [&](const Eigen::MatrixXd& v) -> Eigen::MatrixXd {
    Eigen::MatrixXd out = weights * v;
    out = diagonal.asDiagonal() * v - out;
    return out;
  };
  Eigen::MatrixXd r = rhs - apply(x);
  Eigen::MatrixXd z = inverse_diagonal.asDiagonal() * r;
  Eigen::MatrixXd p = z;
  Eigen::Array2d rz(r.col(0).dot(z.col(0)), r.col(1).dot(z.col(1)));
  for (int iteration = 0; iteration < options_.max_cg_iterations; ++iteration) {
    if (z.cwiseAbs().maxCoeff() < options_.cg_tolerance_px) break;
    const Eigen::MatrixXd q = apply(p);
    bool progressed = false;
    for (int axis = 0; axis < 2; ++axis) {
      const double pq = p.col(axis).dot(q.col(axis));
      if (!(pq > 0) || !(rz[axis] > 0)) continue;
      const double alpha = rz[axis] / pq;
      x.col(axis) += alpha * p.col(axis);
      r.col(axis) -= alpha * q.col(axis);
      progressed = true;
    }
    if (!progressed) break;
    z = inverse_diagonal.asDiagonal() * r;
    for (int axis = 0; axis < 2; ++axis) {
      const double rz_next = r.col(axis).dot(z.col(axis));
      const double beta = rz[axis] > 0 ? rz_next / rz[axis] : 0.0;
      p.col(axis) = z.col(axis) + beta * p.col(axis);
      rz[axis] = rz_next;
    }
    ++last_cg_iterations_;
  }
  for (int i = 0; i < n; ++i) {
    if (std::isfinite(x(i, 0)) && std::isfinite(x(i, 1))) {
      shifts_[static_cast<std::size_t>(i)] = Shift{x(i, 0), x(i, 1)};
    }
  }
}

SolverReport ConsistencySolver::Solve(bool from_scratch) {
  SolverReport report;
  const int n = num_frames_;
  if (n == 0) {
    report.converged = true;
    report.message = "no frames";
    return report;
  }
  last_cg_iterations_ = 0;
  std::vector<int> chosen_before(pairs_.size());
  for (std::size_t p = 0; p < pairs_.size(); ++p) chosen_before[p] = pairs_[p].state.chosen;

  // 1-2. Triangle scores and warm start of the frames not yet placed.
  int first_new = std::max(1, placed_frames_);
  if (from_scratch) {
    first_new = 1;
    for (Pair& p : pairs_) {
      p.state.chosen = -1;
      p.triangle_score = -1;
      p.triangle_na = p.triangle_nb = 0;
    }
    std::fill(flagged_.begin(), flagged_.end(), false);
    last_floor_px_ = options_.min_threshold_px;
  }
  std::vector<bool> fresh_score(pairs_.size(), false);
  EstimateTable table = BuildEstimateTable();
  for (int j = 1; j < n; ++j) {
    for (int i = 0; i < j; ++i) {
      Pair& p = pair(i, j);
      if (j >= first_new || p.triangle_score < 0) {
        ScoreTriangles(i, j, table);
        RefreshEstimate(i, j, &table);  // a triangle-detected hop changes it
        fresh_score[PairIndex(i, j)] = true;
      }
    }
  }
  shifts_[0] = Shift{};
  for (int k = first_new; k < n; ++k) WarmStart(k);
  placed_frames_ = n;

  // 3. IRLS with a shrinking threshold.
  std::size_t measured_pairs = 0;
  for (const Pair& p : pairs_) measured_pairs += !p.measurement.candidates.empty();
  auto robust_floor = [&](double threshold, double* sigma) {
    std::vector<double> inlier_residuals;
    for (const Pair& p : pairs_) {
      // Unsnapped pairs only: with a lattice, random garbage snaps to some
      // lattice vector and would inflate the scale (and so the threshold).
      if (std::isfinite(p.state.residual_px) && p.state.residual_px < threshold && !p.state.snapped) {
        inlier_residuals.push_back(p.state.residual_px);
      }
    }
    // Too few pairs to measure a scale (garbage): fall back to the minimum
    // threshold rather than to a scale estimated from random residuals.
    const std::size_t needed = std::max<std::size_t>(3, measured_pairs / 10);
    *sigma = inlier_residuals.size() < needed ? 0.0 : Median(&inlier_residuals) / kRayleighMedian;
    double cap = options_.max_threshold_px;
    if (lattice_) cap = std::min(cap, options_.snap_tolerance * lattice_->ShortestSpacing());
    return std::max(options_.min_threshold_px, std::min(cap, options_.scale_multiplier * *sigma));
  };
  struct Choice {
    int candidate = -2, na = 0, nb = 0;
    bool operator==(const Choice& o) const { return candidate == o.candidate && na == o.na && nb == o.nb; }
  };
  // Start from the choices of the previous Solve so that an incremental solve
  // whose old pairs keep their candidates can converge at once.
  std::vector<Choice> choice_previous(pairs_.size());
  for (std::size_t index = 0; index < pairs_.size(); ++index) {
    const PairState& state = pairs_[index].state;
    choice_previous[index] = Choice{state.chosen, state.snapped ? state.snap_na : 0,
                                    state.snapped ? state.snap_nb : 0};
  }
  double threshold = std::numeric_limits<double>::infinity();
  double sigma = 0;
  if (from_scratch) {
    // The warm start's median residual sets the scale of the first, nearly
    // convex, iterations.
    std::vector<double> finite;
    for (int j = 1; j < n; ++j) {
      for (int i = 0; i < j; ++i) {
        const double r = Choose(i, j, threshold);
        if (std::isfinite(r)) finite.push_back(r);
      }
    }
    const double median = finite.empty() ? 0.0 : Median(&finite);
    threshold = std::max(options_.scratch_start_factor * options_.min_threshold_px, 2 * median);
  } else {
    threshold = options_.incremental_start_factor * std::max(last_floor_px_, options_.min_threshold_px);
  }
  Eigen::MatrixXd weights = Eigen::MatrixXd::Zero(n, n);
  double floor = options_.min_threshold_px;
  int iteration = 0;
  bool converged = false;
  int frames_moved = 0;
  for (int round = 0;; ++round) {
  int round_iterations = 0;
  converged = false;
  while (iteration < options_.max_iterations) {
    ++round_iterations;
    ++iteration;
    floor = robust_floor(threshold, &sigma);
    threshold = std::max(threshold, floor);
    int changes = 0;
    for (int j = 1; j < n; ++j) {
      for (int i = 0; i < j; ++i) {
        const std::size_t index = PairIndex(i, j);
        double r = Choose(i, j, threshold);
        if (!std::isfinite(r)) {
          weights(i, j) = weights(j, i) = 0;
          continue;
        }
        // Only discrete changes (candidate, snap) count: the weights are
        // continuous in r, so borderline inlier flips do not move the solution.
        const PairState& state = pairs_[index].state;
        const Choice choice{state.chosen, state.snapped ? state.snap_na : 0,
                            state.snapped ? state.snap_nb : 0};
        if (!(choice == choice_previous[index])) ++changes;
        choice_previous[index] = choice;
        // First iteration: the triangle score vetoes pairs the warm start
        // happens to fit (MPLS-style initial weights).
        if (round_iterations == 1 && round == 0 && fresh_score[index]) r = std::max(r, pairs_[index].triangle_score);
        const double w = GemanMcClureWeight(r, threshold);
        weights(i, j) = weights(j, i) = w;
      }
    }
    const std::vector<Shift> before = shifts_;
    SolveLinear(weights);
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
  if (!lattice_ || round >= options_.max_hop_rounds || iteration >= options_.max_iterations) break;
  const int moved_now = MoveDisplacedFrames();
  if (moved_now == 0) break;
  frames_moved += moved_now;
  }

  // 4. Final classification, flagging, re-solve without flagged frames.
  auto classify = [&](const std::vector<bool>& excluded) {
    for (int j = 1; j < n; ++j) {
      for (int i = 0; i < j; ++i) {
        PairState& state = pair(i, j).state;
        const double r = Choose(i, j, threshold);
        state.inlier = std::isfinite(r) && r <= threshold &&
                       !excluded[static_cast<std::size_t>(i)] && !excluded[static_cast<std::size_t>(j)];
        state.weight = state.inlier || (std::isfinite(r) && !excluded[static_cast<std::size_t>(i)] &&
                                        !excluded[static_cast<std::size_t>(j)])
                           ? GemanMcClureWeight(r, threshold)
                           : 0.0;
        weights(i, j) = weights(j, i) = state.weight;
      }
    }
  };
  auto find_flagged = [&]() {
    std::vector<bool> flagged(static_cast<std::size_t>(n), false);
    std::vector<int> measured(static_cast<std::size_t>(n), 0), inliers(static_cast<std::size_t>(n), 0);
    for (int j = 1; j < n; ++j) {
      for (int i = 0; i < j; ++i) {
        const Pair& p = pair(i, j);
        if (p.measurement.candidates.empty()) continue;
        ++measured[static_cast<std::size_t>(i)];
        ++measured[static_cast<std::size_t>(j)];
        if (p.state.inlier) {
          ++inliers[static_cast<std::size_t>(i)];
          ++inliers[static_cast<std::size_t>(j)];
        }
      }
    }
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
    SolveLinear(weights);
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
  report.shifts = shifts_;
  report.flagged = flagged_;
  report.frame_residual_px.assign(static_cast<std::size_t>(n), kNaN);
  report.frame_inlier_pairs.assign(static_cast<std::size_t>(n), 0);
  std::vector<double> frame_sum_sq(static_cast<std::size_t>(n), 0.0);
  double sum_sq = 0;
  for (int j = 1; j < n; ++j) {
    for (int i = 0; i < j; ++i) {
      const std::size_t index = PairIndex(i, j);
      Pair& p = pairs_[index];
      PairState& state = p.state;
      if (p.measurement.candidates.empty()) continue;
      ++report.measured_pairs;
      const Shift predicted = shifts_[static_cast<std::size_t>(j)] - shifts_[static_cast<std::size_t>(i)];
      state.residual_px = Length(predicted - state.used_j_from_i);
      if (state.chosen > 0) ++report.pairs_not_brightest;
      if (chosen_before[index] >= 0 && chosen_before[index] != state.chosen) ++report.reselections;
      if (!state.inlier) continue;
      ++report.inlier_pairs;
      if (state.snapped) ++report.pairs_snapped;
      const double r2 = state.residual_px * state.residual_px;
      sum_sq += r2;
      for (int f : {i, j}) {
        frame_sum_sq[static_cast<std::size_t>(f)] += r2;
        ++report.frame_inlier_pairs[static_cast<std::size_t>(f)];
      }
    }
  }
  for (int k = 0; k < n; ++k) {
    const int count = report.frame_inlier_pairs[static_cast<std::size_t>(k)];
    if (count > 0) report.frame_residual_px[static_cast<std::size_t>(k)] = std::sqrt(frame_sum_sq[static_cast<std::size_t>(k)] / count);
    if (flagged_[static_cast<std::size_t>(k)]) ++report.flagged_frames;
  }
  report.consistency_rms_px = report.inlier_pairs > 0 ? std::sqrt(sum_sq / report.inlier_pairs) : 0.0;
  report.rejected_pair_fraction =
      report.measured_pairs > 0
          ? static_cast<double>(report.measured_pairs - report.inlier_pairs) / report.measured_pairs
          : 0.0;
  report.inlier_threshold_px = threshold;
  report.robust_sigma_px = sigma;
  report.cycles = EvaluateCycles();
  report.iterations = iteration;
  report.cg_iterations = last_cg_iterations_;
  report.frames_moved_by_lattice = frames_moved;
  report.converged = converged;
  std::ostringstream message;
  message << (converged ? "converged" : "iteration limit reached") << " after " << iteration
          << " iterations; " << report.inlier_pairs << "/" << report.measured_pairs
          << " pairs inlier (threshold " << threshold << " px), " << report.flagged_frames
          << " frames flagged";
  report.message = message.str();
  return report;
}

int ConsistencySolver::MoveDisplacedFrames() {
  // Vote per frame: an unsnapped inlier pair says "in place"; a pair snapped by
  // A n says the frame is displaced by +A n (frame is j) or -A n (frame is i).
  const int n = num_frames_;
  std::vector<std::vector<std::pair<int, int>>> votes(static_cast<std::size_t>(n));
  std::vector<int> in_place(static_cast<std::size_t>(n), 0);
  for (int j = 1; j < n; ++j) {
    for (int i = 0; i < j; ++i) {
      const PairState& state = pair(i, j).state;
      if (state.chosen < 0) continue;
      // Inlier here means within snap tolerance after snapping.
      const double tolerance = options_.snap_tolerance * lattice_->ShortestSpacing();
      if (!(state.residual_px < tolerance)) continue;
      if (!state.snapped) {
        ++in_place[static_cast<std::size_t>(i)];
        ++in_place[static_cast<std::size_t>(j)];
      } else {
        votes[static_cast<std::size_t>(j)].emplace_back(state.snap_na, state.snap_nb);
        votes[static_cast<std::size_t>(i)].emplace_back(-state.snap_na, -state.snap_nb);
      }
    }
  }
  std::vector<Shift> moves(static_cast<std::size_t>(n));
  int moved = 0;
  for (int k = 0; k < n; ++k) {
    auto& v = votes[static_cast<std::size_t>(k)];
    if (static_cast<int>(v.size()) <= in_place[static_cast<std::size_t>(k)]) continue;
    std::sort(v.begin(), v.end());
    std::size_t best = 0;
    std::pair<int, int> mode;
    for (std::size_t s = 0; s < v.size();) {
      std::size_t e = s;
      while (e < v.size() && v[e] == v[s]) ++e;
      if (e - s > best) {
        best = e - s;
        mode = v[s];
      }
      s = e;
    }
    if (static_cast<int>(best) > in_place[static_cast<std::size_t>(k)]) {
      moves[static_cast<std::size_t>(k)] = lattice_->Vector(mode.first, mode.second);
      ++moved;
    }
  }
  for (int k = 0; k < n; ++k) shifts_[static_cast<std::size_t>(k)] -= moves[static_cast<std::size_t>(k)];
  return moved;
}

CycleStatistics ConsistencySolver::EvaluateCycles() const {
  CycleStatistics stats;
  const int n = num_frames_;
  if (n < 3 || options_.max_cycle_checks == 0) return stats;
  std::vector<double> errors;
  const double tolerance = lattice_ ? options_.snap_tolerance * lattice_->ShortestSpacing() : 0.0;
  auto check = [&](int i, int j, int m) {
    const Pair& ij = pair(i, j);
    const Pair& jm = pair(j, m);
    const Pair& im = pair(i, m);
    if (!ij.state.inlier || !jm.state.inlier || !im.state.inlier) return;
    const Shift used = ij.state.used_j_from_i + jm.state.used_j_from_i - im.state.used_j_from_i;
    errors.push_back(Length(used));
    if (lattice_) {
      auto raw = [](const Pair& p) {
        return p.measurement.candidates[static_cast<std::size_t>(p.state.chosen)].j_from_i;
      };
      const Shift e = raw(ij) + raw(jm) - raw(im);
      const LatticeVector v = lattice_->NearestLatticeVector(e);
      if (!v.IsZero() && Length(e - v.vector) < tolerance) ++stats.lattice_vector_count;
    }
  };
  const double total = static_cast<double>(n) * (n - 1) * (n - 2) / 6.0;
  if (total <= options_.max_cycle_checks) {
    for (int m = 2; m < n; ++m)
      for (int j = 1; j < m; ++j)
        for (int i = 0; i < j; ++i) check(i, j, m);
  } else {
    std::mt19937 rng(static_cast<unsigned>(n));
    std::uniform_int_distribution<int> frame(0, n - 1);
    for (int sample = 0; sample < options_.max_cycle_checks; ++sample) {
      int t[3] = {frame(rng), frame(rng), frame(rng)};
      std::sort(t, t + 3);
      if (t[0] == t[1] || t[1] == t[2]) continue;
      check(t[0], t[1], t[2]);
    }
  }
  stats.evaluated = static_cast<int>(errors.size());
  if (!errors.empty()) {
    stats.max_px = *std::max_element(errors.begin(), errors.end());
    stats.median_px = Median(&errors);
  }
  return stats;
}

ShiftMatrices ConsistencySolver::Matrices() const {
  const int n = num_frames_;
  ShiftMatrices matrices;
  matrices.x_px = Eigen::MatrixXd::Constant(n, n, kNaN);
  matrices.y_px = Eigen::MatrixXd::Constant(n, n, kNaN);
  matrices.status = Eigen::MatrixXi::Zero(n, n);
  for (int k = 0; k < n; ++k) matrices.x_px(k, k) = matrices.y_px(k, k) = 0;
  for (int j = 1; j < n; ++j) {
    for (int i = 0; i < j; ++i) {
      const Pair& p = pair(i, j);
      if (p.measurement.candidates.empty()) continue;
      const Shift u = p.state.chosen >= 0 ? p.state.used_j_from_i : p.measurement.candidates[0].j_from_i;
      matrices.x_px(i, j) = u.x;
      matrices.y_px(i, j) = u.y;
      matrices.x_px(j, i) = -u.x;
      matrices.y_px(j, i) = -u.y;
      const int status = !p.state.inlier  ? ShiftMatrices::kRejected
                         : p.state.snapped ? ShiftMatrices::kSnapped
                                           : ShiftMatrices::kInlier;
      matrices.status(i, j) = matrices.status(j, i) = status;
    }
  }
  return matrices;
}

}  // namespace livealign
