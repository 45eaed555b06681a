#pragma once
// The precision stage: each frame registered against the leave-one-out
// average of the others (core/template_registration.hpp), which is far less
// noisy than a partner frame, so its shift approaches the single-frame
// Poisson limit. Live, a few frames per update (core/live_precision.hpp says
// which); at the series end, every frame in one Jacobi pass.
//
// A refinement replaces the pairwise shift (solver shift + lattice offset)
// while the two agree within kMaxRefinementStepPx; otherwise (a lattice
// offset or a re-solve moved the pairwise shift) the pairwise shift is
// published until the frame is refined again.
//
// Not synchronised: the engine thread calls it; refinements run on the given
// pool, one registrar and scratch per worker. Live, a refinement is three
// tasks: the leave-one-out template's spectrum, the frame's spectrum (the two
// forward FFTs, on different workers), then the registration from both. So
// an update's three refinements keep two workers busy to the end (six
// spectra) instead of leaving one idle while the other does the third. More
// frames than one batch (the series end) are one task each, all of them in
// one parallel loop: no barrier between batches, so no worker waits for the
// batch's last template.

#include <atomic>
#include <complex>
#include <memory>
#include <mutex>
#include <vector>

#include "core/averager.hpp"
#include "core/engine_options.hpp"
#include "core/frame.hpp"
#include "core/live_precision.hpp"
#include "core/shift.hpp"
#include "core/template_registration.hpp"
#include "core/thread_pool.hpp"

namespace livealign {

class PrecisionStage {
 public:
  // The largest distance, px, a refinement may be from the pairwise shift
  // and still be trusted (further, the template locked onto something else).
  static double MaxStepPx();

  PrecisionStage(Shape shape, const EngineOptions& options, int workers);

  // Frame spectra kept from the frames' pre-processing. A frame's spectrum
  // on the precision band does not depend on its shift, so the refinements
  // (the series end's, above all) need transform only the templates. They
  // are kept for the series' first frames, up to
  // EngineOptions::precision_spectra_cache_mib, and the other frames are
  // transformed when refined, as before.
  //
  // True while the store has room for another frame's spectrum: then the
  // frame's pre-processing should tap its spectrum (Correlator::SpectrumTap
  // with FrameSpectrumColumns()) into FrameSpectrumFrom. Safe on any thread.
  bool WantsFrameSpectrum() const;
  int FrameSpectrumColumns() const;
  // The precision band of a frame's pre-processed spectrum (RealFft2d
  // layout, the correlator's window, which is this stage's). Any thread.
  BandSpectrum FrameSpectrumFrom(const std::complex<float>* spectrum, int spectrum_cols) const;
  // Keeps frame i's spectrum (i = the frames added so far) while there is
  // room, else drops it; engine thread only.
  void AddFrameSpectrum(int i, std::unique_ptr<const BandSpectrum> spectrum);
  std::size_t FrameSpectraBytes() const;

  // The series now has n frames; new ones have no refinement yet.
  void Resize(int n);
  // The shift to publish for frame i whose pairwise shift is `pairwise` (it
  // itself for a frame never refined).
  Shift Published(int i, Shift pairwise) const;

  // Every frame against the current average (Jacobi: every template comes
  // from the average before any frame of the pass moves). False when nothing
  // ran (disabled, or fewer than 3 frames). Gauge: frame 0 stays at (0, 0).
  bool RefineAll(const ShiftedAverager& averager, const std::vector<Shift>& pairwise,
                 const std::vector<bool>& flagged, ThreadPool& pool);
  // The live step of one update: the frames the schedule says are due, at
  // most `budget` (the schedule's per-update bound when < 0). Returns how
  // many frames were tried (0: nothing ran).
  int RefineLive(const ShiftedAverager& averager, const std::vector<Shift>& pairwise,
                 const std::vector<bool>& flagged, ThreadPool& pool, int budget = -1);
  // The series-end step of a long series refined live: only the frames never
  // refined (EngineOptions::final_refine_all_max_frames). Returns how many
  // were tried.
  int RefineNeverRefined(const ShiftedAverager& averager, const std::vector<Shift>& pairwise,
                         const std::vector<bool>& flagged, ThreadPool& pool);

