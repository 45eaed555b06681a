#include "core/registration_engine.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <sstream>
#include <stdexcept>

#include "core/averager.hpp"
#include "core/consistency_solver.hpp"
#include "core/correlator.hpp"
#include "core/lattice.hpp"
#include "core/temporal_check.hpp"
#include "core/template_registration.hpp"
#include "core/thread_pool.hpp"

namespace livealign {
namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

CorrelatorOptions ToCorrelatorOptions(const EngineOptions& o) {
  CorrelatorOptions c;
  c.window = *WindowTypeFromName(o.window);
  c.tukey_alpha = o.tukey_alpha;
  c.weight.type = *FourierWeightTypeFromName(o.weight);
  c.weight.sigma_cycles_per_px = o.weight_sigma;
  c.weight.cutoff_cycles_per_px = o.weight_cutoff;
  c.weight.low_cycles_per_px = o.weight_low;
  c.weight.high_cycles_per_px = o.weight_cutoff;
  c.type = *CorrelationTypeFromName(o.correlation);
  c.hybrid_p = o.hybrid_p;
  c.max_shift_px = o.max_shift_px;
  c.top_k = o.top_k;
  return c;
}

SolverOptions ToSolverOptions(const EngineOptions& o) {
  SolverOptions s;
  s.min_threshold_px = o.inlier_floor_px;
  s.max_iterations = o.solver_max_iterations;
  return s;
}

// Frames over which the reported drift rate is fitted.
constexpr int kDriftWindowFrames = 10;
// A precision-stage result further than this from the consistent pairwise
// solution is not trusted (it would mean the template locked onto something
// else); the pairwise solution is kept for that frame.
constexpr double kMaxRefinementStepPx = 1.5;
// Coarse, hop-free stage: correlations below the first Bragg ring see only
// non-periodic content. Cut-off as a fraction of the shortest reciprocal
// lattice vector, and the cut-off used before any lattice is known.
constexpr double kCoarseCutoffFraction = 0.6;
constexpr double kCoarseCutoffDefault = 0.02;  // cycles/px: periods > 50 px
// The coarse solution pins the absolute lattice offset only when it is
// consistent to well within a lattice spacing and most coarse pairs agree.
constexpr double kCoarseMaxRmsFraction = 0.15;
constexpr double kCoarseMinInlierFraction = 0.6;
// A frame is moved by a lattice vector only when the main and coarse solutions
// differ by that vector to within this fraction of the shortest spacing.
constexpr double kOffsetToleranceFraction = 0.3;

// Earlier frames each new frame is coarse-correlated with: the previous two,
// then log-spaced back to frame 0, so the coarse graph stays connected and
// cheap (O(log k) pairs per frame).
std::vector<int> CoarsePartners(int k) {
  std::vector<int> partners;
  for (int step = 1; step <= k; step *= 2) partners.push_back(k - step);
  if (k >= 2 && partners.back() != 0) partners.push_back(0);
  if (k >= 3 && std::find(partners.begin(), partners.end(), k - 3) == partners.end()) partners.push_back(k - 3);
  return partners;
}

}  // namespace

struct RegistrationEngine::Impl {
  Impl(const EngineOptions& o, Shape s)
      : options(o),
        shape(s),
        pool(o.threads),
        correlator(ToCorrelatorOptions(o), s, pool.NumWorkers()),
        solver(ToSolverOptions(o)) {
    for (int w = 0; w < pool.NumWorkers(); ++w) registrars.emplace_back(s, TemplateRegistrationOptions{});
  }

  EngineOptions options;
  Shape shape;
  ThreadPool pool;
  Correlator correlator;
  ConsistencySolver solver;
  ShiftedAverager averager;
  std::vector<TemplateRegistrar> registrars;  // one per worker: own FFT scratch
  std::vector<FrameState> frames;
  // Precision-stage correction per frame, added to the solver's shift.
  std::vector<Shift> refinement;
  std::vector<bool> refined_ok;
  SolverReport last_solve;
  std::optional<Lattice> lattice;
  int next_lattice_estimate = 8;
  int refine_cursor = 0;  // round-robin position of the live precision pass
  // Hop-free coarse stage: a second, sparse consistency problem on
  // correlations below the first Bragg ring, and the per-frame lattice vectors
  // by which it moved the main solution.
  ConsistencySolver coarse_solver{SolverOptions{}};
  SolverReport coarse_report;
  std::vector<Shift> lattice_offset;
  bool offset_observable = false;
  int frames_moved_by_offset = 0;
  TemporalCheckReport temporal;

