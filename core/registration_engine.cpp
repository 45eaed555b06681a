#include "core/registration_engine.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <future>
#include <optional>
#include <stdexcept>

#include "core/averager.hpp"
#include "core/consistency_solver.hpp"
#include "core/correlator.hpp"
#include "core/engine_quality.hpp"
#include "core/image_quality_report.hpp"
#include "core/lattice.hpp"
#include "core/lattice_tracker.hpp"
#include "core/pair_search.hpp"
#include "core/precision_stage.hpp"
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

PairSearchOptions ToPairSearchOptions(const EngineOptions& o) {
  PairSearchOptions p;
  p.min_overlap_fraction = o.min_overlap_fraction;
  p.predicted_search = o.predicted_search;
  p.max_shift_px = o.max_shift_px;
  return p;
}

ShiftedAverager::Options AveragerOptions(const EngineOptions& o) {
  ShiftedAverager::Options a;
  a.cache_frames = o.frame_cache_frames;
  return a;
}

// While frames stream in, a frame is re-resampled into the average only when
// its shift moved by more than this; Finish() uses the averager's own, finer
// tolerance. 0.05 px is far below what a preview shows and saves O(k)
// resamplings per update as the solution settles.
constexpr double kLiveResampleTolerancePx = 0.05;
constexpr int kLiveResampleBudget = 1;  // frames per update

// A re-estimate of a lattice already known (from the average, at a fourfold
// growth of the series: an FFT of the average and the peak indexing, ~15 ms
// at 256^2, three times an update) runs on its own thread and is taken this
// many updates later, waiting for it if it has not finished: a fixed update,
// so the registration does not depend on thread timing. The lattice it
// refines is already in use, so the delay costs nothing.
constexpr int kLatticeReestimateDelayFrames = 8;

}  // namespace

// Updates shorter than this (median of the last kRecentUpdates) leave a core
// to a running background job (the solver's re-solve, a lattice
// re-estimate). Why: with a third runnable thread on two cores, a pool worker
// preempted in the middle of an item holds up its whole ParallelFor until it
// runs again, one scheduler slice later. In bench --size 256 --frames 1000
// (seed 3) every update above 3x its bucket's median had a background
// re-solve running and was mostly waiting (k = 933: correlation 4.7 ms
// against a median of 0.9 ms, the update's thread on the CPU for 2.9 of
// 9.1 ms). A
// slice is a few ms, so for an update of tens of ms the second core is worth
// more than the stall, and such updates keep every worker.
constexpr double kShortUpdateMs = 20.0;
constexpr std::size_t kRecentUpdates = 16;