 private:
  // One frame's refinement in flight.
  struct Job {
    int frame = -1;
    Shift pairwise;
    std::mutex mutex;                     // guards pixels
    std::shared_ptr<const Frame> pixels;  // read once, by whichever task needs it first
    Shift whole;                          // the template's whole-pixel move
    BandSpectrum template_spectrum, frame_spectrum;
    // The frame's spectrum the registration uses: a kept one, or
    // &frame_spectrum once computed.
    const BandSpectrum* frame_spectrum_used = nullptr;
    bool ok = false;
    Shift refined;
  };
  std::shared_ptr<const Frame> Pixels(const ShiftedAverager& averager, Job* job) const;
  // Refines frames[0..n) (with their pairwise shifts) into *ok / *refined:
  // in batches of jobs_ (RefineBatch), or one task per frame (RefineEach)
  // when there are more than a batch. Safe only on the engine thread; tasks
  // on the pool.
  void Refine(const ShiftedAverager& averager, const std::vector<int>& frames,
              const std::vector<Shift>& pairwise, ThreadPool& pool, std::vector<char>* ok,
              std::vector<Shift>* refined);
  void RefineBatch(const ShiftedAverager& averager, const std::vector<int>& frames,
                   const std::vector<Shift>& pairwise, ThreadPool& pool, std::vector<char>* ok,
                   std::vector<Shift>* refined);
  void RefineEach(const ShiftedAverager& averager, const std::vector<int>& frames,
                  const std::vector<Shift>& pairwise, ThreadPool& pool, std::vector<char>* ok,
                  std::vector<Shift>* refined);
  // Frame `frame`'s kept spectrum (AddFrameSpectrum), or null.
  const BandSpectrum* KeptFrameSpectrum(int frame) const;
  // Frame `frame`'s leave-one-out template, in its coordinates moved by whole
  // pixels, transformed into *out on worker `worker`'s registrar and scratch;
  // returns the whole-pixel move. Any worker, its own scratch.
  Shift TemplateSpectrum(const ShiftedAverager& averager, int frame, const Frame& pixels, int worker,
                         BandSpectrum* out);
  // Frame `frame`'s refinement from its template's and its own spectrum:
  // the shift (frame-0 gauge of the pairwise solution) and whether it is
  // trusted. Any worker.
  bool Register(const ShiftedAverager& averager, int frame, Shift pairwise, Shift whole,
                const BandSpectrum& template_spectrum, const BandSpectrum& frame_spectrum,
                const Frame& pixels, TemplateRegistrar& registrar, Shift* refined) const;
  // Refines the `chosen` frames and records them in the schedule.
  void RefineChosen(const ShiftedAverager& averager, const std::vector<int>& chosen,
                    const std::vector<Shift>& pairwise, const std::vector<bool>& flagged, ThreadPool& pool);

  bool enabled_;
  int live_per_update_;
  std::vector<TemplateRegistrar> registrars_;  // one per worker: own FFT scratch
  struct WorkerScratch {
    ShiftedAverager::LeaveOneOutScratch leave_one_out;
    Frame template_image;
  };
  std::vector<WorkerScratch> scratch_;  // one per worker
  // A batch; spectra reused across batches. RefineEach uses job w's spectra
  // as worker w's (there are at least as many jobs as workers).
  std::vector<std::unique_ptr<Job>> jobs_;
  // Kept frame spectra by frame index (null: not kept); at most
  // max_frame_spectra_ of them, the series' first.
  std::vector<std::unique_ptr<const BandSpectrum>> frame_spectra_;
  int max_frame_spectra_ = 0;
  std::atomic<int> kept_frame_spectra_{0};
  // The shift measured against the leave-one-out average (absolute, frame-0
  // gauge), and whether it is trusted.
  std::vector<Shift> refinement_;
  std::vector<bool> refined_ok_;
  LivePrecisionSchedule schedule_;
};

}  // namespace livealign