  void ApplySolution(const SolverReport& report);
  void RefineFrames(const std::vector<int>& indices);
  void SyncAverager();
  void UpdateLattice();
  double CoarseCutoff() const;
  void AddCoarsePairs(int k);
  void ResolveLatticeOffsets(bool from_scratch);
};

double RegistrationEngine::Impl::CoarseCutoff() const {
  if (!lattice) return kCoarseCutoffDefault;
  // The first Bragg ring is at 1 / d_max, d_max the largest interplanar
  // spacing: that of the planes along the shortest lattice vector,
  // cell area / shortest spacing.
  const double d_max = lattice->CellArea() / lattice->ShortestSpacing();
  return std::min(kCoarseCutoffFraction / d_max, 0.25);
}

void RegistrationEngine::Impl::AddCoarsePairs(int k) {
  std::vector<PairMeasurement> pairs(k);
  for (int i = 0; i < k; ++i) {
    pairs[i].i = i;
    pairs[i].j = k;
  }
  const std::vector<int> partners = CoarsePartners(k);
  const double cutoff = CoarseCutoff();
  pool.ParallelFor(static_cast<int>(partners.size()), [&](int n, int worker) {
    const int i = partners[n];
    pairs[i] = correlator.CorrelateCoarse(i, k, cutoff, worker);
    // The coarse solver needs candidates; keep only the single broad peak.
    if (pairs[i].candidates.size() > 1) pairs[i].candidates.resize(1);
  });
  coarse_solver.AddFrame(std::move(pairs));
}

void RegistrationEngine::Impl::ResolveLatticeOffsets(bool from_scratch) {
  lattice_offset.assign(frames.size(), Shift{});
  offset_observable = false;
  frames_moved_by_offset = 0;
  if (!lattice || frames.size() < 2) return;
  coarse_report = coarse_solver.Solve(from_scratch);
  const double spacing = lattice->ShortestSpacing();
  const double inlier_fraction = 1.0 - coarse_report.rejected_pair_fraction;
  offset_observable = coarse_report.consistency_rms_px < kCoarseMaxRmsFraction * spacing &&
                      inlier_fraction >= kCoarseMinInlierFraction &&
                      coarse_report.flagged_frames * 4 < static_cast<int>(frames.size());
  if (!offset_observable) return;
  for (std::size_t i = 1; i < frames.size(); ++i) {
    if (last_solve.flagged[i] || coarse_report.flagged[i]) continue;
    const Shift difference = last_solve.shifts[i] - coarse_report.shifts[i];
    const LatticeVector nearest = lattice->NearestLatticeVector(difference);
    if (nearest.IsZero()) continue;
    if ((difference - nearest.vector).Norm() < kOffsetToleranceFraction * spacing) {
      lattice_offset[i] = nearest.vector.Inverse();
      ++frames_moved_by_offset;
    }
  }
}


void RegistrationEngine::Impl::ApplySolution(const SolverReport& report) {
  last_solve = report;
  lattice_offset.resize(frames.size());
  for (std::size_t i = 0; i < frames.size(); ++i) {
    frames[i].shift = report.shifts[i] + lattice_offset[i] + (refined_ok[i] ? refinement[i] : Shift{});
    frames[i].residual_px = report.frame_residual_px[i];
    frames[i].flagged = report.flagged[i];
  }
}

void RegistrationEngine::Impl::SyncAverager() {
  for (std::size_t i = 0; i < frames.size(); ++i) {
    averager.SetShift(static_cast<int>(i), frames[i].shift, !frames[i].flagged);
  }
}

