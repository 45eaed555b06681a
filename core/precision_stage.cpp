#include "core/precision_stage.hpp"

namespace livealign {
namespace {

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

LivePrecisionSchedule::Options ScheduleOptions(const EngineOptions& o) {
  LivePrecisionSchedule::Options l;
  l.per_update = o.live_refine_per_update;
  l.growth = o.live_refine_growth;
  return l;
}

}  // namespace

double PrecisionStage::MaxStepPx() { return kMaxRefinementStepPx; }

PrecisionStage::PrecisionStage(Shape shape, const EngineOptions& o, int workers)
    : enabled_(o.refine_against_template),
      live_per_update_(o.live_refine_per_update),
      schedule_(ScheduleOptions(o)) {
  TemplateRegistrationOptions template_options;
  template_options.window = *WindowTypeFromName(o.window);
  template_options.tukey_alpha = o.tukey_alpha;
  template_options.weight.type = FourierWeightType::kGaussian;
  template_options.weight.sigma_cycles_per_px = kTemplateWeightSigma;
  template_options.weight.cutoff_cycles_per_px = kTemplateWeightCutoff;
  // The template sits in the frame's own coordinates (RefineOne), so the
  // residual is a small fraction of a pixel: a small search and no
  // moving-window re-registration are needed.
  template_options.search_radius_px = kMaxRefinementStepPx;
  template_options.overlap_iterations = 0;
  for (int w = 0; w < workers; ++w) registrars_.emplace_back(shape, template_options);
  scratch_.resize(workers);
}

void PrecisionStage::Resize(int n) {
  // Earlier refinements are kept (Published drops one that the new pairwise
  // solution contradicts); new frames have none yet.
  refinement_.resize(n, Shift{});
  refined_ok_.resize(n, false);
}

Shift PrecisionStage::Published(int i, Shift pairwise) const {
  const bool use_refined = i < static_cast<int>(refined_ok_.size()) && refined_ok_[i] && (refinement_[i] - pairwise).Norm() < kMaxRefinementStepPx;
  return use_refined ? refinement_[i] : pairwise;
}

bool PrecisionStage::RefineOne(const ShiftedAverager& averager, int i, Shift pairwise, int worker,
                               Shift* refined) {
  WorkerScratch& scratch = scratch_[worker];
  TemplateRegistrar& registrar = registrars_[worker];
  // The template is moved into frame i's coordinates by whole pixels, so the
  // registration measures only the fractional rest of frame i's current
  // shift (and its error), with the template never interpolated.
  const std::shared_ptr<const Frame> frame_i = averager.frame(i);
  const Shift whole =
      averager.LeaveOneOutMeanInFrame(i, *frame_i, &scratch.leave_one_out, &scratch.template_image);
  TemplateRegistrationReport report;
  registrar.SetTemplate(scratch.template_image);
  const Shift residual = registrar.Register(*frame_i, averager.applied_shift(i) - whole, &report);
  const Shift s = whole + residual;
  if (!report.peak_in_window || !report.converged || (s - pairwise).Norm() >= kMaxRefinementStepPx)
    return false;
  *refined = s;
  return true;
}

bool PrecisionStage::RefineAll(const ShiftedAverager& averager, const std::vector<Shift>& pairwise,
                               const std::vector<bool>& flagged, ThreadPool& pool) {
  const int n = static_cast<int>(pairwise.size());
  if (!enabled_ || n < 3) return false;
  Resize(n);
  std::vector<Shift> result(n);
  std::vector<char> ok(n, 0);
  pool.ParallelFor(n, [&](int i, int worker) {
    ok[i] = !flagged[i] && RefineOne(averager, i, pairwise[i], worker, &result[i]) ? 1 : 0;
  });
  // Gauge: frame 0 stays at (0, 0) exactly.
  const Shift origin = ok[0] ? result[0] - pairwise[0] : Shift{};
  const int included = averager.num_included();
  schedule_.Resize(n);
  for (int i = 0; i < n; ++i) {
    refined_ok_[i] = ok[i] != 0;
    refinement_[i] = refined_ok_[i] ? result[i] - origin : Shift{};
    if (refined_ok_[i] && i > 0) schedule_.MarkRefined(i, included, pairwise[i]);
  }
  return true;
}

int PrecisionStage::RefineLive(const ShiftedAverager& averager, const std::vector<Shift>& pairwise,
                               const std::vector<bool>& flagged, ThreadPool& pool, int budget) {
  const int n = static_cast<int>(pairwise.size());
  if (!enabled_ || (budget < 0 && live_per_update_ == 0)) return 0;
  Resize(n);
  schedule_.Resize(n);
  const std::vector<int> chosen = schedule_.Select(averager.num_included(), pairwise, flagged, budget);
  RefineChosen(averager, chosen, pairwise, flagged, pool);
  return static_cast<int>(chosen.size());
}

int PrecisionStage::RefineNeverRefined(const ShiftedAverager& averager, const std::vector<Shift>& pairwise,
                                       const std::vector<bool>& flagged, ThreadPool& pool) {
  const int n = static_cast<int>(pairwise.size());
  if (!enabled_) return 0;
  Resize(n);
  schedule_.Resize(n);
  const std::vector<int> chosen = schedule_.SelectNeverRefined(averager.num_included(), flagged);
  RefineChosen(averager, chosen, pairwise, flagged, pool);
  return static_cast<int>(chosen.size());
}

void PrecisionStage::RefineChosen(const ShiftedAverager& averager, const std::vector<int>& chosen,
                                  const std::vector<Shift>& pairwise, const std::vector<bool>& flagged,
                                  ThreadPool& pool) {
  if (chosen.empty()) return;
  const int included = averager.num_included();
  std::vector<Shift> result(chosen.size());
  std::vector<char> ok(chosen.size(), 0);
  pool.ParallelFor(static_cast<int>(chosen.size()), [&](int c, int worker) {
    const int i = chosen[c];
    ok[c] = !flagged[i] && RefineOne(averager, i, pairwise[i], worker, &result[c]) ? 1 : 0;
  });
  for (std::size_t c = 0; c < chosen.size(); ++c) {
    const int i = chosen[c];
    // Tried either way: a frame the template cannot place waits for the
    // next growth step instead of taking every update's budget.
    schedule_.MarkRefined(i, included, pairwise[i]);
    refined_ok_[i] = ok[c] != 0;
    refinement_[i] = refined_ok_[i] ? result[c] : Shift{};
  }
}

}  // namespace livealign
