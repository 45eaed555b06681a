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
#include "core/lattice_offsets.hpp"
#include "core/quality.hpp"
#include "core/template_registration.hpp"
#include "core/temporal_check.hpp"
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
  c.oversample = o.oversample;
  c.refine_candidates = o.refine_candidates;
  return c;
}

SolverOptions ToSolverOptions(const EngineOptions& o) {
  SolverOptions s;
  s.min_threshold_px = o.inlier_floor_px;
  s.max_iterations = o.solver_max_iterations;
  return s;
}

// Fourier weight of the precision stage (frame against the leave-one-out
// average). The template is far less noisy than a single frame, so a wider
// band than the pairs' pays; measured on 40-frame 512^2 perovskite stacks
// (bench --seed 11), sigma 0.08 / cut-off 0.25 cycles/px gave 0.0235 px RMS at
// dose 0.2 and 0.044 px at 0.08, against 0.027 / 0.044 for the pairwise
// solution; the full band (cut-off 0.5) made both worse (0.029 / 0.057).
constexpr double kTemplateWeightSigma = 0.08;
constexpr double kTemplateWeightCutoff = 0.25;
// A precision-stage result further than this from the pairwise solution is
// not trusted (the template would have locked onto something else).
constexpr double kMaxRefinementStepPx = 1.5;
// While frames stream in, a frame is re-resampled into the average only when
// its shift moved by more than this; Finish() uses the averager's own, finer
// tolerance. 0.05 px is far below what a preview shows and saves O(k)
// resamplings per update as the solution settles.
constexpr double kLiveResampleTolerancePx = 0.05;
constexpr int kLiveResampleBudget = 1;  // frames per update
// Coarse, hop-free stage: a raised-cosine low-pass at this fraction of the
// first Bragg ring, so lattice peaks vanish and only non-periodic content
// correlates; before a lattice is known, a fixed low cut-off.
constexpr double kCoarseCutoffFraction = 0.6;
constexpr double kCoarseCutoffDefault = 0.03;  // cycles/px
// Prediction-window search (EngineOptions::predicted_search): per-axis half
// width as a fraction of the shortest lattice spacing (corner at 0.49), and
// the height the windowed peak of the newest pair must keep relative to an
// unrestricted search; below it the frame is taken to follow a stage jump.
constexpr double kPredictionWindowFraction = 0.35;
constexpr double kJumpHeightRatio = 0.8;
// Each new frame is coarse-correlated with this many predecessors.
constexpr int kCoarsePartners = 4;
// The lattice is estimated from each new raw frame until found (at most this
// many), re-estimated from the average when the series reaches this many
// frames and then at every fourfold growth, and in Finish().
constexpr int kFirstLatticeEstimate = 8;

}  // namespace

struct RegistrationEngine::Impl {
  Impl(const EngineOptions& o, Shape s)
      : options(o),
        shape(s),
        pool(o.threads),
        correlator(ToCorrelatorOptions(o), s, pool.NumWorkers()),
        solver(ToSolverOptions(o)) {
    TemplateRegistrationOptions template_options;
    template_options.window = *WindowTypeFromName(o.window);
    template_options.tukey_alpha = o.tukey_alpha;
    template_options.weight.type = FourierWeightType::kGaussian;
    template_options.weight.sigma_cycles_per_px = kTemplateWeightSigma;
    template_options.weight.cutoff_cycles_per_px = kTemplateWeightCutoff;
    // The template sits in the frame's own coordinates (RefineAll), so the
    // residual is a small fraction of a pixel: a small search and no
    // moving-window re-registration are needed.
    template_options.search_radius_px = kMaxRefinementStepPx;
    template_options.overlap_iterations = 0;
    for (int w = 0; w < pool.NumWorkers(); ++w) {
      registrars.emplace_back(s, template_options);
    }
    worker_scratch.resize(pool.NumWorkers());
  }

  EngineOptions options;
  Shape shape;
  mutable ThreadPool pool;  // mutable: const reports (ImageQuality) use it too
  Correlator correlator;
  ConsistencySolver solver;
  ShiftedAverager averager;
  std::vector<TemplateRegistrar> registrars;  // one per worker: own FFT scratch
  struct WorkerScratch {
    ShiftedAverager::LeaveOneOutScratch leave_one_out;
    Frame mean;
    Frame template_image;
  };
  std::vector<WorkerScratch> worker_scratch;  // one per worker
  std::vector<FrameState> frames;