void RegistrationEngine::Impl::RefineFrames(const std::vector<int>& indices) {
  if (!options.refine_against_template || frames.size() < 3 || indices.empty()) return;
  // Templates are taken from the current average before any of these frames
  // move, so the pass is a Jacobi step: order does not matter.
  std::vector<Shift> results(indices.size());
  std::vector<bool> ok(indices.size(), false);
  std::vector<Frame> templates(indices.size());
  for (std::size_t n = 0; n < indices.size(); ++n) {
    templates[n] = std::move(averager.AverageExcluding(indices[n]).full);
  }
  pool.ParallelFor(static_cast<int>(indices.size()), [&](int n, int worker) {
    const int i = indices[n];
    if (frames[i].flagged) return;
    const Shift pairwise = last_solve.shifts[i] + lattice_offset[i];
    TemplateRegistrationReport report;
    registrars[worker].SetTemplate(templates[n]);
    const Shift s = registrars[worker].Register(averager.frame(i), pairwise, &report);
    if (report.peak_in_window && report.converged && (s - pairwise).Norm() < kMaxRefinementStepPx) {
      results[n] = s - pairwise;
      ok[n] = true;
    }
  });
  for (std::size_t n = 0; n < indices.size(); ++n) {
    refinement[indices[n]] = results[n];
    refined_ok[indices[n]] = ok[n];
  }
  // Gauge: frame 0 stays at (0, 0) exactly.
  const Shift origin = refined_ok[0] ? refinement[0] : Shift{};
  for (std::size_t i = 0; i < frames.size(); ++i) {
    if (refined_ok[i]) refinement[i] -= origin;
  }
  ApplySolution(last_solve);
  SyncAverager();
}

void RegistrationEngine::Impl::UpdateLattice() {
  if (!options.lattice_snapping) return;
  const AverageImage average = averager.Average();
  if (average.valid.Empty()) return;
  LatticeEstimate estimate = EstimateLattice(average.common, LatticeEstimateOptions{});
  if (estimate.found) {
    lattice = estimate.lattice;
    solver.SetLattice(lattice);
  }
}

RegistrationEngine::RegistrationEngine(const EngineOptions& options, Shape frame_shape) {
  std::string error;
  if (!options.Check(&error)) throw std::invalid_argument("EngineOptions: " + error);
  if (frame_shape.Empty()) throw std::invalid_argument("RegistrationEngine: empty frame shape");
  impl_ = std::make_unique<Impl>(options, frame_shape);
}

RegistrationEngine::~RegistrationEngine() = default;

UpdateReport RegistrationEngine::AddFrame(Frame frame) {
  Impl& m = *impl_;
  if (frame.shape() != m.shape) {
    throw std::invalid_argument("RegistrationEngine::AddFrame: frame shape does not match the series");
  }
  if (CountNonFinite(frame) > 0) {
    throw std::invalid_argument("RegistrationEngine::AddFrame: frame has NaN or Inf pixels");
  }
  const auto start = Clock::now();
  UpdateReport report;
  const int k = static_cast<int>(m.frames.size());
  report.index = k;

  auto t = Clock::now();
  m.correlator.AddFrame(frame.view());
  report.timings.preprocess_ms = MsSince(t);

  t = Clock::now();
  std::vector<PairMeasurement> pairs(k);
  m.pool.ParallelFor(k, [&](int i, int worker) { pairs[i] = m.correlator.Correlate(i, k, worker); });
  report.timings.correlate_ms = MsSince(t);
  report.timings.pairs = k;

  t = Clock::now();
  FrameState state;
  state.index = k;
  state.timestamp_s = frame.header().timestamp_s;
  m.frames.push_back(state);
  m.refinement.emplace_back();
  m.refined_ok.push_back(false);
  m.solver.AddFrame(std::move(pairs));
  m.AddCoarsePairs(k);
  const bool from_scratch = k > 0 && k % m.options.full_resolve_every == 0;
  const SolverReport solved = m.solver.Solve(from_scratch);
  m.last_solve = solved;
  m.ResolveLatticeOffsets(/*from_scratch=*/false);
  m.ApplySolution(solved);
  report.timings.solve_ms = MsSince(t);

  t = Clock::now();
  m.averager.AddFrame(std::move(frame), m.frames.back().shift, !m.frames.back().flagged);
  m.SyncAverager();
  if (k + 1 >= m.next_lattice_estimate) {
    m.UpdateLattice();
    m.next_lattice_estimate = (k + 1) * 2;
  }
  report.timings.average_ms = MsSince(t);

  // Live precision pass: the new frame plus a few earlier ones in turn, so the
  // per-frame cost stays O(1) templates; Finish() refines every frame.
  t = Clock::now();
  std::vector<int> to_refine = {k};
  for (int n = 0; n < 2 && k > 0; ++n) {
    to_refine.push_back(m.refine_cursor % k);
    m.refine_cursor++;
  }
  m.RefineFrames(to_refine);
  report.timings.refine_ms = MsSince(t);
  report.timings.total_ms = MsSince(start);
  return report;
}

