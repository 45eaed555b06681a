#pragma once
// ShiftedAverager: the drift-corrected average of a frame series, kept up to
// date incrementally as frames arrive and as the solver revises their shifts.
//
// Every frame i is resampled at p + s_i onto frame-0 coordinates (s_i follows
// core/shift.hpp: a feature at p in frame 0 is at p + s_i in frame i), so the
// average at p is the mean over frames of frame_i(p + s_i).
//
// Interpolation: separable bicubic convolution (Keys 1981, a = -0.5), chosen
// over a Fourier shift because (1) a frame's shift is one constant, so the 4 x
// 4 weights are the same for every pixel and resampling costs 8 multiply-adds
// per pixel with no FFT; (2) its support is local, so the pixels a frame covers
// form an exact rectangle and nothing wraps around the frame edges (a Fourier
// shift is circular and would paste the opposite edge in); (3) adding and
// subtracting a frame's contribution is exact and cheap. Its cost: a mild
// low-pass that depends on the fractional shift (none at integer shifts; the
// worst case, a half-pixel shift, passes 0.88 per axis at 0.25 cycles/px and
// 0.45 at 0.4 cycles/px), small next to the blur from shift errors at the
// frequencies where the lattice signal lies. A pixel counts as covered by a frame only when all
// taps with non-zero weight lie inside the frame (integer shifts use one tap),
// so the output never contains extrapolated values.
//
// Incremental bookkeeping: running sums (double) and per-pixel frame counts
// are kept separately for even and odd frame indices, so the full average and
// both FRC half-set averages come without re-resampling. SetShift re-resamples
// a frame only when its shift moved by more than `reresample_tolerance_px`
// from the shift its current contribution used, or its include flag changed:
// the old contribution is subtracted (recomputed exactly as it was added) and
// the new one added.
//
// Mosaic: the sums live on a tiled canvas in frame-0 coordinates
// (core/tiled_canvas.hpp): tiles are allocated as included frames' footprints
// reach them and never move, so the average covers the full extent of the
// series, frames that no longer overlap frame 0 still contribute, and a
// drift beyond the canvas costs only the new tiles, never a copy of the
// sums. The canvas is limited to `max_extent_frames` frame sizes on each side
// of frame 0 (a footprint beyond is clipped). Memory: the canvas grows with
// the area the drift covers, not with the number of frames.
//
// Frames: with a FrameStore the averager keeps only the `cache_frames` most
// recently added frames in RAM and reads an older frame back from the store
// when it must re-resample it (a moved shift, an include change, a
// leave-one-out template); the caller Puts each frame into the store before
// AddFrame. Without a store it keeps every frame. Thread-safety: const methods
// may run concurrently (the store allows concurrent Get); mutating methods
// must not run concurrently with anything else on the same object.
//
//   ShiftedAverager averager;
//   averager.AddFrame(std::move(frame0), Shift{0, 0});
//   averager.AddFrame(std::move(frame1), Shift{0.3, -1.2});
//   averager.SetShift(1, Shift{0.31, -1.19}, /*include=*/true);  // solver update
//   AverageImage average = averager.Average();   // average.common is fully covered

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/average_image.hpp"
#include "core/frame.hpp"
#include "core/frame_store.hpp"
#include "core/shift.hpp"
#include "core/thread_pool.hpp"
#include "core/tiled_canvas.hpp"

namespace livealign {


// Copy of `image` cropped to `rect`. Throws std::invalid_argument when rect is
// not inside the image.
Frame CropFrame(FrameView image, const AverageImage::Rect& rect);
// Copy of image.mosaic cropped to `rect` in frame-0 coordinates. Throws
// std::invalid_argument when rect is not inside image.mosaic_extent.
Frame CropMosaic(const AverageImage& image, const AverageImage::Rect& rect);

class ShiftedAverager {
 public:
  struct Options {
    // A frame is re-resampled when its shift moved by more than this from the
    // shift its contribution used. 0.01 px changes the average by well under
    // the noise; smaller values cost re-resampling on every solver jitter.
    double reresample_tolerance_px = 0.01;
    // With a store: frames kept in RAM (the most recently added ones).
    int cache_frames = 8;
    // Canvas limit, in frame sizes beyond frame 0's window on each side.
    int max_extent_frames = 8;
    // Best-covered region (core/coverage_region.hpp): fraction of the
    // highest per-pixel count a pixel needs. 0.5 keeps a region of about one
    // frame however far the view drifted, at the SNR of half the frames.
    double best_coverage_fraction = 0.5;