  SolverReport last_solve;
  // Lattice from the running average, and the per-frame lattice vectors that
  // pin the solver's modulo-lattice solution (core/lattice_offsets.hpp).
  std::optional<Lattice> lattice;
  std::vector<Shift> reciprocal_peaks;
  int next_lattice_estimate = kFirstLatticeEstimate;
  std::vector<CoarsePairEvidence> coarse;
  LatticeOffsetReport offsets;
  // Precision stage (Finish): correction on top of solver shift + offset.
  std::vector<Shift> refinement;
  std::vector<bool> refined_ok;
  TemporalCheckReport temporal;

  double CoarseCutoff() const;
  void AddCoarseEvidence(int k);
  void Resolve(bool from_scratch);
  Shift PairwiseShift(int i) const;
  void PublishShifts();
  // budget < 0: no limit.
  void SyncAverager(double tolerance_px, int budget = -1);
  void UpdateLattice(FrameView newest);
  std::vector<PairMeasurement> CorrelateNewFrame(int k, bool* used_prediction);
  void RefineAll();
};

double RegistrationEngine::Impl::CoarseCutoff() const {
  if (!lattice) return kCoarseCutoffDefault;
  // The first Bragg ring is at 1 / d_max, d_max the largest interplanar
  // spacing: that of the planes along the shortest lattice vector.
  const double d_max = lattice->CellArea() / lattice->ShortestSpacing();
  return std::min(kCoarseCutoffFraction / d_max, 0.25);
}

void RegistrationEngine::Impl::AddCoarseEvidence(int k) {
  const int count = std::min(k, kCoarsePartners);
  std::vector<CoarsePairEvidence> found(count);
  const double cutoff = CoarseCutoff();
  pool.ParallelFor(count, [&](int n, int worker) {
    const int i = k - 1 - n;
    const PairMeasurement m = correlator.CorrelateCoarse(i, k, cutoff, worker);
    found[n] = {i, k, m.has_coarse ? m.coarse_j_from_i : Shift{},
                m.has_coarse && !m.candidates.empty() ? m.candidates.front().height : 0.0};
  });
  coarse.insert(coarse.end(), found.begin(), found.end());
}

Shift RegistrationEngine::Impl::PairwiseShift(int i) const {
  return last_solve.shifts[i] + offsets.offsets[i];
}

void RegistrationEngine::Impl::Resolve(bool from_scratch) {
  last_solve = solver.Solve(from_scratch);
  if (lattice) {
    offsets = ResolveLatticeOffsets(last_solve.shifts, last_solve.flagged, *lattice, coarse);
  } else {
    offsets = LatticeOffsetReport{};
    offsets.offsets.assign(frames.size(), Shift{});
  }
}

void RegistrationEngine::Impl::PublishShifts() {
  for (std::size_t i = 0; i < frames.size(); ++i) {
    frames[i].shift = PairwiseShift(static_cast<int>(i)) + (refined_ok[i] ? refinement[i] : Shift{});
    frames[i].residual_px = last_solve.frame_residual_px[i];
    frames[i].flagged = last_solve.flagged[i];
  }
  std::vector<Shift> shifts(frames.size());
  std::vector<double> times(frames.size());
  for (std::size_t i = 0; i < frames.size(); ++i) {
    shifts[i] = frames[i].shift;
    times[i] = frames[i].timestamp_s;
  }
  temporal = TemporalCheck(shifts, times, lattice);
}

void RegistrationEngine::Impl::SyncAverager(double tolerance_px, int budget) {
  // Frames whose include flag changed or whose shift moved beyond the
  // tolerance, largest move first; at most `budget` of them are re-resampled
  // (the rest follow in later updates), so a live update costs O(1)
  // resamplings however many earlier shifts the new frame nudged.
  std::vector<std::pair<double, int>> moved;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    const int index = static_cast<int>(i);
    const bool include = !frames[i].flagged;
    const double distance = (frames[i].shift - averager.applied_shift(index)).Norm();
    if (include != averager.included(index)) {
      moved.emplace_back(1e300, index);  // inclusion changes go first
    } else if (distance > tolerance_px) {
      moved.emplace_back(distance, index);
    }
  }
  if (budget >= 0 && static_cast<int>(moved.size()) > budget) {
    std::partial_sort(moved.begin(), moved.begin() + budget, moved.end(),
                      [](const auto& a, const auto& b) { return a.first > b.first; });
    moved.resize(budget);
  }
  for (const auto& [distance, index] : moved) {
    averager.SetShift(index, frames[index].shift, !frames[index].flagged);
  }
}