// The orchestrator's state: each concern is owned by its unit (pair search,
// solver, lattice tracker, precision stage, averager); the engine sequences
// them and publishes the frames.
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
        lattice_tracker(o.lattice_snapping, HopTolerances{o.hop_tolerance, o.coarse_hop_tolerance, o.gap_hop_tolerance, o.gap_clarity}),
        precision(s, o, pool.NumWorkers()) {
    averager.SetThreadPool(&pool);
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
  LatticeTracker lattice_tracker;
  PrecisionStage precision;
  std::vector<FrameState> frames;  // published

  // A lattice re-estimate running on its own thread, taken at update
  // `adopt_at` (kLatticeReestimateDelayFrames).
  struct PendingLattice {
    std::future<LatticeEstimate> estimate;
    int adopt_at = 0;
    int series_frames = 0;  // the series' length when it started
  };
  std::optional<PendingLattice> pending_lattice;
  // The series' length when the lattice in use was estimated (0: none yet).
  int lattice_estimated_at_frames = 0;
  SolverReport last_solve;
  // Frame count at which the next full re-solve is due (full_resolve_every,
  // full_resolve_growth).
  int next_full_resolve = 0;
  // no_overlap[j][i]: pair (i, j) was not correlated (predicted overlap below
  // min_overlap_fraction).
  std::vector<std::vector<bool>> no_overlap;
  // Some pair so far was skipped by the overlap gate (see
  // EngineOptions::live_refine_after_overlap_loss).
  bool overlap_lost = false;
  // The result of the last update without its O(k^2) parts (Snapshot()).
  RegistrationResult result;
  // total_ms of the last kRecentUpdates updates, oldest first.
  std::deque<double> recent_update_ms;

  // Sets the pool's worker limit for the next stage of an update: one
  // worker fewer while a background job runs and updates are short
  // (kShortUpdateMs), else all.
  void ShareCoresWithBackground();
  bool BackgroundRunning() const;

  // live: a per-frame update (full re-solves of large series run in the
  // solver's background thread); otherwise a synchronous solve.
  void Resolve(bool from_scratch, bool live = false);
  // The lattice offsets of the last solve's shifts.
  void ResolveLattice();
  Shift PairwiseShift(int i) const { return last_solve.shifts[i] + lattice_tracker.offset(i); }
  std::vector<Shift> PairwiseShifts() const;
  std::vector<bool> Flags() const;
  void PublishShifts();
  // budget < 0: no limit.
  void SyncAverager(double tolerance_px, int budget = -1);
  void UpdateLattice(FrameView newest);
  // Starts a re-estimate of the known lattice on its own thread.
  void StartLatticeReestimate(int k);
  // Takes the pending re-estimate when it is due at update k (or, with
  // `now`, at once, waiting for it); returns true when one was taken.
  bool AdoptLatticeReestimate(int k, bool now = false);
  void RefineAll();
  void RefineNeverRefined();
  // Returns the frames refined.
  int RefineLive(int budget = -1);
  // The quality figures and verdict of the current state (once per update).
  EngineQuality AssessQuality() const;
  // Stores the result of an update in `result`; returns it with the parts
  // `request` asks for.
  RegistrationResult Conclude(const UpdateReport& update, ResultRequest request);
  RegistrationResult WithParts(RegistrationResult r, ResultRequest request) const;
  std::vector<PairRecord> BuildPairs() const;
  ShiftMatrix BuildShiftMatrix() const;
  ShiftMatrixView BuildShiftMatrixView(ShiftMatrixViewBuilder builder) const;
};

void RegistrationEngine::Impl::Resolve(bool from_scratch, bool live) {
  last_solve = live ? solver.SolveScheduled(from_scratch) : solver.Solve(from_scratch);
}

void RegistrationEngine::Impl::ResolveLattice() {
  std::vector<double> times(frames.size());
  for (std::size_t i = 0; i < frames.size(); ++i) times[i] = frames[i].timestamp_s;
  if (times.size() != last_solve.shifts.size()) times.clear();
  const double cutoff = CoarseCutoffCyclesPerPx(lattice_tracker.lattice());
  lattice_tracker.Resolve(last_solve, times, [this, cutoff](const CoarseRunQuery& q) {
    return correlator.CoarseRunCorrelation(q.first, q.first_shifts, q.second, q.second_shifts, q.offsets,
                                           cutoff);
  });
  lattice_tracker.CountSnappedPairs(solver, last_solve);
}

std::vector<Shift> RegistrationEngine::Impl::PairwiseShifts() const {
  std::vector<Shift> pairwise(frames.size());
  for (std::size_t i = 0; i < frames.size(); ++i) pairwise[i] = PairwiseShift(static_cast<int>(i));
  return pairwise;
}

std::vector<bool> RegistrationEngine::Impl::Flags() const {
  std::vector<bool> flagged(frames.size());
  for (std::size_t i = 0; i < frames.size(); ++i) flagged[i] = frames[i].flagged;
  return flagged;
}