    bool Check(std::string* error) const;
  };

  ShiftedAverager();
  // Throws std::invalid_argument when options.Check() fails. With a store,
  // frame i is read back as store->Get(i, channel).
  explicit ShiftedAverager(Options options, std::shared_ptr<const FrameStore> store = nullptr,
                           std::string channel = "");

  // AddFrame and SetShift then resample onto the canvas by bands of rows on
  // the pool's workers (null: on the calling thread). The pool must outlive
  // this use, and those methods must then not be called from a task of the
  // same pool (ParallelFor does not nest).
  void SetThreadPool(ThreadPool* pool) { pool_ = pool; }

  // Adds frame (index = number of frames added before), returns its index.
  // The first frame fixes the shape. Throws std::invalid_argument on a shape
  // mismatch, an empty frame or a non-finite shift.
  int AddFrame(Frame frame, Shift shift, bool include = true);
  // The same for a frame shared with its store (FrameStore::PutShared), so
  // that RAM holds it once; it must not change while the averager holds it.
  int AddFrame(std::shared_ptr<const Frame> frame, Shift shift, bool include = true);

  // Updates frame i's shift and include flag (see the class comment for when
  // it re-resamples). Throws std::invalid_argument for a bad index or a
  // non-finite shift.
  void SetShift(int i, Shift shift, bool include);
  // One frame's new shift and include flag, for SetShifts.
  struct ShiftUpdate {
    int frame = -1;
    Shift shift;
    bool include = true;
  };
  // SetShift for many frames at once (frames not listed keep theirs), with
  // the same rule for which frames change their contribution. When that
  // would cost more resampling passes than rebuilding the sums (a
  // subtraction and an addition per moved frame, against one addition per
  // contributing frame: after a from-scratch solve or a refinement pass
  // moved nearly every frame), the sums are zeroed and rebuilt instead, on
  // the same tiles: the same average up to rounding, at about half the
  // passes. Throws as SetShift, before changing anything, for a bad index or
  // a non-finite shift. When a frame cannot be read back during a rebuild,
  // the frames not yet added are left out of the sums (not contributing, so
  // a later SetShift or SetShifts adds them back) and the store's exception
  // is rethrown: the sums always match the frames marked contributing.
  void SetShifts(const std::vector<ShiftUpdate>& updates);

  int num_frames() const { return static_cast<int>(frames_.size()); }
  int num_included() const;
  Shape shape() const { return shape_; }
  // The shift last requested for frame i, and the one its contribution used
  // (they differ by at most the tolerance).
  Shift shift(int i) const;
  // Frame i, as added: from the RAM cache, else read back from the store.
  // Throws std::invalid_argument for a bad index and what the store throws
  // when it cannot read the frame back.
  std::shared_ptr<const Frame> frame(int i) const;
  // Frames read back from the store so far.
  long num_store_reads() const { return num_store_reads_->load(); }
  Shift applied_shift(int i) const;
  bool included(int i) const;
  // Resampling passes made on the running sums so far (adds + subtracts by
  // AddFrame and SetShift), for cost accounting.
  long num_resamples() const { return num_resamples_; }