UpdateReport RegistrationEngine::Finish() {
  Impl& m = *impl_;
  const auto start = Clock::now();
  UpdateReport report;
  report.index = static_cast<int>(m.frames.size()) - 1;
  if (m.frames.empty()) return report;
  auto t = Clock::now();
  m.UpdateLattice();
  m.last_solve = m.solver.Solve(/*from_scratch=*/true);
  m.ResolveLatticeOffsets(/*from_scratch=*/true);
  m.ApplySolution(m.last_solve);
  m.SyncAverager();
  report.timings.solve_ms = MsSince(t);
  t = Clock::now();
  std::vector<int> all(m.frames.size());
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int>(i);
  // Two Jacobi passes: the second uses templates built from refined shifts.
  m.RefineFrames(all);
  m.RefineFrames(all);
  report.timings.refine_ms = MsSince(t);
  std::vector<Shift> shifts;
  std::vector<double> times;
  for (const auto& f : m.frames) {
    shifts.push_back(f.shift);
    times.push_back(f.timestamp_s);
  }
  m.temporal = TemporalCheck(shifts, times, m.lattice);
  report.timings.total_ms = MsSince(start);
  return report;
}

int RegistrationEngine::num_frames() const { return static_cast<int>(impl_->frames.size()); }
Shape RegistrationEngine::frame_shape() const { return impl_->shape; }
const EngineOptions& RegistrationEngine::options() const { return impl_->options; }
const std::vector<FrameState>& RegistrationEngine::frames() const { return impl_->frames; }

EngineQuality RegistrationEngine::quality() const {
  const Impl& m = *impl_;
  EngineQuality q;
  q.num_frames = num_frames();
  q.consistency_rms_px = m.last_solve.consistency_rms_px;
  q.rejected_pair_fraction = m.last_solve.rejected_pair_fraction;
  q.pairs_snapped = m.last_solve.pairs_snapped;
  q.median_cycle_error_px = m.last_solve.cycles.median_px;
  for (const auto& f : m.frames) q.flagged_frames += f.flagged ? 1 : 0;

  // Drift rate: least-squares slope of shift against time over recent frames.
  const int n = std::min<int>(kDriftWindowFrames, num_frames());
  if (n >= 2) {
    double st = 0, sx = 0, sy = 0, stt = 0, stx = 0, sty = 0;
    int used = 0;
    for (int i = num_frames() - n; i < num_frames(); ++i) {
      const auto& f = m.frames[i];
      if (!std::isfinite(f.timestamp_s) || f.flagged) continue;
      st += f.timestamp_s; sx += f.shift.x; sy += f.shift.y;
      stt += f.timestamp_s * f.timestamp_s;
      stx += f.timestamp_s * f.shift.x; sty += f.timestamp_s * f.shift.y;
      ++used;
    }
    const double denom = used * stt - st * st;
    if (used >= 2 && denom > 1e-12) {
      const Shift rate{(used * stx - st * sx) / denom, (used * sty - st * sy) / denom};
      q.drift_rate_px_per_s = rate;
      if (m.options.pixel_size_x_A > 0 && m.options.pixel_size_y_A > 0) {
        q.drift_rate_A_per_s = Shift{rate.x * m.options.pixel_size_x_A, rate.y * m.options.pixel_size_y_A};
      }
    }
  }
  if (m.lattice) {
    q.lattice.found = true;
    q.lattice.a_px = m.lattice->a;
    q.lattice.b_px = m.lattice->b;
  }
  q.lattice_offset_observable = !m.lattice || m.offset_observable;
  q.frames_moved_by_lattice_offset = m.frames_moved_by_offset;
  q.coarse_consistency_rms_px = m.coarse_report.consistency_rms_px;
  q.coarse_inlier_fraction = 1.0 - m.coarse_report.rejected_pair_fraction;
  for (const auto& spike : m.temporal.spikes) {
    if (spike.is_lattice_vector) q.temporal_lattice_spikes.push_back(static_cast<int>(spike.frame));
  }
  q.stage_jumps = static_cast<int>(m.temporal.steps.size());
  q.max_cycle_error_px = m.last_solve.cycles.max_px;
  q.cycles_equal_to_lattice_vector = m.last_solve.cycles.lattice_vector_count;

  // Valid: most frames registered, the inlier set consistent to well under a
  // pixel, and no frame jumping by a lattice vector against its neighbours.
  const int total = num_frames();
  const bool enough = total > 0 && q.flagged_frames * 4 <= total;
  const bool consistent = q.consistency_rms_px < 0.5;
  const bool no_spikes = q.temporal_lattice_spikes.empty();
  q.valid = enough && consistent && no_spikes;
  std::ostringstream verdict;
  verdict.setf(std::ios::fixed);
  verdict.precision(3);
  if (q.valid) {
    verdict << "valid: " << total - q.flagged_frames << "/" << total << " frames consistent to "
            << q.consistency_rms_px << " px RMS";
  } else {
    verdict << "NOT valid:";
    if (!enough) verdict << " " << q.flagged_frames << "/" << total << " frames flagged;";
    if (!consistent) verdict << " consistency RMS " << q.consistency_rms_px << " px;";
    if (!no_spikes) verdict << " " << q.temporal_lattice_spikes.size() << " frame(s) jump by a lattice vector;";
  }
  if (q.pairs_snapped > 0) verdict << "; " << q.pairs_snapped << " hopped pairs snapped";
  if (m.lattice) {
    verdict << (q.lattice_offset_observable
                    ? "; absolute lattice offset observable (non-periodic content)"
                    : "; absolute lattice offset NOT observable (no non-periodic content): "
                      "shifts are known modulo the lattice");
  }
  q.verdict = verdict.str();
  return q;
}