void RegistrationEngine::Impl::PublishShifts() {
  precision.Resize(static_cast<int>(frames.size()));
  for (std::size_t i = 0; i < frames.size(); ++i) {
    frames[i].shift = precision.Published(static_cast<int>(i), PairwiseShift(static_cast<int>(i)));
    frames[i].residual_px = last_solve.frame_residual_px[i];
    frames[i].flagged = last_solve.flagged[i];
  }
  std::vector<Shift> shifts(frames.size());
  std::vector<double> times(frames.size());
  for (std::size_t i = 0; i < frames.size(); ++i) {
    shifts[i] = frames[i].shift;
    times[i] = frames[i].timestamp_s;
  }
  lattice_tracker.CheckTemporal(shifts, times);
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
  std::vector<ShiftedAverager::ShiftUpdate> updates;
  updates.reserve(moved.size());
  for (const auto& [distance, index] : moved) {
    updates.push_back({index, frames[index].shift, !frames[index].flagged});
  }
  averager.SetShifts(updates);
}

void RegistrationEngine::Impl::UpdateLattice(FrameView newest) {
  if (!options.lattice_snapping || frames.empty()) return;
  // Only the best-covered mean, not a whole AverageImage (six planes of at
  // least a frame each, 100 MB at 2048^2), and not kept: this runs for the
  // first frames, at geometrically spaced k without a lattice, and at Finish
  // (re-estimates of a known lattice read the newest footprint instead).
  // One frame: its raw pixels are all there is (no average to compute).
  Frame best;
  const AverageImage::Rect best_covered =
      frames.size() > 1 ? averager.BestCoveredMean(&best) : AverageImage::Rect{};
  const bool usable = best_covered.rows() >= 64 && best_covered.cols() >= 64 && frames.size() > 1;
  if (lattice_tracker.Estimate(best, usable, newest)) {
    solver.SetHopTest(lattice_tracker.hop_test());
    lattice_estimated_at_frames = static_cast<int>(frames.size());
  }
}

bool RegistrationEngine::Impl::BackgroundRunning() const {
  if (solver.background_running()) return true;
  return pending_lattice && pending_lattice->estimate.valid() &&
         pending_lattice->estimate.wait_for(std::chrono::seconds(0)) != std::future_status::ready;
}

void RegistrationEngine::Impl::ShareCoresWithBackground() {
  int limit = 0;  // all workers
  if (pool.NumWorkers() > 1 && !recent_update_ms.empty() && BackgroundRunning()) {
    std::vector<double> recent(recent_update_ms.begin(), recent_update_ms.end());
    std::nth_element(recent.begin(), recent.begin() + recent.size() / 2, recent.end());
    if (recent[recent.size() / 2] < kShortUpdateMs) limit = pool.NumWorkers() - 1;
  }
  pool.SetWorkerLimit(limit);
}

void RegistrationEngine::Impl::StartLatticeReestimate(int k) {
  if (pending_lattice || !options.lattice_snapping || frames.size() < 2) return;
  // The input is the average over the newest frame's footprint, not the
  // whole mosaic's best-covered region: it is as well covered (the frames
  // before it overlap it) and costs O(frame pixels) on this thread, where
  // averaging a mosaic the drift grew to ~1000^2 pixels took 16 ms at
  // k = 2048 (256^2 frames), five times the update's median. The inputs are
  // copies: the average and the newest frame change while the estimate runs.
  Frame best;
  averager.MeanOverFootprint(k, &best);
  const bool usable = best.shape().rows >= 64 && best.shape().cols >= 64;
  std::shared_ptr<const Frame> newest = averager.frame(k);
  PendingLattice pending;
  pending.adopt_at = k + kLatticeReestimateDelayFrames;
  pending.series_frames = k + 1;
  pending.estimate = std::async(std::launch::async, [best = std::move(best), usable, newest]() {
    return LatticeTracker::EstimateFrom(best.view(), usable, newest->view());
  });
  pending_lattice = std::move(pending);
}

bool RegistrationEngine::Impl::AdoptLatticeReestimate(int k, bool now) {
  if (!pending_lattice || (!now && k < pending_lattice->adopt_at)) return false;
  const LatticeEstimate estimate = pending_lattice->estimate.get();
  const int series_frames = pending_lattice->series_frames;
  pending_lattice.reset();
  if (!lattice_tracker.Apply(estimate)) return false;
  solver.SetHopTest(lattice_tracker.hop_test());
  lattice_estimated_at_frames = series_frames;
  return true;
}

