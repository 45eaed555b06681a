#include "core/precision_stage.hpp"

#include <algorithm>

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
  // The template sits in the frame's own coordinates (Refine), so the
  // residual is a small fraction of a pixel: a small search and no
  // moving-window re-registration are needed.
  template_options.search_radius_px = kMaxRefinementStepPx;
  template_options.overlap_iterations = 0;
  for (int w = 0; w < workers; ++w) registrars_.emplace_back(shape, template_options);
  scratch_.resize(workers);
  // A live update's budget in one batch; more frames (the series end) in
  // batches that give each worker two templates and two frames.
  const int batch = std::max({3, live_per_update_, 2 * workers});
  // Buffers allocated (and so touched) here rather than in the first
  // refinement: fresh pages are slow on virtual machines (3 ms per MB
  // measured), and at 2048^2 these are 8 MB per job and 16 MB per worker.
  const Shape band = registrars_.front().band();
  const std::size_t band_size = static_cast<std::size_t>(band.rows) * (band.cols / 2 + 1);
  for (int b = 0; b < batch; ++b) {
    jobs_.push_back(std::make_unique<Job>());
    jobs_.back()->template_spectrum.values.assign(band_size, {});
    jobs_.back()->frame_spectrum.values.assign(band_size, {});
  }
  for (WorkerScratch& scratch : scratch_) scratch.template_image = Frame(shape);
  const std::size_t spectrum_bytes = band_size * sizeof(std::complex<float>);
  const double budget_bytes = o.precision_spectra_cache_mib * 1024.0 * 1024.0;
  max_frame_spectra_ = enabled_ ? static_cast<int>(std::min(budget_bytes / spectrum_bytes, 1e9)) : 0;
}

bool PrecisionStage::WantsFrameSpectrum() const {
  return kept_frame_spectra_.load(std::memory_order_relaxed) < max_frame_spectra_;
}

int PrecisionStage::FrameSpectrumColumns() const { return registrars_.front().spectrum_columns(); }

BandSpectrum PrecisionStage::FrameSpectrumFrom(const std::complex<float>* spectrum,
                                               int spectrum_cols) const {
  BandSpectrum out;
  registrars_.front().BandFromSpectrum(spectrum, spectrum_cols, &out);
  return out;
}

void PrecisionStage::AddFrameSpectrum(int i, std::unique_ptr<const BandSpectrum> spectrum) {
  if (spectrum == nullptr || !WantsFrameSpectrum() || i < 0) return;
  if (static_cast<int>(frame_spectra_.size()) <= i) frame_spectra_.resize(static_cast<std::size_t>(i) + 1);
  if (frame_spectra_[static_cast<std::size_t>(i)] != nullptr) return;
  frame_spectra_[static_cast<std::size_t>(i)] = std::move(spectrum);
  kept_frame_spectra_.fetch_add(1, std::memory_order_relaxed);
}