  // Mean of all included frames (uses the running sums: O(pixels)).
  AverageImage Average() const;
  // The same, reusing out's pixel buffers when their shapes already fit: on a
  // VM, faulting in fresh pages for three new frames costs ~10x the
  // arithmetic, so a live loop should keep one AverageImage and pass it here.
  void Average(AverageImage* out) const;
  // Mean of the included frames over frame i's footprint only (where its
  // applied shift puts it, inside the canvas limit; 0 where none covers),
  // into *mean, reused when its shape fits; counts into *counts when not
  // null. O(frame pixels) however far the mosaic has grown: for work on the
  // engine thread that needs a recent, well-covered average and not the
  // whole mosaic (a lattice re-estimate). Empty when frame i contributes
  // nothing.
  void MeanOverFootprint(int i, Frame* mean, Frame* counts = nullptr) const;
  // Mean of the included frames with even (parity 0) or odd (parity 1) index:
  // the two interleaved half-set averages for the FRC. O(pixels).
  AverageImage HalfSetAverage(int parity) const;
  // Average()'s best-covered region (returned) and its mean there (*best,
  // as AverageImage::best) alone: the frame-0 window and the mosaic planes are
  // not kept, so an analysis of the region (image quality, the lattice
  // estimate) holds the mosaic's counts for a moment and not six planes
  // (100 MB at 2048^2). Empty, and *best 0 x 0, when no frame is included.
  AverageImage::Rect BestCoveredMean(Frame* best) const;
  // BestCoveredMean's region alone.
  AverageImage::Rect BestCoveredRegion() const;
  // Average()'s mosaic over `rect` (frame-0 coordinates, 0 where no frame
  // covers) into `mean`, rect.rows() x rect.cols() floats, row-major: for a
  // caller that writes it straight into its own buffer (an FFT's input)
  // rather than hold a copy of a region as large as a frame.
  void MeanOver(const AverageImage::Rect& rect, float* mean) const;
  // HalfSetAverage(parity)'s mosaic over `rect` (frame-0 coordinates) into
  // *mean, rect-shaped: what an FRC of the best-covered region reads, without
  // the half set's whole mosaic. False, *mean untouched, when the half set
  // includes no frame or its mosaic does not contain rect.
  bool HalfSetMeanOver(int parity, const AverageImage::Rect& rect, Frame* mean) const;
  // The same into `mean`, rect.rows() x rect.cols() floats (as MeanOver).
  bool HalfSetMeanOver(int parity, const AverageImage::Rect& rect, float* mean) const;
  // Mean of frames with subset[i] && included(i), recomputed from scratch at
  // their current shifts. Requires subset.size() == num_frames().
  AverageImage AverageOf(const std::vector<bool>& subset) const;
  // Mean of the included frames other than i (a leave-one-out template for
  // refining frame i's shift); equals Average() when i is not included.
  // One resampling pass.
  AverageImage AverageExcluding(int i) const;

  // Scratch for LeaveOneOutMean; one per calling thread, reused across calls.
  struct LeaveOneOutScratch {
    std::vector<double> sum;
    std::vector<int> count;
  };
  // The full-extent mean of every included frame but i (0 where none covers
  // a pixel) written into *out, which is reused when it has the right shape.
  // The cheap form of AverageExcluding(i).full for the precision stage: no
  // counts, crop or allocation after the first call. Safe to call
  // concurrently from several threads with distinct scratch and out.
  void LeaveOneOutMean(int i, LeaveOneOutScratch* scratch, Frame* out) const;
  // The same mean moved into frame i's own coordinates by whole pixels: by
  // frame i's applied shift rounded, which is returned. Registering frame i
  // against it measures a residual of at most half a pixel per axis (small
  // moving-window bias, small search). Whole pixels because a fractional move
  // interpolates the template, and the bicubic kernel's phase error (about
  // -0.002 px at 1/16 cycles/px and -0.01 px at 1/8, varying with the
  // fraction) would enter every refined shift as a per-frame bias.
  // Requires: frame i's shift is finite.
  Shift LeaveOneOutMeanInFrame(int i, LeaveOneOutScratch* scratch, Frame* out) const;
  // The same with frame i's pixels already at hand (no read-back).
  Shift LeaveOneOutMeanInFrame(int i, const Frame& frame_i, LeaveOneOutScratch* scratch,
                               Frame* out) const;

