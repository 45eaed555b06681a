#include "core/registration_engine.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>

#include "core/averager.hpp"
#include "core/consistency_solver.hpp"
#include "core/correlator.hpp"
#include "core/lattice.hpp"
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
  c.correlation = *CorrelationTypeFromName(o.correlation);
  c.hybrid_p = o.hybrid_p;
  c.max_shift_px = o.max_shift_px;
  c.top_k = o.top_k;
  return c;
}

SolverOptions ToSolverOptions(const EngineOptions& o) {
  SolverOptions s;
  s.inlier_floor_px = o.inlier_floor_px;
  s.max_iterations = o.solver_max_iterations;
  return s;
}

// Frames over which the reported drift rate is fitted.
constexpr int kDriftWindowFrames = 10;
// A precision-stage result further than this from the consistent pairwise
// solution is not trusted (it would mean the template locked onto something
// else); the pairwise solution is kept for that frame.
constexpr double kMaxRefinementStepPx = 1.5;

}  // namespace

struct RegistrationEngine::Impl {
  Impl(const EngineOptions& o, Shape s)
      : options(o),
        shape(s),
        pool(o.threads),
        correlator(ToCorrelatorOptions(o), s, pool.NumWorkers()),
        solver(ToSolverOptions(o)) {
    for (int w = 0; w < pool.NumWorkers(); ++w) registrars.emplace_back(s);
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

  void ApplySolution(const SolverReport& report);
  void RefineFrames(const std::vector<int>& indices);
  void SyncAverager();
  void UpdateLattice();
};

void RegistrationEngine::Impl::ApplySolution(const SolverReport& report) {
  last_solve = report;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    frames[i].shift = report.shifts[i] + (refined_ok[i] ? refinement[i] : Shift{});
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
    templates[n] = averager.AverageExcluding(indices[n]);
  }
  pool.ParallelFor(static_cast<int>(indices.size()), [&](int n, int worker) {
    const int i = indices[n];
    if (frames[i].flagged) return;
    const Shift pairwise = last_solve.shifts[i];
    TemplateRegistrationReport report;
    const Shift s = registrars[worker].Register(averager.frame(i), templates[n], pairwise, &report);
    if (report.success && (s - pairwise).Norm() < kMaxRefinementStepPx) {
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
  const bool from_scratch = k > 0 && k % m.options.full_resolve_every == 0;
  m.ApplySolution(m.solver.Solve(from_scratch));
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
  m.ApplySolution(m.solver.Solve(/*from_scratch=*/true));
  m.SyncAverager();
  report.timings.solve_ms = MsSince(t);
  t = Clock::now();
  std::vector<int> all(m.frames.size());
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int>(i);
  // Two Jacobi passes: the second uses templates built from refined shifts.
  m.RefineFrames(all);
  m.RefineFrames(all);
  report.timings.refine_ms = MsSince(t);
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
  q.median_cycle_error_px = m.last_solve.median_cycle_error_px;
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
  q.valid = num_frames() > 0 && q.flagged_frames < num_frames();
  q.verdict = q.valid ? "consistent" : "no consistent registration";
  return q;
}

AverageImage RegistrationEngine::Average() const { return impl_->averager.Average(); }

ShiftMatrixSnapshot RegistrationEngine::Matrices() const {
  const ShiftMatrices matrices = impl_->solver.Matrices();
  ShiftMatrixSnapshot snapshot;
  snapshot.k = matrices.k;
  snapshot.x = matrices.x;
  snapshot.y = matrices.y;
  snapshot.status = matrices.status;
  return snapshot;
}

std::size_t RegistrationEngine::cache_bytes() const { return impl_->correlator.cache_bytes(); }
std::size_t RegistrationEngine::frame_bytes() const { return impl_->averager.bytes(); }

}  // namespace livealign