void RegistrationEngine::Impl::RefineAll() {
  if (!precision.RefineAll(averager, PairwiseShifts(), Flags(), pool)) return;
  PublishShifts();
  SyncAverager(0.0);
}

void RegistrationEngine::Impl::RefineNeverRefined() {
  const int refined = precision.RefineNeverRefined(averager, PairwiseShifts(), Flags(), pool);
  if (refined == 0) return;
  PublishShifts();
  SyncAverager(0.0);
}

int RegistrationEngine::Impl::RefineLive(int budget) {
  const int refined = precision.RefineLive(averager, PairwiseShifts(), Flags(), pool, budget);
  if (refined == 0) return 0;
  PublishShifts();
  // The refined frames move in the average too (old ones are read back).
  SyncAverager(kLiveResampleTolerancePx, refined);
  return refined;
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

struct PreparedFrame::Bands {
  const Correlator* correlator = nullptr;  // the engine's, to refuse another engine's frame
  std::unique_ptr<const Correlator::CachedFrame> cached;
  // The precision stage's frame spectrum, tapped from the same transform
  // while the stage keeps them (PrecisionStage::WantsFrameSpectrum).
  std::unique_ptr<const BandSpectrum> precision_spectrum;
};

PreparedFrame::PreparedFrame() = default;
PreparedFrame::~PreparedFrame() = default;
PreparedFrame::PreparedFrame(PreparedFrame&&) noexcept = default;
PreparedFrame& PreparedFrame::operator=(PreparedFrame&&) noexcept = default;

PreparedFrame RegistrationEngine::PrepareFrame(Frame frame) const {
  const Impl& m = *impl_;
  const auto start = Clock::now();
  if (frame.shape() != m.shape) {
    throw std::invalid_argument("RegistrationEngine::PrepareFrame: frame shape does not match the series");
  }
  if (CountNonFinite(frame) > 0) {
    throw std::invalid_argument("RegistrationEngine::PrepareFrame: frame has NaN or Inf pixels");
  }
  PreparedFrame prepared;
  prepared.bands_ = std::make_unique<PreparedFrame::Bands>();
  prepared.bands_->correlator = &m.correlator;
  // The correlator's window is the precision stage's (both from
  // EngineOptions::window and tukey_alpha), so one transform serves both.
  Correlator::SpectrumTap tap;
  tap.columns = m.precision.FrameSpectrumColumns();
  tap.read = [&](const std::complex<float>* spectrum, int spectrum_cols) {
    prepared.bands_->precision_spectrum =
        std::make_unique<const BandSpectrum>(m.precision.FrameSpectrumFrom(spectrum, spectrum_cols));
  };
  prepared.bands_->cached =
      m.correlator.Prepare(frame.view(), m.precision.WantsFrameSpectrum() ? &tap : nullptr);
  prepared.frame_ = std::move(frame);
  prepared.prepare_ms_ = MsSince(start);
  return prepared;
}

RegistrationResult RegistrationEngine::AddFrame(Frame frame, ResultRequest request) {
  return AddFrame(PrepareFrame(std::move(frame)), request);
}

RegistrationResult RegistrationEngine::AddFrame(PreparedFrame prepared, ResultRequest request) {
  Impl& m = *impl_;
  if (prepared.bands_ == nullptr || prepared.bands_->correlator != &m.correlator ||
      prepared.bands_->cached == nullptr) {
    throw std::invalid_argument("RegistrationEngine::AddFrame: frame not prepared by this engine");
  }
  const auto start = Clock::now();
  UpdateReport report;
  const int k = static_cast<int>(m.frames.size());
  report.index = k;
  // One immutable frame for the store and the averager's cache (a store in
  // RAM keeps this pointer instead of a copy), its header naming its place
  // in the series.
  prepared.frame_.mutable_header().index = k;
  const std::shared_ptr<const Frame> shared_frame = std::make_shared<const Frame>(std::move(prepared.frame_));
  const Frame& frame = *shared_frame;

  // Into the store first: a failed Put leaves the engine unchanged.
  auto t = Clock::now();
  m.store->PutShared(k, m.channel, shared_frame);
  report.timings.store_ms = MsSince(t);

  // Prepared beforehand, maybe on another thread; still counted in total_ms.
  report.timings.preprocess_ms = prepared.prepare_ms_;
  m.correlator.Add(std::move(prepared.bands_->cached));
  m.precision.AddFrameSpectrum(k, std::move(prepared.bands_->precision_spectrum));

  t = Clock::now();
  m.ShareCoresWithBackground();
  NewFramePairs found = SearchNewFramePairs(m.correlator, m.pool, m.shape, m.frames,
                                            frame.header().timestamp_s, m.lattice_tracker.lattice(),
                                            ToPairSearchOptions(m.options));
  report.predicted_search = found.used_prediction;
  m.lattice_tracker.AddCoarseEvidence(SearchCoarsePairs(m.correlator, m.pool, k, m.lattice_tracker.lattice()));
  if (std::find(found.no_overlap.begin(), found.no_overlap.end(), true) != found.no_overlap.end())
    m.overlap_lost = true;
  m.no_overlap.push_back(std::move(found.no_overlap));
  report.timings.correlate_ms = MsSince(t);
  report.timings.pairs = static_cast<int>(std::count(m.no_overlap.back().begin(), m.no_overlap.back().end(), false));

  t = Clock::now();
  FrameState state;
  state.index = k;
  state.timestamp_s = frame.header().timestamp_s;
  m.frames.push_back(state);
  m.solver.AddFrame(std::move(found.pairs));
  if (m.next_full_resolve == 0) m.next_full_resolve = m.options.full_resolve_every;
  const bool full_resolve = k > 0 && k >= m.next_full_resolve;
  if (full_resolve) {
    m.next_full_resolve = std::max(k + m.options.full_resolve_every,
                                   static_cast<int>(std::ceil(m.options.full_resolve_growth * k)));
  }
  m.Resolve(full_resolve, /*live=*/true);
  report.full_resolve = full_resolve && !m.solver.background_running();
  report.background_resolve_frames = m.last_solve.background_frames;
  report.background_resolve_running = m.solver.background_running();
  report.timings.solve_ms = MsSince(t);
  m.ShareCoresWithBackground();  // the solve may have started a re-solve

  t = Clock::now();
  m.ResolveLattice();
  m.PublishShifts();
  report.timings.lattice_ms = MsSince(t);

  t = Clock::now();
  const AverageImage::Rect canvas_before = m.averager.canvas();
  m.averager.AddFrame(shared_frame, m.frames.back().shift, !m.frames.back().flagged);
  m.SyncAverager(kLiveResampleTolerancePx, kLiveResampleBudget);
  const AverageImage::Rect canvas_after = m.averager.canvas();
  report.mosaic_grown = k > 0 && !(canvas_after == canvas_before);
  report.timings.average_ms = MsSince(t);
  t = Clock::now();
  if (m.AdoptLatticeReestimate(k)) report.lattice_estimated = true;
  if (m.lattice_tracker.EstimateDue(k)) {
    // Until a lattice is known the estimate is needed now (the solver snaps
    // with it from the next frame on); a re-estimate may run beside updates.
    if (m.lattice_tracker.lattice()) {
      m.StartLatticeReestimate(k);
    } else {
      m.UpdateLattice(*m.averager.frame(k));
      report.lattice_estimated = true;
    }
    m.lattice_tracker.MarkEstimated(k);
  }
  report.timings.lattice_ms += MsSince(t);
  t = Clock::now();
  if (!m.options.live_refine_after_overlap_loss || m.overlap_lost) {
    const bool long_series = static_cast<int>(m.frames.size()) > m.options.live_refine_long_after_frames;
    report.refined_frames = m.RefineLive(
        long_series ? std::min(m.options.live_refine_per_update, m.options.live_refine_per_update_long)
                    : -1);
  }
  report.timings.refine_ms = MsSince(t);
  report.timings.total_ms = report.timings.preprocess_ms + MsSince(start);
  m.recent_update_ms.push_back(report.timings.total_ms);
  if (m.recent_update_ms.size() > kRecentUpdates) m.recent_update_ms.pop_front();
  return m.Conclude(report, request);
}

RegistrationResult RegistrationEngine::Finish(ResultRequest request) {
  Impl& m = *impl_;
  const auto start = Clock::now();
  UpdateReport report;
  report.index = static_cast<int>(m.frames.size()) - 1;
  m.pool.SetWorkerLimit(0);  // the series end is long: every worker
  if (m.frames.empty()) return m.Conclude(report, request);
  auto t = Clock::now();
  // A pending re-estimate is taken now. The lattice is estimated from the
  // final average only when the one in use was estimated before the series
  // had half of its frames: after that, the final average's Bragg peaks are
  // at most sqrt(2) sharper and index the same lattice, and the estimate
  // (10-14 ms of a 40 x 512^2 register) would change nothing.
  const int n = static_cast<int>(m.frames.size());
  if (m.pending_lattice && m.AdoptLatticeReestimate(n - 1, /*now=*/true)) report.lattice_estimated = true;
  if (!m.lattice_tracker.lattice() || 2 * m.lattice_estimated_at_frames < n) {
    m.UpdateLattice(*m.averager.frame(n - 1));
    report.lattice_estimated = true;
  }
  report.timings.lattice_ms = MsSince(t);
  t = Clock::now();
  m.Resolve(/*from_scratch=*/true);
  report.timings.solve_ms = MsSince(t);
  t = Clock::now();
  m.ResolveLattice();
  m.PublishShifts();
  report.timings.lattice_ms += MsSince(t);
  t = Clock::now();
  // The templates need the average only as exact as a live update keeps it:
  // a frame within kLiveResampleTolerancePx of its final pairwise shift moves
  // its leave-one-out template by at most that over the frame count, far
  // below the refinement's error. The exact pass follows the refinement.
  const bool refine = m.options.refine_against_template;
  m.SyncAverager(refine ? kLiveResampleTolerancePx : 0.0);
  report.timings.average_ms = MsSince(t);
  t = Clock::now();
  // One Jacobi pass: a second pass (templates from refined shifts) changed
  // the RMS error by < 0.001 px on the 40-frame benchmarks and doubled the
  // cost. A long series refined live needs only the frames never refined
  // (EngineOptions::final_refine_all_max_frames).
  const bool refined_live = m.options.live_refine_per_update > 0 &&
                            (!m.options.live_refine_after_overlap_loss || m.overlap_lost);
  if (!refined_live || static_cast<int>(m.frames.size()) <= m.options.final_refine_all_max_frames) {
    m.RefineAll();
  } else {
    m.RefineNeverRefined();
  }
  report.timings.refine_ms = MsSince(t);
  t = Clock::now();
  m.SyncAverager(0.0);  // exact (a no-op for the frames the refinement re-synced)
  report.timings.average_ms += MsSince(t);
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
  const int k = static_cast<int>(frames.size());
  if (request.shift_matrix_view) {
    r.shift_matrix_view =
        std::make_shared<const ShiftMatrixView>(BuildShiftMatrixView(ShiftMatrixViewBuilder::Overview(k)));
  }
  if (request.shift_matrix_window) {
    r.shift_matrix_window = std::make_shared<const ShiftMatrixView>(
        BuildShiftMatrixView(ShiftMatrixViewBuilder::Window(k, *request.shift_matrix_window)));
  }
  return r;
}

int RegistrationEngine::num_frames() const { return static_cast<int>(impl_->frames.size()); }
Shape RegistrationEngine::frame_shape() const { return impl_->shape; }
const EngineOptions& RegistrationEngine::options() const { return impl_->options; }
EngineQuality RegistrationEngine::Impl::AssessQuality() const {
  EngineQualityInputs in;
  in.frames = &frames;
  in.solve = &last_solve;
  in.lattice = lattice_tracker.lattice() ? &*lattice_tracker.lattice() : nullptr;
  in.reciprocal_peaks = &lattice_tracker.reciprocal_peaks();
  in.offsets = &lattice_tracker.offsets();
  in.temporal = &lattice_tracker.temporal();
  in.pairs_snapped = lattice_tracker.pairs_snapped();
  in.drift_window_frames = options.drift_window_frames;
  in.pixel_size_x_A = options.pixel_size_x_A;
  in.pixel_size_y_A = options.pixel_size_y_A;
  return AssessEngineQuality(in);
}

AverageImage RegistrationEngine::Average() const { return impl_->averager.Average(); }

ShiftMatrix RegistrationEngine::Impl::BuildShiftMatrix() const {
  // The solver's pair values live in its modulo-lattice frame; the published
  // shifts add each frame's lattice offset, so entry (i, j) moves by
  // offset_j - offset_i (as in BuildPairs()) to read s_j - s_i, and its
  // status is judged there (LatticeTracker::PublishedStatus).
  const int k = solver.num_frames();
  ShiftMatrix matrix = ShiftMatrix::Missing(k);
  lattice_tracker.ForEachPublishedPair(solver, 0, k, [&](int i, int j, Shift j_from_i, PairStatus status) {
    matrix.Set(i, j, j_from_i, status);
  });
  for (int j = 1; j < k; ++j) {
    for (int i = 0; i < j; ++i) {
      if (no_overlap[j][i]) matrix.SetStatus(i, j, PairStatus::kNoOverlap);
    }
  }
  return matrix;
}

ShiftMatrixView RegistrationEngine::Impl::BuildShiftMatrixView(ShiftMatrixViewBuilder builder) const {
  // The same entries as BuildShiftMatrix(), pair by pair: only the frames
  // whose pairs can land in the view are visited.
  for (const auto& [first, end] : builder.LaterFrameRanges()) {
    lattice_tracker.ForEachPublishedPair(solver, first, end, [&](int i, int j, Shift j_from_i, PairStatus status) {
      builder.Add(i, j, j_from_i, status);
    });
  }
  return builder.Finish([this](int i, int j) { return static_cast<bool>(no_overlap[j][i]); });
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
      if (r.has_peak) {
        r.brightest_j_from_i = measurement.candidates.front().j_from_i;
        r.measured_j_from_i =
            state.chosen >= 0 ? measurement.candidates[static_cast<std::size_t>(state.chosen)].j_from_i
                              : r.brightest_j_from_i;
      }
      // The solver's pair value lives in its modulo-lattice frame; moving the
      // two frames by their lattice offsets moves the pair value with them.
      r.used_j_from_i = state.used_j_from_i + lattice_tracker.offset(j) - lattice_tracker.offset(i);
      const Shift snap = ConsistencySolver::SnapCorrection(measurement, state);
      r.status = no_overlap[j][i] ? PairStatus::kNoOverlap
                 : !r.has_peak    ? PairStatus::kMissing
                 : lattice_tracker.PublishedStatus(
                       i, j, !state.inlier ? PairStatus::kRejected : PairStatus::kInlier, snap);
      records.push_back(r);
    }
  }
  return records;
}

ImageQualityReport RegistrationEngine::ImageQuality() const {
  return AssessImageQuality(impl_->averager, impl_->frames, impl_->options, impl_->pool);
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
std::size_t RegistrationEngine::precision_spectra_bytes() const {
  return impl_->precision.FrameSpectraBytes();
}

}  // namespace livealign