std::size_t PrecisionStage::FrameSpectraBytes() const {
  std::size_t bytes = 0;
  for (const auto& s : frame_spectra_)
    if (s != nullptr) bytes += s->values.size() * sizeof(std::complex<float>);
  return bytes;
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

std::shared_ptr<const Frame> PrecisionStage::Pixels(const ShiftedAverager& averager,
                                                   Job* job) const {
  std::lock_guard<std::mutex> lock(job->mutex);
  if (job->pixels == nullptr) job->pixels = averager.frame(job->frame);
  return job->pixels;
}

const BandSpectrum* PrecisionStage::KeptFrameSpectrum(int frame) const {
  const std::size_t f = static_cast<std::size_t>(frame);
  return f < frame_spectra_.size() ? frame_spectra_[f].get() : nullptr;
}

Shift PrecisionStage::TemplateSpectrum(const ShiftedAverager& averager, int frame, const Frame& pixels,
                                       int worker, BandSpectrum* out) {
  // The template is moved into the frame's coordinates by whole pixels, so
  // the registration measures only the fractional rest of the frame's
  // current shift (and its error), with the template never interpolated.
  WorkerScratch& scratch = scratch_[static_cast<std::size_t>(worker)];
  const Shift whole =
      averager.LeaveOneOutMeanInFrame(frame, pixels, &scratch.leave_one_out, &scratch.template_image);
  registrars_[static_cast<std::size_t>(worker)].ComputeSpectrum(scratch.template_image, out);
  return whole;
}

bool PrecisionStage::Register(const ShiftedAverager& averager, int frame, Shift pairwise, Shift whole,
                              const BandSpectrum& template_spectrum, const BandSpectrum& frame_spectrum,
                              const Frame& pixels, TemplateRegistrar& registrar, Shift* refined) const {
  TemplateRegistrationReport report;
  // No overlap-window passes (see the constructor), so the template's
  // pixels are not needed.
  const Shift residual = registrar.RegisterSpectra(template_spectrum, FrameView(), frame_spectrum, pixels,
                                                   averager.applied_shift(frame) - whole, &report);
  *refined = whole + residual;
  return report.peak_in_window && report.converged && (*refined - pairwise).Norm() < kMaxRefinementStepPx;
}

void PrecisionStage::Refine(const ShiftedAverager& averager, const std::vector<int>& frames,
                            const std::vector<Shift>& pairwise, ThreadPool& pool,
                            std::vector<char>* ok, std::vector<Shift>* refined) {
  ok->assign(frames.size(), 0);
  refined->assign(frames.size(), Shift{});
  if (frames.size() > jobs_.size()) {
    RefineEach(averager, frames, pairwise, pool, ok, refined);
  } else {
    RefineBatch(averager, frames, pairwise, pool, ok, refined);
  }
}

void PrecisionStage::RefineEach(const ShiftedAverager& averager, const std::vector<int>& frames,
                                const std::vector<Shift>& pairwise, ThreadPool& pool,
                                std::vector<char>* ok, std::vector<Shift>* refined) {
  pool.ParallelFor(static_cast<int>(frames.size()), [&](int c, int worker) {
    const int frame = frames[static_cast<std::size_t>(c)];
    const std::size_t f = static_cast<std::size_t>(frame);
    const std::shared_ptr<const Frame> pixels = averager.frame(frame);
    TemplateRegistrar& registrar = registrars_[static_cast<std::size_t>(worker)];
    Job& spectra = *jobs_[static_cast<std::size_t>(worker)];
    const Shift whole = TemplateSpectrum(averager, frame, *pixels, worker, &spectra.template_spectrum);
    const BandSpectrum* frame_spectrum = KeptFrameSpectrum(frame);
    if (frame_spectrum == nullptr) {
      registrar.ComputeSpectrum(*pixels, &spectra.frame_spectrum);
      frame_spectrum = &spectra.frame_spectrum;
    }
    Shift result;
    (*ok)[static_cast<std::size_t>(c)] =
        Register(averager, frame, pairwise[f], whole, spectra.template_spectrum, *frame_spectrum, *pixels,
                 registrar, &result)
            ? 1
            : 0;
    (*refined)[static_cast<std::size_t>(c)] = result;
  });
}

void PrecisionStage::RefineBatch(const ShiftedAverager& averager, const std::vector<int>& frames,
                                 const std::vector<Shift>& pairwise, ThreadPool& pool,
                                 std::vector<char>* ok, std::vector<Shift>* refined) {
  const std::size_t batch = jobs_.size();
  for (std::size_t first = 0; first < frames.size(); first += batch) {
    const int m = static_cast<int>(std::min(batch, frames.size() - first));
    for (int c = 0; c < m; ++c) {
      Job& job = *jobs_[static_cast<std::size_t>(c)];
      job.frame = frames[first + static_cast<std::size_t>(c)];
      job.pairwise = pairwise[static_cast<std::size_t>(job.frame)];
      job.pixels.reset();
      job.ok = false;
      job.frame_spectrum_used = KeptFrameSpectrum(job.frame);
    }
    // The two spectra of every job, templates (the longer tasks) first; a
    // kept frame spectrum is not computed again.
    std::vector<int> frame_tasks;
    for (int c = 0; c < m; ++c)
      if (jobs_[static_cast<std::size_t>(c)]->frame_spectrum_used == nullptr) frame_tasks.push_back(c);
    pool.ParallelFor(m + static_cast<int>(frame_tasks.size()), [&](int task, int worker) {
      const bool is_template = task < m;
      Job& job = *jobs_[static_cast<std::size_t>(is_template ? task : frame_tasks[static_cast<std::size_t>(task - m)])];
      const std::shared_ptr<const Frame> pixels = Pixels(averager, &job);
      TemplateRegistrar& registrar = registrars_[static_cast<std::size_t>(worker)];
      if (!is_template) {
        registrar.ComputeSpectrum(*pixels, &job.frame_spectrum);
        job.frame_spectrum_used = &job.frame_spectrum;
        return;
      }
      job.whole = TemplateSpectrum(averager, job.frame, *pixels, worker, &job.template_spectrum);
    });
    pool.ParallelFor(m, [&](int c, int worker) {
      Job& job = *jobs_[static_cast<std::size_t>(c)];
      job.ok = Register(averager, job.frame, job.pairwise, job.whole, job.template_spectrum,
                        *job.frame_spectrum_used, *job.pixels, registrars_[static_cast<std::size_t>(worker)],
                        &job.refined);
    });
    for (int c = 0; c < m; ++c) {
      Job& job = *jobs_[static_cast<std::size_t>(c)];
      (*ok)[first + static_cast<std::size_t>(c)] = job.ok ? 1 : 0;
      (*refined)[first + static_cast<std::size_t>(c)] = job.refined;
      job.pixels.reset();  // the frame's memory is the store's cache's again
    }
  }
}

bool PrecisionStage::RefineAll(const ShiftedAverager& averager, const std::vector<Shift>& pairwise,
                               const std::vector<bool>& flagged, ThreadPool& pool) {
  const int n = static_cast<int>(pairwise.size());
  if (!enabled_ || n < 3) return false;
  Resize(n);
  std::vector<int> frames;
  for (int i = 0; i < n; ++i)
    if (!flagged[static_cast<std::size_t>(i)]) frames.push_back(i);
  std::vector<char> frame_ok;
  std::vector<Shift> frame_result;
  Refine(averager, frames, pairwise, pool, &frame_ok, &frame_result);
  std::vector<Shift> result(n);
  std::vector<char> ok(n, 0);
  for (std::size_t c = 0; c < frames.size(); ++c) {
    ok[static_cast<std::size_t>(frames[c])] = frame_ok[c];
    result[static_cast<std::size_t>(frames[c])] = frame_result[c];
  }
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
  std::vector<int> frames;
  for (int i : chosen)
    if (!flagged[static_cast<std::size_t>(i)]) frames.push_back(i);
  std::vector<char> frame_ok;
  std::vector<Shift> frame_result;
  Refine(averager, frames, pairwise, pool, &frame_ok, &frame_result);
  for (int i : chosen) {
    // Tried either way: a frame the template cannot place waits for the
    // next growth step instead of taking every update's budget.
    schedule_.MarkRefined(i, included, pairwise[i]);
    refined_ok_[i] = false;
    refinement_[i] = Shift{};
  }
  for (std::size_t c = 0; c < frames.size(); ++c) {
    const int i = frames[c];
    refined_ok_[i] = frame_ok[c] != 0;
    refinement_[i] = refined_ok_[i] ? frame_result[c] : Shift{};
  }
}

}  // namespace livealign