  // Bytes of pixel data held (cached frames, sums, counts).
  std::size_t MemoryBytes() const;
  // Bytes of the frames held in RAM (the cache; every frame without a store).
  std::size_t FrameBytes() const;
  // Bytes of the running sums and counts (the canvas tiles).
  std::size_t CanvasBytes() const;
  // Bounding rectangle of the canvas tiles, frame-0 coordinates: it changes
  // exactly when an update allocated tiles outside it.
  AverageImage::Rect canvas() const;

 private:
  struct Entry {
    std::shared_ptr<const Frame> frame;  // null once evicted from the cache
    Shift shift;          // last requested
    Shift applied_shift;  // used by the current contribution
    bool include = true;  // last requested
    bool contributing = false;
  };

  void CheckIndex(int i, const char* where) const;
  // Adds sign * (frame resampled at p + shift) to the canvas sums / counts
  // over its footprint clipped to the canvas limit (allocating tiles), by
  // bands of rows on the pool's workers when one is given. `alongside`, when
  // given, runs once beside them as the first task of the same parallel loop
  // (after the resampling when there is no pool); it must not touch the
  // canvas, and what it throws is rethrown after the resampling finished.
  void AccumulateOnCanvas(FrameView frame, Shift shift, double sign, TiledCanvas* canvas,
                          ThreadPool* pool = nullptr,
                          const std::function<void()>& alongside = nullptr) const;
  // Mean of every contributing frame but i over `rect` (frame-0 coords; 0
  // where none covers or outside the canvas), into *mean (rect-shaped).
  void LeaveOneOutOver(int i, FrameView frame_i, const AverageImage::Rect& rect,
                       LeaveOneOutScratch* scratch, Frame* mean) const;
  // The average of canvas a (plus b when not null) for frames at `shifts`.
  AverageImage MakeImage(const TiledCanvas& a, const TiledCanvas* b,
                         const std::vector<Shift>& shifts) const;
  void MakeImageInto(const TiledCanvas& a, const TiledCanvas* b, const std::vector<Shift>& shifts,
                     AverageImage* image) const;
  // The mosaic part of MakeImageInto: image->mosaic_extent, mosaic,
  // mosaic_counts, best_covered and best.
  void MosaicInto(const TiledCanvas& a, const TiledCanvas* b, const std::vector<Shift>& shifts,
                  AverageImage* image) const;
  // The best-covered region (AverageImage::best_covered, frame-0
  // coordinates) of a mosaic with these per-half-set counts over `extent`.
  AverageImage::Rect BestCoveredIn(const AverageImage::Rect& extent, const std::vector<int>& counts_a,
                                   const std::vector<int>* counts_b) const;
  // Applied shifts of the contributing frames first, first + step, ...
  std::vector<Shift> ContributingShifts(int first, int step) const;
  // Whether the half set `parity` includes a frame and its mosaic contains
  // rect. Throws std::invalid_argument unless parity is 0 or 1.
  bool HalfSetCovers(int parity, const AverageImage::Rect& rect) const;
  // Union of the footprints at `shifts`, inside the canvas limit.
  AverageImage::Rect MosaicExtent(const std::vector<Shift>& shifts) const;

  Options options_;
  std::shared_ptr<const FrameStore> store_;
  std::string channel_;
  Shape shape_;
  std::vector<Entry> frames_;
  // Running sums and counts per index parity (0 even, 1 odd).
  AverageImage::Rect canvas_limit_;
  TiledCanvas sums_[2];
  long num_resamples_ = 0;
  ThreadPool* pool_ = nullptr;
  // Behind a pointer so the averager stays movable (vectors of averagers).
  std::unique_ptr<std::atomic<long>> num_store_reads_ = std::make_unique<std::atomic<long>>(0);
};

}  // namespace livealign