void RegistrationEngine::Impl::UpdateLattice(FrameView newest) {
  if (!options.lattice_snapping || frames.empty()) return;
  // The power spectrum does not depend on the frame's position, so a single
  // raw frame already shows the Bragg peaks (a perovskite lattice is found in
  // one 512^2 frame at 0.08 counts/px); this gives the solver its lattice from
  // the first frame on, before any registration exists. Later estimates use
  // the registered average, which is sharper.
  LatticeEstimate estimate;
  const AverageImage average = averager.Average();
  if (average.valid.rows() >= 64 && average.valid.cols() >= 64 && frames.size() > 1) {
    estimate = EstimateLattice(average.common, LatticeEstimateOptions{});
  }
  if (!estimate.found && newest.rows() >= 64 && newest.cols() >= 64) {
    estimate = EstimateLattice(newest, LatticeEstimateOptions{});
  }
  if (!estimate.found) return;
  lattice = estimate.lattice;
  solver.SetLattice(lattice);
  reciprocal_peaks.clear();
  for (const ReciprocalPeak& peak : estimate.peaks) {
    if (peak.indexed) reciprocal_peaks.push_back(Shift{peak.fx, peak.fy});
  }
}

std::vector<PairMeasurement> RegistrationEngine::Impl::CorrelateNewFrame(int k,
                                                                        bool* used_prediction) {
  std::vector<PairMeasurement> pairs(k);
  *used_prediction = false;
  // Constant-velocity prediction of s_k from the last two unflagged frames.
  const bool can_predict = options.predicted_search && lattice && k >= 3 &&
                           !frames[k - 1].flagged && !frames[k - 2].flagged;
  if (can_predict) {
    const Shift predicted_k = frames[k - 1].shift + (frames[k - 1].shift - frames[k - 2].shift);
    // Per-axis half-width: the window's corner (radius * sqrt 2) stays within
    // half the shortest lattice spacing, so no other translate fits in it.
    const double radius = kPredictionWindowFraction * lattice->ShortestSpacing();
    pool.ParallelFor(k, [&](int i, int worker) {
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
    // A stage jump leaves no real peak in the window: compare the newest
    // consecutive pair's windowed peak with an unrestricted search.
    const PairMeasurement free = correlator.Correlate(k - 1, k, 0);
    const PairMeasurement& windowed = pairs[k - 1];
    const bool peak_in_window =
        !windowed.candidates.empty() && !free.candidates.empty() &&
        windowed.candidates.front().height >= kJumpHeightRatio * free.candidates.front().height;
    if (peak_in_window) {
      *used_prediction = true;
      return pairs;
    }
  }
  pool.ParallelFor(k, [&](int i, int worker) { pairs[i] = correlator.Correlate(i, k, worker); });
  return pairs;
}

void RegistrationEngine::Impl::RefineAll() {
  const int n = static_cast<int>(frames.size());
  if (!options.refine_against_template || n < 3) return;
  // Jacobi step: every template comes from the average before any frame of
  // this pass moves, so the order does not matter.
  std::vector<Shift> result(n);
  std::vector<char> ok(n, 0);
  pool.ParallelFor(n, [&](int i, int worker) {
    if (frames[i].flagged) return;
    WorkerScratch& scratch = worker_scratch[worker];
    // The template is moved into frame i's coordinates, so the registration
    // measures only the residual of frame i's current shift.
    averager.LeaveOneOutMeanInFrame(i, &scratch.leave_one_out, &scratch.mean, &scratch.template_image);
    const Shift pairwise = PairwiseShift(i);
    TemplateRegistrationReport report;
    registrars[worker].SetTemplate(scratch.template_image);
    const Shift residual = registrars[worker].Register(averager.frame(i), Shift{0, 0}, &report);
    const Shift s = averager.applied_shift(i) + residual;
    if (report.peak_in_window && report.converged && (s - pairwise).Norm() < kMaxRefinementStepPx) {
      result[i] = s - pairwise;
      ok[i] = 1;
    }
  });
  // Gauge: frame 0 stays at (0, 0) exactly.
  const Shift origin = ok[0] ? result[0] : Shift{};
  for (int i = 0; i < n; ++i) {
    refined_ok[i] = ok[i] != 0;
    refinement[i] = refined_ok[i] ? result[i] - origin : Shift{};
  }
  PublishShifts();
  SyncAverager(0.0);
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
  std::vector<PairMeasurement> pairs = m.CorrelateNewFrame(k, &report.predicted_search);
  m.AddCoarseEvidence(k);
  report.timings.correlate_ms = MsSince(t);
  report.timings.pairs = k;

  t = Clock::now();
  FrameState state;
  state.index = k;
  state.timestamp_s = frame.header().timestamp_s;
  m.frames.push_back(state);
  // Live shifts are the pairwise solution; the precision stage of an earlier
  // Finish() no longer matches it once new pairs arrive.
  m.refinement.assign(m.frames.size(), Shift{});
  m.refined_ok.assign(m.frames.size(), false);
  m.solver.AddFrame(std::move(pairs));
  m.Resolve(/*from_scratch=*/k > 0 && k % m.options.full_resolve_every == 0);
  m.PublishShifts();
  report.timings.solve_ms = MsSince(t);

  t = Clock::now();
  m.averager.AddFrame(std::move(frame), m.frames.back().shift, !m.frames.back().flagged);
  m.SyncAverager(kLiveResampleTolerancePx, kLiveResampleBudget);
  if ((!m.lattice && k < kFirstLatticeEstimate) || k + 1 >= m.next_lattice_estimate) {
    m.UpdateLattice(m.averager.frame(k));
    if (k + 1 >= m.next_lattice_estimate) m.next_lattice_estimate = 4 * (k + 1);
  }
  report.timings.average_ms = MsSince(t);
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
  m.UpdateLattice(m.averager.frame(static_cast<int>(m.frames.size()) - 1));
  m.Resolve(/*from_scratch=*/true);
  m.PublishShifts();
  m.SyncAverager(0.0);
  report.timings.solve_ms = MsSince(t);
  t = Clock::now();
  // One Jacobi pass: a second pass (templates from refined shifts) changed
  // the RMS error by < 0.001 px on the 40-frame benchmarks and doubled the cost.
  m.RefineAll();
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
  if (q.num_frames == 0) {
    q.verdict = "no frames";
    return q;
  }
  q.consistency_rms_px = m.last_solve.consistency_rms_px;
  q.rejected_pair_fraction = m.last_solve.rejected_pair_fraction;
  q.pairs_snapped = m.last_solve.pairs_snapped;
  q.median_cycle_error_px = m.last_solve.cycles.median_px;
  q.max_cycle_error_px = m.last_solve.cycles.max_px;
  q.cycles_equal_to_lattice_vector = m.last_solve.cycles.lattice_vector_count;
  for (const auto& f : m.frames) q.flagged_frames += f.flagged ? 1 : 0;

  // Drift rate: the least-squares fit of core/quality.hpp over the last
  // drift_window_frames unflagged frames (fewer at the start of a series).
  std::vector<Shift> shifts;
  std::vector<double> times;
  for (const FrameState& f : m.frames) {
    if (f.flagged) continue;
    shifts.push_back(f.shift);
    times.push_back(f.timestamp_s);
  }
  const int window = std::min<int>(m.options.drift_window_frames, static_cast<int>(shifts.size()));
  if (window >= 2) {
    DriftOptions drift_options;
    drift_options.window_frames = window;
    const DriftStatus drift = EvaluateDrift(shifts, times, drift_options);
    if (std::isfinite(drift.velocity_px_per_s.x) && std::isfinite(drift.velocity_px_per_s.y)) {
      const Shift rate = drift.velocity_px_per_s;
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
    q.lattice.reciprocal_cycles_per_px = m.reciprocal_peaks;
  }
  q.frames_moved_by_lattice_offset = m.offsets.frames_moved;
  q.frames_decided_by_coarse = m.offsets.frames_decided_by_coarse;
  q.stage_jumps = static_cast<int>(m.offsets.jumps.size());
  for (const StageJumpRecord& jump : m.offsets.jumps) {
    q.stage_jump_frames.push_back(jump.frame);
    if (!jump.lattice_offset_observable) ++q.stage_jumps_unobservable;
  }
  for (const auto& spike : m.temporal.spikes) {
    if (spike.is_lattice_vector) q.temporal_lattice_spikes.push_back(spike.frame);
  }
  // The absolute offset is observable from image content when the coarse
  // (Bragg-free) stage decided most frames; without a lattice there is no
  // ambiguity to resolve.
  q.lattice_offset_observable =
      !m.lattice || 2 * m.offsets.frames_decided_by_coarse >= std::max(1, q.num_frames - 1);

  // Valid: most frames registered, the inlier set consistent to well under a
  // pixel, no frame jumping by a lattice vector in time, and every stage jump
  // pinned (a jump's lattice offset cannot come from continuity).
  const int total = q.num_frames;
  const bool enough = q.flagged_frames * 4 <= total;
  const bool consistent = q.consistency_rms_px < 0.5;
  const bool no_spikes = q.temporal_lattice_spikes.empty();
  const bool jumps_pinned = !m.lattice || q.stage_jumps_unobservable == 0;
  q.valid = enough && consistent && no_spikes && jumps_pinned;

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
    if (!no_spikes) {
      verdict << " " << q.temporal_lattice_spikes.size() << " frame(s) jump by a lattice vector;";
    }
    if (!jumps_pinned) {
      verdict << " lattice offset across " << q.stage_jumps_unobservable
              << " stage jump(s) not observable;";
    }
  }
  if (q.pairs_snapped > 0) verdict << "; " << q.pairs_snapped << " hopped pairs snapped";
  if (q.frames_moved_by_lattice_offset > 0) {
    verdict << "; " << q.frames_moved_by_lattice_offset << " frames moved by a lattice vector";
  }
  if (m.lattice) {
    verdict << (q.lattice_offset_observable
                    ? "; absolute lattice offset observable (non-periodic content)"
                    : "; absolute lattice offset not observable from image content (no clear "
                      "non-periodic content): frames tied by temporal continuity");
  }
  q.verdict = verdict.str();
  return q;
}

AverageImage RegistrationEngine::Average() const { return impl_->averager.Average(); }

ShiftMatrixSnapshot RegistrationEngine::Matrices() const {
  const ShiftMatrices matrices = impl_->solver.Matrices();
  // The solver's pair values live in its modulo-lattice frame; the published
  // shifts add each frame's lattice offset, so entry (i, j) moves by
  // offset_j - offset_i (as in Pairs()) to read s_j - s_i.
  const std::vector<Shift>& offsets = impl_->offsets.offsets;
  ShiftMatrixSnapshot snapshot;
  const int k = static_cast<int>(matrices.x_px.rows());
  snapshot.k = k;
  snapshot.x.resize(static_cast<std::size_t>(k) * k);
  snapshot.y.resize(snapshot.x.size());
  snapshot.status.resize(snapshot.x.size());
  for (int i = 0; i < k; ++i) {
    for (int j = 0; j < k; ++j) {
      const std::size_t n = static_cast<std::size_t>(i) * k + j;
      const bool offset_known = i < static_cast<int>(offsets.size()) && j < static_cast<int>(offsets.size());
      const Shift offset = offset_known ? offsets[j] - offsets[i] : Shift{};
      snapshot.x[n] = matrices.x_px(i, j) + offset.x;
      snapshot.y[n] = matrices.y_px(i, j) + offset.y;
      snapshot.status[n] = static_cast<std::uint8_t>(matrices.status(i, j));
    }
  }
  return snapshot;
}

std::vector<PairRecord> RegistrationEngine::Pairs() const {
  const Impl& m = *impl_;
  std::vector<PairRecord> records;
  const int k = num_frames();
  if (k < 2) return records;
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
      // The solver's pair value lives in its modulo-lattice frame; moving the
      // two frames by their lattice offsets moves the pair value with them.
      r.used_j_from_i = state.used_j_from_i + m.offsets.offsets[j] - m.offsets.offsets[i];
      r.inlier = state.inlier;
      r.snapped = state.snapped;
      records.push_back(r);
    }
  }
  return records;
}

