#pragma once
// The incremental all-pairs registration engine: frames are added one at a
// time (exactly as the live daemon feeds them); each new frame is correlated
// against every earlier one it overlaps, the growing consistency system is
// re-solved, and the shift-corrected average is kept up to date.
//
// An orchestrator: each concern is a unit of its own, sequenced here per
// update (docs/architecture.md, "Inside the engine"): core/pair_search,
// core/consistency_solver, core/lattice_tracker (lattice offsets, stage
// jumps), core/averager, core/precision_stage, core/engine_quality; and
// core/image_quality_report for ImageQuality().
//
// Thread-safety: not synchronised. One thread calls AddFrame/Finish and reads
// results; the engine uses its own worker pool internally. The exceptions:
// PrepareFrame, which another thread may call meanwhile (a reader preparing
// frame k + 1 while frame k is added), and Average(), which only reads the
// average's sums and may run beside the other const members (the outputs
// writer encodes the average while ImageQuality() runs).
//
//   RegistrationEngine engine(options, Shape{512, 512});
//   for (Frame& f : frames) engine.AddFrame(std::move(f));   // each returns a result
//   RegistrationResult r = engine.Finish(ResultRequest::Everything());  // final solve + precision
//   for (const FrameState& s : r.frames) ... s.shift ...
//   AverageImage avg = engine.Average();
//
// Results: every update returns one RegistrationResult
// (core/registration_result.hpp) with the frames, the quality (assembled once
// per update) and the timings; the O(k^2) pair list and shift matrix only
// when asked for. Snapshot() gives the last update's result again, for a
// caller that wants the O(k^2) parts between updates (the daemon publishes
// the matrices on a timer and saves while idle). Average() and
// ImageQuality() are explicit computations (an image; tens of ms).
//
// Memory: the engine Puts every accepted frame into its FrameStore and keeps
// only the most recent EngineOptions::frame_cache_frames in RAM; an older
// frame is read back when its shift moved enough to be re-resampled into the
// average (at most a fixed number per update) or the precision stage needs
// it. Each frame's band-cropped spectrum stays in RAM. See cache_bytes(),
// frame_bytes(), mosaic_bytes() and store_bytes().

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/average_image.hpp"
#include "core/engine_options.hpp"
#include "core/frame.hpp"
#include "core/frame_store.hpp"
#include "core/image_quality_report.hpp"
#include "core/registration_result.hpp"
#include "core/shift.hpp"

namespace livealign {

// A frame checked and transformed for RegistrationEngine::AddFrame: the work
// that depends on its pixels alone (RegistrationEngine::PrepareFrame).
class PreparedFrame {
 public:
  PreparedFrame();
  ~PreparedFrame();
  PreparedFrame(PreparedFrame&&) noexcept;
  PreparedFrame& operator=(PreparedFrame&&) noexcept;

  const Frame& frame() const { return frame_; }
  double prepare_ms() const { return prepare_ms_; }

 private:
  friend class RegistrationEngine;
  struct Bands;
  Frame frame_;
  std::unique_ptr<Bands> bands_;
  double prepare_ms_ = 0;
};

class RegistrationEngine {
 public:
  // Throws std::invalid_argument when options.Check() fails, the shape is
  // empty or the store is null. Frame k of the series is Put into `store` as
  // (k, channel); the default store keeps every frame in RAM.
  RegistrationEngine(const EngineOptions& options, Shape frame_shape,
                     std::shared_ptr<FrameStore> store = std::make_shared<MemoryFrameStore>(),
                     std::string channel = "");
  ~RegistrationEngine();
  RegistrationEngine(const RegistrationEngine&) = delete;
  RegistrationEngine& operator=(const RegistrationEngine&) = delete;

  // Adds the next frame (it becomes frame num_frames()) and Puts it into the
  // store; returns the result of the update, with the O(k^2) parts that
  // `request` asks for. Throws std::invalid_argument on a shape mismatch or
  // non-finite pixels, and what the store's Put throws; the engine is then
  // unchanged.
  RegistrationResult AddFrame(Frame frame, ResultRequest request = {});
  // The same, for a frame prepared by this engine's PrepareFrame; throws
  // std::invalid_argument for one prepared by another engine or moved from.
  RegistrationResult AddFrame(PreparedFrame frame, ResultRequest request = {});
  // Checks `frame` and computes its correlation bands, without touching the
  // series: thread-safe against every other member. Throws
  // std::invalid_argument on a shape mismatch or non-finite pixels.
  PreparedFrame PrepareFrame(Frame frame) const;

  // Full re-solve from scratch and the precision pass over every frame; call
  // at the end of a series (AddFrame may still follow).
  RegistrationResult Finish(ResultRequest request = {});

  // The result of the last AddFrame/Finish (nothing is recomputed), with the
  // O(k^2) parts that `request` asks for built now. Before the first frame:
  // no frames, verdict "no frames".
  RegistrationResult Snapshot(ResultRequest request = {}) const;

  int num_frames() const;
  Shape frame_shape() const;
  const EngineOptions& options() const;
  AverageImage Average() const;
  // Computes the image-quality figures from the current average (tens of ms at
  // 512^2: call it rate-limited while frames stream in, and at the end).
  ImageQualityReport ImageQuality() const;
  // Copy of the most recently added frame (raw, unshifted); empty when none.
  Frame LatestFrame() const;

  // Shape of one pair's band-limited correlation map (its inverse FFT): with
  // one forward FFT per frame, the FFT floor of an update.
  Shape correlation_map_shape() const;

  // Bytes of cached band spectra; of frames kept in RAM by the averager (its
  // bounded cache); of the average's running sums (the mosaic canvas); and
  // what the frame store holds in RAM (all frames for a MemoryFrameStore);
  // of the precision stage's kept frame spectra (bounded by
  // EngineOptions::precision_spectra_cache_mib).
  std::size_t cache_bytes() const;
  std::size_t frame_bytes() const;
  std::size_t mosaic_bytes() const;
  std::size_t store_bytes() const;
  std::size_t precision_spectra_bytes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace livealign
