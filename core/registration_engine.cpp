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
#include "core/live_precision.hpp"
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
  c.band_fp16 = o.band_cache_fp16;
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

LivePrecisionSchedule::Options LiveScheduleOptions(const EngineOptions& o) {
  LivePrecisionSchedule::Options l;
  l.per_update = o.live_refine_per_update;
  l.growth = o.live_refine_growth;
  return l;
}

ShiftedAverager::Options AveragerOptions(const EngineOptions& o) {
  ShiftedAverager::Options a;
  a.cache_frames = o.frame_cache_frames;
  return a;
}

}  // namespace

struct RegistrationEngine::Impl {
  Impl(const EngineOptions& o, Shape s, std::shared_ptr<FrameStore> frame_store,
       std::string frame_channel)
      : options(o),
        shape(s),
        pool(o.threads),
        correlator(ToCorrelatorOptions(o), s, pool.NumWorkers()),
        solver(ToSolverOptions(o)),
        store(std::move(frame_store)),
        channel(std::move(frame_channel)),
        averager(AveragerOptions(o), store, channel),
        live_schedule(LiveScheduleOptions(o)) {
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
    result.quality.verdict = "no frames";
  }

  EngineOptions options;
  Shape shape;
  mutable ThreadPool pool;  // mutable: const reports (ImageQuality) use it too
  Correlator correlator;
  ConsistencySolver solver;
  std::shared_ptr<FrameStore> store;  // every accepted frame; the averager reads back from it
  std::string channel;
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
  // Frame count at which the next full re-solve is due (full_resolve_every,
  // full_resolve_growth).
  int next_full_resolve = 0;
  // no_overlap[j][i]: pair (i, j) was not correlated (predicted overlap below
  // min_overlap_fraction).
  std::vector<std::vector<bool>> no_overlap;
  // Lattice from the running average, and the per-frame lattice vectors that
  // pin the solver's modulo-lattice solution (core/lattice_offsets.hpp).
  std::optional<Lattice> lattice;
  std::vector<Shift> reciprocal_peaks;
  int next_lattice_estimate = kFirstLatticeEstimate;
  std::vector<CoarsePairEvidence> coarse;
  LatticeOffsetReport offsets;
  // Precision stage: the shift measured against the leave-one-out average
  // (absolute, frame-0 gauge), live (core/live_precision.hpp) and in Finish.
  // It replaces the pairwise shift while the two agree within
  // kMaxRefinementStepPx; otherwise (a lattice offset or a re-solve moved the
  // pairwise shift) the pairwise shift is used until the frame is refined again.
  std::vector<Shift> refinement;
  std::vector<bool> refined_ok;
  LivePrecisionSchedule live_schedule;
  TemporalCheckReport temporal;
  // The result of the last update without its O(k^2) parts (Snapshot()).
  RegistrationResult result;