namespace {

std::optional<double> ToA(std::optional<double> f_cycles_per_px, const EngineOptions& o) {
  if (!f_cycles_per_px || *f_cycles_per_px <= 0 || o.pixel_size_x_A <= 0 || o.pixel_size_y_A <= 0) {
    return std::nullopt;
  }
  return RingFrequencyToA(*f_cycles_per_px, PixelSizeA{o.pixel_size_y_A, o.pixel_size_x_A}).mean_A;
}

// Crop of `image` to `rect` (which must lie inside it).
Frame Crop(FrameView image, const AverageImage::Rect& rect) { return CropFrame(image, rect); }

// Frames a ring at FRC value c needs to reach the 1/7 criterion, from n now:
// the half-set SSNR c / (1 - c) grows in proportion to the frames and must
// reach 1/6 (FRC = 1/7).
std::optional<int> FramesToReachOneSeventh(double c, int n) {
  if (!(c > 0.0) || c >= 1.0) return std::nullopt;
  const double ssnr_half = c / (1.0 - c);
  const double factor = (1.0 / 6.0) / ssnr_half;
  return static_cast<int>(std::ceil(n * std::max(1.0, factor)));
}

}  // namespace

ImageQualityReport RegistrationEngine::ImageQuality() const {
  const Impl& m = *impl_;
  const auto start = Clock::now();
  ImageQualityReport r;
  r.num_frames = num_frames();
  const EngineOptions& o = m.options;

  // The three spectral figures are independent: computed in parallel.
  const AverageImage full = m.averager.Average();
  const bool have_region = full.valid.rows() >= 32 && full.valid.cols() >= 32;
  std::optional<FrcReport> frc;
  InformationTransferReport average_transfer, single_transfer;
  m.pool.ParallelFor(3, [&](int task, int) {
    if (task == 0 && have_region && num_frames() >= 2) {
      // Resolution: FRC of the even/odd half-set averages over the region
      // every included frame covers (so both halves are defined there).
      const AverageImage even = m.averager.HalfSetAverage(0);
      const AverageImage odd = m.averager.HalfSetAverage(1);
      if (even.num_included > 0 && odd.num_included > 0) {
        frc = FourierRingCorrelation(Crop(even.full, full.valid), Crop(odd.full, full.valid));
      }
    } else if (task == 1 && have_region) {
      average_transfer = InformationTransfer(full.common);
    } else if (task == 2 && num_frames() > 0) {
      // Information transfer of one frame (the latest), for comparison.
      single_transfer = InformationTransfer(m.averager.frame(num_frames() - 1));
    }
  });
  if (frc) {
    for (const FrcRing& ring : frc->rings) {
      r.frc_frequency_cycles_per_px.push_back(ring.frequency_cycles_per_px);
      r.frc.push_back(ring.frc);
      r.frc_noise_threshold.push_back(ring.noise_threshold);
      r.ssnr.push_back(ring.ssnr);
    }
    r.snr = frc->image_snr;
    switch (frc->at_one_seventh.status) {
      case FrcCrossing::kCrossed:
        r.frc_status = "crossed";
        r.resolution_cycles_per_px = frc->at_one_seventh.frequency_cycles_per_px;
        break;
      case FrcCrossing::kNotReached:
        r.frc_status = "not_reached";
        r.resolution_cycles_per_px = 0.5;  // at least Nyquist
        break;
      case FrcCrossing::kNoSignal:
        r.frc_status = "no_signal";
        break;
    }
    if (frc->at_half.status != FrcCrossing::kNoSignal) {
      r.resolution_half_cycles_per_px =
          frc->at_half.status == FrcCrossing::kCrossed ? frc->at_half.frequency_cycles_per_px : 0.5;
    }
    r.resolution_A = ToA(r.resolution_cycles_per_px, o);
    // Projection for a 10 % finer resolution: the FRC there (mean of the
    // rings within +-5 %) and the frames it needs to reach 1/7.
    if (r.frc_status == "crossed") {
      const double target = 1.1 * *r.resolution_cycles_per_px;
      double sum = 0;
      int count = 0;
      for (std::size_t i = 0; i < r.frc.size(); ++i) {
        if (std::abs(r.frc_frequency_cycles_per_px[i] - target) <= 0.05 * target) {
          sum += r.frc[i];
          ++count;
        }
      }
      if (count > 0 && target < 0.5) {
        r.next_resolution_cycles_per_px = target;
        r.frames_for_next_resolution = FramesToReachOneSeventh(sum / count, num_frames());
      }
    }
  }
  if (average_transfer.found) {
    r.info_transfer_cycles_per_px = average_transfer.frequency_cycles_per_px;
    r.info_transfer_A = ToA(r.info_transfer_cycles_per_px, o);
  }
  if (single_transfer.found) {
    r.single_frame_info_transfer_cycles_per_px = single_transfer.frequency_cycles_per_px;
    r.single_frame_info_transfer_A = ToA(r.single_frame_info_transfer_cycles_per_px, o);
  }

  // Drift over the recent window, and since when it has been settled.
  DriftOptions drift_options;
  drift_options.window_frames = o.drift_window_frames;
  drift_options.settled_speed_px_per_frame = o.settled_px_per_frame;
  const double pixel_A = o.pixel_size_x_A > 0 && o.pixel_size_y_A > 0
                             ? 0.5 * (o.pixel_size_x_A + o.pixel_size_y_A)
                             : 0.0;
  if (o.settled_A_per_s > 0 && pixel_A > 0) {
    drift_options.settled_speed_px_per_s = o.settled_A_per_s / pixel_A;
  }
  std::vector<Shift> shifts;
  std::vector<double> times;
  DriftSettledTracker tracker(drift_options);
  DriftStatus drift;
  for (const FrameState& f : m.frames) {
    if (f.flagged) continue;
    shifts.push_back(f.shift);
    times.push_back(f.timestamp_s);
    drift = tracker.Add(f.shift, f.timestamp_s);
  }
  if (!shifts.empty()) {
    r.drift_px_per_frame = drift.velocity_px_per_frame;
    if (std::isfinite(drift.velocity_px_per_s.x) && pixel_A > 0) {
      r.drift_A_per_s = Shift{drift.velocity_px_per_s.x * o.pixel_size_x_A,
                              drift.velocity_px_per_s.y * o.pixel_size_y_A};
    }
    r.drift_trend = DriftTrendName(drift.trend);
    r.drift_settled = drift.settled;
    r.drift_settled_since_frame = drift.settled ? tracker.settled_since_frame() : -1;
  }

  // Stop-when-good.
  StopRule::Options stop_options;
  stop_options.target_resolution_A = o.target_resolution_A;
  stop_options.target_snr = o.target_snr;
  stop_options.max_frames = o.max_frames;
  stop_options.require_drift_settled = o.require_drift_settled;
  StopInputs inputs;
  inputs.num_frames = num_frames();
  if (r.resolution_A) inputs.resolution_A = *r.resolution_A;
  if (r.frc_status != "no_signal") inputs.snr = r.snr;
  inputs.drift_settled = r.drift_settled;
  const StopDecision decision = StopRule(stop_options).Evaluate(inputs);
  r.good = decision.good;
  r.stop = decision.stop;
  r.reason = decision.reason;
  if (o.target_resolution_A > 0 && pixel_A <= 0) {
    r.good = false;
    r.reason = "target resolution set but the pixel size is unknown; " + r.reason;
  }
  r.compute_ms = MsSince(start);
  return r;
}

Frame RegistrationEngine::LatestFrame() const {
  const Impl& m = *impl_;
  if (m.frames.empty()) return Frame();
  const FrameView view = m.averager.frame(num_frames() - 1);
  return Frame(view.shape(), std::vector<float>(view.data(), view.data() + view.shape().Pixels()),
               FrameHeader{num_frames() - 1, m.frames.back().timestamp_s, view.shape()});
}

std::size_t RegistrationEngine::cache_bytes() const { return impl_->correlator.cache_bytes(); }
std::size_t RegistrationEngine::frame_bytes() const { return impl_->averager.MemoryBytes(); }

}  // namespace livealign