AverageImage RegistrationEngine::Average() const { return impl_->averager.Average(); }

ShiftMatrixSnapshot RegistrationEngine::Matrices() const {
  const ShiftMatrices matrices = impl_->solver.Matrices();
  ShiftMatrixSnapshot snapshot;
  const int k = static_cast<int>(matrices.x_px.rows());
  snapshot.k = k;
  snapshot.x.resize(static_cast<std::size_t>(k) * k);
  snapshot.y.resize(snapshot.x.size());
  snapshot.status.resize(snapshot.x.size());
  for (int i = 0; i < k; ++i) {
    for (int j = 0; j < k; ++j) {
      const std::size_t n = static_cast<std::size_t>(i) * k + j;
      snapshot.x[n] = matrices.x_px(i, j);
      snapshot.y[n] = matrices.y_px(i, j);
      snapshot.status[n] = static_cast<std::uint8_t>(matrices.status(i, j));
    }
  }
  return snapshot;
}

std::vector<PairRecord> RegistrationEngine::Pairs() const {
  const Impl& m = *impl_;
  std::vector<PairRecord> records;
  const int k = num_frames();
  records.reserve(static_cast<std::size_t>(k) * (k - 1) / 2);
  for (int j = 1; j < k; ++j) {
    for (int i = 0; i < j; ++i) {
      const PairMeasurement& measurement = m.solver.pair_measurement(i, j);
      const ConsistencySolver::PairState& state = m.solver.pair_state(i, j);
      PairRecord r;
      r.i = i;
      r.j = j;
      r.has_peak = !measurement.candidates.empty();
      if (r.has_peak) r.brightest_j_from_i = measurement.candidates.front().j_from_i;
      r.used_j_from_i = state.used_j_from_i;
      r.inlier = state.inlier;
      r.snapped = state.snapped;
      records.push_back(r);
    }
  }
  return records;
}

std::size_t RegistrationEngine::cache_bytes() const { return impl_->correlator.cache_bytes(); }
std::size_t RegistrationEngine::frame_bytes() const { return impl_->averager.MemoryBytes(); }

}  // namespace livealign