  double CoarseCutoff() const;
  void AddCoarseEvidence(int k);
  // live: a per-frame update (full re-solves of large series run in the
  // solver's background thread); otherwise a synchronous solve.
  void Resolve(bool from_scratch, bool live = false);
  // Fraction of the frame area that frames at shifts a and b have in common.
  double OverlapFraction(Shift a, Shift b) const;
  Shift PairwiseShift(int i) const;
  void PublishShifts();
  // budget < 0: no limit.
  void SyncAverager(double tolerance_px, int budget = -1);
  void UpdateLattice(FrameView newest);
  std::vector<PairMeasurement> CorrelateNewFrame(int k, bool* used_prediction);
  void RefineAll();
  // Registers frame i against its leave-one-out average; false when the
  // result is not trusted. Safe to run for distinct frames in parallel.
  bool RefineOne(int i, int worker, Shift* refined);
  // The live precision step of one update: the frames the schedule says are
  // due, at most `budget` (the schedule's per-update bound when < 0).
  void RefineLive(int budget = -1);
  // The quality figures and verdict of the current state (once per update).
  EngineQuality AssessQuality() const;
  // Stores the result of an update in `result`; returns it with the parts
  // `request` asks for.
  RegistrationResult Conclude(const UpdateReport& update, ResultRequest request);
  RegistrationResult WithParts(RegistrationResult r, ResultRequest request) const;
  std::vector<PairRecord> BuildPairs() const;
  ShiftMatrix BuildShiftMatrix() const;
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

double RegistrationEngine::Impl::OverlapFraction(Shift a, Shift b) const {
  const Shift d = b - a;
  const double fx = std::max(0.0, 1.0 - std::abs(d.x) / shape.cols);
  const double fy = std::max(0.0, 1.0 - std::abs(d.y) / shape.rows);
  return fx * fy;
}

void RegistrationEngine::Impl::Resolve(bool from_scratch, bool live) {
  last_solve = live ? solver.SolveScheduled(from_scratch) : solver.Solve(from_scratch);
  if (lattice) {
    offsets = ResolveLatticeOffsets(last_solve.shifts, last_solve.flagged, *lattice, coarse);
  } else {
    offsets = LatticeOffsetReport{};
    offsets.offsets.assign(frames.size(), Shift{});
  }
}

void RegistrationEngine::Impl::PublishShifts() {
  for (std::size_t i = 0; i < frames.size(); ++i) {
    const Shift pairwise = PairwiseShift(static_cast<int>(i));
    const bool use_refined = refined_ok[i] && (refinement[i] - pairwise).Norm() < kMaxRefinementStepPx;
    frames[i].shift = use_refined ? refinement[i] : pairwise;
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
  if (average.best_covered.rows() >= 64 && average.best_covered.cols() >= 64 && frames.size() > 1) {
    estimate = EstimateLattice(average.best, LatticeEstimateOptions{});
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
  for (int i = 0; i < k; ++i) {
    pairs[i].i = i;
    pairs[i].j = k;
  }
  *used_prediction = false;
  // Constant-velocity prediction of s_k from the last two unflagged frames.
  const bool velocity_known = k >= 3 && !frames[k - 1].flagged && !frames[k - 2].flagged;
  const Shift predicted_k = velocity_known ? frames[k - 1].shift + (frames[k - 1].shift - frames[k - 2].shift)
                            : k >= 1        ? frames[k - 1].shift
                                            : Shift{};
  // Overlap gate: only partners the new frame is predicted to overlap enough;
  // the newest pair always (it chains every frame to the series).
  std::vector<int> partners;
  partners.reserve(k);
  std::vector<bool> gated(k, false);
  for (int i = 0; i < k; ++i) {
    if (i == k - 1 || options.min_overlap_fraction <= 0 ||
        OverlapFraction(frames[i].shift, predicted_k) >= options.min_overlap_fraction) {
      partners.push_back(i);
    } else {
      gated[i] = true;
    }
  }
  no_overlap.push_back(std::move(gated));
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
  return pairs;
}

bool RegistrationEngine::Impl::RefineOne(int i, int worker, Shift* refined) {
  if (frames[i].flagged) return false;
  WorkerScratch& scratch = worker_scratch[worker];
  TemplateRegistrar& registrar = registrars[worker];
  // The template is moved into frame i's coordinates, so the registration
  // measures only the residual of frame i's current shift.
  const std::shared_ptr<const Frame> frame_i = averager.frame(i);
  averager.LeaveOneOutMeanInFrame(i, *frame_i, &scratch.leave_one_out, &scratch.mean,
                                  &scratch.template_image);
  TemplateRegistrationReport report;
  registrar.SetTemplate(scratch.template_image);
  const Shift residual = registrar.Register(*frame_i, Shift{0, 0}, &report);
  const Shift s = averager.applied_shift(i) + residual;
  if (!report.peak_in_window || !report.converged || (s - PairwiseShift(i)).Norm() >= kMaxRefinementStepPx)
    return false;
  *refined = s;
  return true;
}

void RegistrationEngine::Impl::RefineAll() {
  const int n = static_cast<int>(frames.size());
  if (!options.refine_against_template || n < 3) return;
  // Jacobi step: every template comes from the average before any frame of
  // this pass moves, so the order does not matter.
  std::vector<Shift> result(n);
  std::vector<char> ok(n, 0);
  pool.ParallelFor(n, [&](int i, int worker) { ok[i] = RefineOne(i, worker, &result[i]) ? 1 : 0; });
  // Gauge: frame 0 stays at (0, 0) exactly.
  const Shift origin = ok[0] ? result[0] - PairwiseShift(0) : Shift{};
  const int included = averager.num_included();
  live_schedule.Resize(n);
  for (int i = 0; i < n; ++i) {
    refined_ok[i] = ok[i] != 0;
    refinement[i] = refined_ok[i] ? result[i] - origin : Shift{};
    if (refined_ok[i] && i > 0) live_schedule.MarkRefined(i, included, PairwiseShift(i));
  }
  PublishShifts();
  SyncAverager(0.0);
}

void RegistrationEngine::Impl::RefineLive(int budget) {
  const int n = static_cast<int>(frames.size());
  if (!options.refine_against_template || (budget < 0 && options.live_refine_per_update == 0)) return;
  live_schedule.Resize(n);
  std::vector<Shift> pairwise(n);
  std::vector<bool> flagged(n);
  for (int i = 0; i < n; ++i) {
    pairwise[i] = PairwiseShift(i);
    flagged[i] = frames[i].flagged;
  }
  const int included = averager.num_included();
  const std::vector<int> chosen = live_schedule.Select(included, pairwise, flagged, budget);
  if (chosen.empty()) return;
  std::vector<Shift> result(chosen.size());
  std::vector<char> ok(chosen.size(), 0);
  pool.ParallelFor(static_cast<int>(chosen.size()), [&](int c, int worker) {
    ok[c] = RefineOne(chosen[c], worker, &result[c]) ? 1 : 0;
  });
  for (std::size_t c = 0; c < chosen.size(); ++c) {
    const int i = chosen[c];
    // Tried either way: a frame the template cannot place waits for the
    // next growth step instead of taking every update's budget.
    live_schedule.MarkRefined(i, included, pairwise[i]);
    refined_ok[i] = ok[c] != 0;
    refinement[i] = refined_ok[i] ? result[c] : Shift{};
  }
  PublishShifts();
  // The refined frames move in the average too (old ones are read back).
  SyncAverager(kLiveResampleTolerancePx, static_cast<int>(chosen.size()));
}

RegistrationEngine::RegistrationEngine(const EngineOptions& options, Shape frame_shape,
                                       std::shared_ptr<FrameStore> store, std::string channel) {
  std::string error;
  if (!options.Check(&error)) throw std::invalid_argument("EngineOptions: " + error);
  if (frame_shape.Empty()) throw std::invalid_argument("RegistrationEngine: empty frame shape");
  if (store == nullptr) throw std::invalid_argument("RegistrationEngine: null frame store");
  impl_ = std::make_unique<Impl>(options, frame_shape, std::move(store), std::move(channel));
}

RegistrationEngine::~RegistrationEngine() = default;

RegistrationResult RegistrationEngine::AddFrame(Frame frame, ResultRequest request) {
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

  // Into the store first: a failed Put leaves the engine unchanged.
  m.store->Put(k, m.channel, frame.view(), frame.header().timestamp_s);

  auto t = Clock::now();
  m.correlator.AddFrame(frame.view());
  report.timings.preprocess_ms = MsSince(t);

  t = Clock::now();
  std::vector<PairMeasurement> pairs = m.CorrelateNewFrame(k, &report.predicted_search);
  m.AddCoarseEvidence(k);
  report.timings.correlate_ms = MsSince(t);
  report.timings.pairs = static_cast<int>(std::count(m.no_overlap.back().begin(), m.no_overlap.back().end(), false));

  t = Clock::now();
  FrameState state;
  state.index = k;
  state.timestamp_s = frame.header().timestamp_s;
  m.frames.push_back(state);
  // Earlier precision-stage shifts are kept (PublishShifts drops one that
  // the new pairwise solution contradicts); the new frame has none yet.
  m.refinement.resize(m.frames.size(), Shift{});
  m.refined_ok.resize(m.frames.size(), false);
  m.solver.AddFrame(std::move(pairs));
  if (m.next_full_resolve == 0) m.next_full_resolve = m.options.full_resolve_every;
  const bool full_resolve = k > 0 && k >= m.next_full_resolve;
  if (full_resolve) {
    m.next_full_resolve = std::max(k + m.options.full_resolve_every,
                                   static_cast<int>(std::ceil(m.options.full_resolve_growth * k)));
  }
  m.Resolve(full_resolve, /*live=*/true);
  report.full_resolve = full_resolve && !m.solver.background_running();
  report.background_resolve_frames = m.last_solve.background_frames;
  m.PublishShifts();
  report.timings.solve_ms = MsSince(t);

  t = Clock::now();
  m.averager.AddFrame(std::move(frame), m.frames.back().shift, !m.frames.back().flagged);
  m.SyncAverager(kLiveResampleTolerancePx, kLiveResampleBudget);
  if ((!m.lattice && k < kFirstLatticeEstimate) || k + 1 >= m.next_lattice_estimate) {
    m.UpdateLattice(*m.averager.frame(k));
    if (k + 1 >= m.next_lattice_estimate) m.next_lattice_estimate = 4 * (k + 1);
  }
  report.timings.average_ms = MsSince(t);
  t = Clock::now();
  m.RefineLive();
  report.timings.refine_ms = MsSince(t);
  report.timings.total_ms = MsSince(start);
  return m.Conclude(report, request);
}

RegistrationResult RegistrationEngine::Finish(ResultRequest request) {
  Impl& m = *impl_;
  const auto start = Clock::now();
  UpdateReport report;
  report.index = static_cast<int>(m.frames.size()) - 1;
  if (m.frames.empty()) return m.Conclude(report, request);
  auto t = Clock::now();
  m.UpdateLattice(*m.averager.frame(static_cast<int>(m.frames.size()) - 1));
  m.Resolve(/*from_scratch=*/true);
  m.PublishShifts();
  m.SyncAverager(0.0);
  report.timings.solve_ms = MsSince(t);
  t = Clock::now();
  // One Jacobi pass: a second pass (templates from refined shifts) changed
  // the RMS error by < 0.001 px on the 40-frame benchmarks and doubled the cost.
  // With final_refine_all off, only the frames the live schedule says are due.
  if (m.options.final_refine_all || m.options.live_refine_per_update == 0) {
    m.RefineAll();
  } else {
    m.RefineLive(static_cast<int>(m.frames.size()));
    m.SyncAverager(0.0);
  }
  report.timings.refine_ms = MsSince(t);
  report.timings.total_ms = MsSince(start);
  return m.Conclude(report, request);
}

RegistrationResult RegistrationEngine::Snapshot(ResultRequest request) const {
  return impl_->WithParts(impl_->result, request);
}

RegistrationResult RegistrationEngine::Impl::Conclude(const UpdateReport& update,
                                                      ResultRequest request) {
  result.frames = frames;
  result.update = update;
  result.quality = AssessQuality();
  return WithParts(result, request);
}

RegistrationResult RegistrationEngine::Impl::WithParts(RegistrationResult r,
                                                       ResultRequest request) const {
  if (request.pairs) r.pairs = std::make_shared<const std::vector<PairRecord>>(BuildPairs());
  if (request.shift_matrix) r.shift_matrix = std::make_shared<const ShiftMatrix>(BuildShiftMatrix());
  return r;
}

int RegistrationEngine::num_frames() const { return static_cast<int>(impl_->frames.size()); }
Shape RegistrationEngine::frame_shape() const { return impl_->shape; }
const EngineOptions& RegistrationEngine::options() const { return impl_->options; }
EngineQuality RegistrationEngine::Impl::AssessQuality() const {
  const Impl& m = *this;
  EngineQuality q;
  q.num_frames = static_cast<int>(frames.size());
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
  q.solver_converged = m.last_solve.converged;
  q.solver_message = m.last_solve.message;
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

ShiftMatrix RegistrationEngine::Impl::BuildShiftMatrix() const {
  ShiftMatrix matrix = solver.Matrices();
  // The solver's pair values live in its modulo-lattice frame; the published
  // shifts add each frame's lattice offset, so entry (i, j) moves by
  // offset_j - offset_i (as in BuildPairs()) to read s_j - s_i.
  const std::vector<Shift>& lattice_offsets = offsets.offsets;
  const int k = matrix.k;
  for (int i = 0; i < k; ++i) {
    for (int j = 0; j < k; ++j) {
      const bool offset_known = i < static_cast<int>(lattice_offsets.size()) &&
                                j < static_cast<int>(lattice_offsets.size());
      const Shift offset = offset_known ? lattice_offsets[j] - lattice_offsets[i] : Shift{};
      matrix.x[matrix.index(i, j)] += offset.x;
      matrix.y[matrix.index(i, j)] += offset.y;
    }
  }
  for (int j = 1; j < k; ++j) {
    for (int i = 0; i < j; ++i) {
      if (no_overlap[j][i]) matrix.SetStatus(i, j, PairStatus::kNoOverlap);
    }
  }
  return matrix;
}

std::vector<PairRecord> RegistrationEngine::Impl::BuildPairs() const {
  std::vector<PairRecord> records;
  const int k = static_cast<int>(frames.size());
  if (k < 2) return records;
  records.reserve(static_cast<std::size_t>(k) * (k - 1) / 2);
  for (int j = 1; j < k; ++j) {
    for (int i = 0; i < j; ++i) {
      const PairMeasurement& measurement = solver.pair_measurement(i, j);
      const ConsistencySolver::PairState& state = solver.pair_state(i, j);
      PairRecord r;
      r.i = i;
      r.j = j;
      r.has_peak = !measurement.candidates.empty();
      if (r.has_peak) r.brightest_j_from_i = measurement.candidates.front().j_from_i;
      // The solver's pair value lives in its modulo-lattice frame; moving the
      // two frames by their lattice offsets moves the pair value with them.
      r.used_j_from_i = state.used_j_from_i + offsets.offsets[j] - offsets.offsets[i];
      r.status = no_overlap[j][i] ? PairStatus::kNoOverlap
                 : !r.has_peak    ? PairStatus::kMissing
                 : !state.inlier  ? PairStatus::kRejected
                 : state.snapped  ? PairStatus::kSnapped
                                  : PairStatus::kInlier;
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

bool Inside(const AverageImage::Rect& outer, const AverageImage::Rect& inner) {
  return inner.row0 >= outer.row0 && inner.row1 <= outer.row1 && inner.col0 >= outer.col0 &&
         inner.col1 <= outer.col1;
}

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
  // On the mosaic's best-covered region (core/coverage_region.hpp), so the
  // figures stay defined when the drift has carried the view off frame 0.
  const AverageImage full = m.averager.Average();
  const AverageImage::Rect& region = full.best_covered;
  const bool have_region = region.rows() >= 32 && region.cols() >= 32;
  std::optional<FrcReport> frc;
  InformationTransferReport average_transfer, single_transfer;
  m.pool.ParallelFor(3, [&](int task, int) {
    if (task == 0 && have_region && num_frames() >= 2) {
      // Resolution: FRC of the even/odd half-set averages over the
      // best-covered region (both halves cover every pixel of it).
      const AverageImage even = m.averager.HalfSetAverage(0);
      const AverageImage odd = m.averager.HalfSetAverage(1);
      if (even.num_included > 0 && odd.num_included > 0 && Inside(even.mosaic_extent, region) &&
          Inside(odd.mosaic_extent, region)) {
        frc = FourierRingCorrelation(CropMosaic(even, region), CropMosaic(odd, region));
      }
    } else if (task == 1 && have_region) {
      average_transfer = InformationTransfer(full.best);
    } else if (task == 2 && num_frames() > 0) {
      // Information transfer of one frame (the latest), for comparison.
      single_transfer = InformationTransfer(*m.averager.frame(num_frames() - 1));
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
  const std::shared_ptr<const Frame> latest = m.averager.frame(num_frames() - 1);
  const FrameView view = latest->view();
  return Frame(view.shape(), std::vector<float>(view.data(), view.data() + view.shape().Pixels()),
               FrameHeader{num_frames() - 1, m.frames.back().timestamp_s, view.shape()});
}

Shape RegistrationEngine::correlation_map_shape() const {
  const int oversample = impl_->options.oversample;
  return Shape{impl_->correlator.band_rows() * oversample, impl_->correlator.band_cols() * oversample};
}

std::size_t RegistrationEngine::cache_bytes() const { return impl_->correlator.cache_bytes(); }
std::size_t RegistrationEngine::frame_bytes() const { return impl_->averager.FrameBytes(); }
std::size_t RegistrationEngine::mosaic_bytes() const {
  return impl_->averager.MemoryBytes() - impl_->averager.FrameBytes();
}
std::size_t RegistrationEngine::store_bytes() const { return impl_->store->bytes_in_memory(); }

}  // namespace livealign
