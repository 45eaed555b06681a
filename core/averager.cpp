#include "core/averager.hpp"

#include <algorithm>
#include <cmath>
#include <exception>
#include <functional>
#include <stdexcept>
#include <string>

#include "core/coverage_region.hpp"
#include "core/fft.hpp"

namespace livealign {
namespace {

// A fractional part this close to 0 or 1 is treated as an integer shift, so
// integer shifts copy pixels exactly and cover one more pixel at each edge.
constexpr double kIntegerShiftEps = 1e-6;

// Keys (1981) cubic convolution kernel with a = -0.5.
double Keys(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x <= 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0;
}

// Resampling taps along one axis for the sample position index + shift.
struct Taps {
  long n = 0;            // floor of the shift
  int k_min = 0, k_max = 0;  // tap offsets in use (relative to n)
  float w[4] = {0, 0, 0, 0};  // weights for offsets k_min .. k_max
};

Taps MakeTaps(double shift) {
  Taps taps;
  double rounded = std::round(shift);
  if (std::fabs(shift - rounded) < kIntegerShiftEps) {
    taps.n = static_cast<long>(rounded);
    taps.k_min = taps.k_max = 0;
    taps.w[0] = 1;
    return taps;
  }
  const double floor = std::floor(shift);
  const double t = shift - floor;
  taps.n = static_cast<long>(floor);
  taps.k_min = -1;
  taps.k_max = 2;
  for (int k = -1; k <= 2; ++k) taps.w[k + 1] = static_cast<float>(Keys(k - t));
  return taps;
}

// Shifts far outside any frame are clamped before conversion to integers; the
// coverage is empty either way.
double ClampShift(double s) { return std::max(-1e9, std::min(1e9, s)); }

// Destination indices [lo, hi) of a length-dst_length axis whose taps all fall
// inside a length-src_length source, when destination index d samples the
// source at d + taps.n (+ the tap offsets).
void CoveredRange(const Taps& taps, long src_length, long dst_length, long* lo, long* hi) {
  *lo = std::max<long>(0, -taps.n - taps.k_min);
  *hi = std::min<long>(dst_length, src_length - taps.n - taps.k_max);
  if (*hi < *lo) *hi = *lo;
}

// Frame-0 pixels a frame at `shift` covers (unclipped; may be negative).
AverageImage::Rect Footprint(Shift shift, Shape shape) {
  const Taps tx = MakeTaps(ClampShift(shift.x)), ty = MakeTaps(ClampShift(shift.y));
  const long r0 = -ty.n - ty.k_min, r1 = shape.rows - ty.n - ty.k_max;
  const long c0 = -tx.n - tx.k_min, c1 = shape.cols - tx.n - tx.k_max;
  auto to_int = [](long v) { return static_cast<int>(std::max(-2000000000L, std::min(2000000000L, v))); };
  if (r1 <= r0 || c1 <= c0) return {};
  return {to_int(r0), to_int(r1), to_int(c0), to_int(c1)};
}

AverageImage::Rect Intersect(const AverageImage::Rect& a, const AverageImage::Rect& b) {
  AverageImage::Rect r{std::max(a.row0, b.row0), std::min(a.row1, b.row1), std::max(a.col0, b.col0),
                       std::min(a.col1, b.col1)};
  if (r.Empty()) return {};
  return r;
}

AverageImage::Rect Union(const AverageImage::Rect& a, const AverageImage::Rect& b) {
  if (a.Empty()) return b;
  if (b.Empty()) return a;
  return {std::min(a.row0, b.row0), std::max(a.row1, b.row1), std::min(a.col0, b.col0),
          std::max(a.col1, b.col1)};
}

bool Contains(const AverageImage::Rect& outer, const AverageImage::Rect& inner) {
  return inner.Empty() || (inner.row0 >= outer.row0 && inner.row1 <= outer.row1 &&
                           inner.col0 >= outer.col0 && inner.col1 <= outer.col1);
}

// Zeroes the shape-sized image outside `keep` (image coordinates; empty: all
// of it). Why not zero everything before overwriting most of it: that is a
// frame-sized memset per call in the precision stage's hot loop.
template <typename T>
void ZeroOutside(T* data, Shape shape, const AverageImage::Rect& keep) {
  for (int r = 0; r < shape.rows; ++r) {
    T* row = data + static_cast<std::size_t>(r) * shape.cols;
    if (keep.Empty() || r < keep.row0 || r >= keep.row1) {
      std::fill(row, row + shape.cols, T{});
      continue;
    }
    std::fill(row, row + keep.col0, T{});
    std::fill(row + keep.col1, row + shape.cols, T{});
  }
}

// The sampling geometry of ResampleAccumulate: destination
// pixel (r, c) samples src at (r + shift.y + add_row, c + shift.x + add_col);
// rows [r0, r1) and columns [c0, c1) have all their taps inside src. The taps
// come from `shift` alone, so the same shift gives bit-identical weights
// whatever the integer offsets (exact subtraction after the canvas moved).
struct ResampleGeometry {
  Taps tx, ty;
  long r0 = 0, r1 = 0, c0 = 0, c1 = 0;
  bool Empty() const { return c0 >= c1 || r0 >= r1; }
};

ResampleGeometry MakeGeometry(FrameView src, Shift shift, long add_row, long add_col,
                              Shape dst_shape) {
  ResampleGeometry g;
  g.tx = MakeTaps(ClampShift(shift.x));
  g.ty = MakeTaps(ClampShift(shift.y));
  g.tx.n += add_col;
  g.ty.n += add_row;
  CoveredRange(g.tx, src.cols(), dst_shape.cols, &g.c0, &g.c1);
  CoveredRange(g.ty, src.rows(), dst_shape.rows, &g.r0, &g.r1);
  return g;
}

// The horizontal pass over the source rows the vertical taps need: row k of
// the result is source row r0 + ty.n + ty.k_min + k resampled along x at
// columns [c0, c1). Scratch reused per thread: every element is written
// before it is read, and zero-filling a frame-sized buffer per call was a
// tenth of `register`'s instructions.
const float* HorizontalPass(FrameView src, const ResampleGeometry& g) {
  const int out_cols = static_cast<int>(g.c1 - g.c0);
  const long src_row0 = g.r0 + g.ty.n + g.ty.k_min;
  const long src_rows = (g.r1 - 1 + g.ty.n + g.ty.k_max) - src_row0 + 1;
  static thread_local std::vector<float> tmp;
  const std::size_t tmp_size = static_cast<std::size_t>(src_rows) * out_cols;
  if (tmp.size() < tmp_size) tmp.resize(tmp_size);
  const int nx_taps = g.tx.k_max - g.tx.k_min + 1;
  for (long sr = 0; sr < src_rows; ++sr) {
    const float* in = src.row(static_cast<int>(src_row0 + sr)) + (g.c0 + g.tx.n + g.tx.k_min);
    float* dst = tmp.data() + static_cast<std::size_t>(sr) * out_cols;
    if (nx_taps == 1) {
      std::copy(in, in + out_cols, dst);
    } else {
      const float w0 = g.tx.w[0], w1 = g.tx.w[1], w2 = g.tx.w[2], w3 = g.tx.w[3];
      for (int c = 0; c < out_cols; ++c)
        dst[c] = w0 * in[c] + w1 * in[c + 1] + w2 * in[c + 2] + w3 * in[c + 3];
    }
  }
  return tmp.data();
}

// The vertical pass for one output row segment of n pixels: the value of
// each pixel from the horizontal-pass rows t0, t0 + stride, ... (one row for
// an integer shift, four otherwise), handed to store(out[c], value). One
// kernel for every destination (double sums, float images) so the
// arithmetic, and therefore each pixel's value, is the same everywhere; the
// store is inlined and the loop stays vectorised.
template <typename Out, typename Store>
inline void VerticalPassRow(const float* t0, std::size_t stride, const Taps& ty, int n, Out* out,
                            Store store) {
  if (ty.k_max == ty.k_min) {
    for (int c = 0; c < n; ++c) store(out[c], t0[c]);
    return;
  }
  const float* t1 = t0 + stride;
  const float* t2 = t1 + stride;
  const float* t3 = t2 + stride;
  const float w0 = ty.w[0], w1 = ty.w[1], w2 = ty.w[2], w3 = ty.w[3];
  for (int c = 0; c < n; ++c) store(out[c], w0 * t0[c] + w1 * t1[c] + w2 * t2[c] + w3 * t3[c]);
}

// Adds sign * (src resampled) onto a tiled canvas, clipped to `limit`
// (frame-0 coordinates): canvas pixel p samples src at p + shift (sampling
// as ResampleGeometry). Per pixel the same arithmetic whatever the sign
// (LeaveOneOutOver repeats it), so a frame added and later subtracted
// cancels exactly, and the values do not depend on where the tile edges fall.
void ResampleAccumulate(FrameView src, Shift shift, const AverageImage::Rect& limit, double sign,
                        TiledCanvas* canvas) {
  const ResampleGeometry g =
      MakeGeometry(src, shift, limit.row0, limit.col0, Shape{limit.rows(), limit.cols()});
  if (g.Empty()) return;
  const int out_cols = static_cast<int>(g.c1 - g.c0);
  const float* tmp = HorizontalPass(src, g);
  const int icount = sign > 0 ? 1 : -1;
  const auto accumulate = [sign](double& o, float v) { o += sign * static_cast<double>(v); };
  const AverageImage::Rect rect{static_cast<int>(g.r0 + limit.row0), static_cast<int>(g.r1 + limit.row0),
                                static_cast<int>(g.c0 + limit.col0), static_cast<int>(g.c1 + limit.col0)};
  canvas->ForEachRowSegment(rect, [&](int r, int c0, int c1, double* sum, int* count) {
    const float* t0 = tmp + static_cast<std::size_t>(r - rect.row0) * out_cols + (c0 - rect.col0);
    VerticalPassRow(t0, out_cols, g.ty, c1 - c0, sum, accumulate);
    for (int c = 0; c < c1 - c0; ++c) count[c] += icount;
  });
}

bool Finite(Shift s) { return std::isfinite(s.x) && std::isfinite(s.y); }

// out[k] = sum[k] / count[k] where count[k] > 0, else 0. Two plain loops, a
// division with the divisor clamped to 1 and then a select, because the
// compiler vectorises neither a conditional division (it may not be
// speculated under trapping maths) nor a select of its result; covered pixels
// get the very same quotient.
void MeanOfSums(const double* sum, const int* count, std::size_t n, float* out) {
  for (std::size_t k = 0; k < n; ++k) {
    const int c = count[k];
    out[k] = static_cast<float>(sum[k] / static_cast<double>(std::max(c, 1)));
  }
  for (std::size_t k = 0; k < n; ++k) out[k] = count[k] > 0 ? out[k] : 0.0f;
}

}  // namespace

std::ostream& operator<<(std::ostream& os, const AverageImage::Rect& rect) {
  return os << "{rows [" << rect.row0 << ", " << rect.row1 << "), cols [" << rect.col0 << ", "
            << rect.col1 << ")}";
}

Frame CropFrame(FrameView image, const AverageImage::Rect& rect) {
  if (rect.row0 < 0 || rect.col0 < 0 || rect.row1 > image.rows() || rect.col1 > image.cols() ||
      rect.row1 < rect.row0 || rect.col1 < rect.col0)
    throw std::invalid_argument("CropFrame: rectangle outside the image");
  Frame out(Shape{rect.rows(), rect.cols()});
  for (int r = 0; r < rect.rows(); ++r)
    std::copy(image.row(rect.row0 + r) + rect.col0, image.row(rect.row0 + r) + rect.col1,
              out.data() + static_cast<std::size_t>(r) * rect.cols());
  return out;
}

Frame CropMosaic(const AverageImage& image, const AverageImage::Rect& rect) {
  if (!Contains(image.mosaic_extent, rect))
    throw std::invalid_argument("CropMosaic: rectangle outside the mosaic");
  if (rect.Empty()) return Frame(Shape{0, 0});
  const AverageImage::Rect local{rect.row0 - image.mosaic_extent.row0,
                                 rect.row1 - image.mosaic_extent.row0,
                                 rect.col0 - image.mosaic_extent.col0,
                                 rect.col1 - image.mosaic_extent.col0};
  return CropFrame(image.mosaic, local);
}

bool ShiftedAverager::Options::Check(std::string* error) const {
  if (!(reresample_tolerance_px >= 0) || !std::isfinite(reresample_tolerance_px)) {
    if (error != nullptr) *error = "reresample_tolerance_px must be finite and >= 0";
    return false;
  }
  if (cache_frames < 0) {
    if (error != nullptr) *error = "cache_frames must be >= 0";
    return false;
  }
  if (max_extent_frames < 0 || max_extent_frames > 1000) {
    if (error != nullptr) *error = "max_extent_frames must be in [0, 1000]";
    return false;
  }
  if (!(best_coverage_fraction > 0 && best_coverage_fraction <= 1)) {
    if (error != nullptr) *error = "best_coverage_fraction must be in (0, 1]";
    return false;
  }
  if (error != nullptr) error->clear();
  return true;
}

ShiftedAverager::ShiftedAverager() : ShiftedAverager(Options()) {}

ShiftedAverager::ShiftedAverager(Options options, std::shared_ptr<const FrameStore> store,
                                 std::string channel)
    : options_(options), store_(std::move(store)), channel_(std::move(channel)) {
  std::string error;
  if (!options_.Check(&error)) throw std::invalid_argument("ShiftedAverager::Options: " + error);
}

void ShiftedAverager::CheckIndex(int i, const char* where) const {
  if (i < 0 || i >= num_frames())
    throw std::invalid_argument(std::string(where) + ": frame index out of range");
}

int ShiftedAverager::AddFrame(Frame frame, Shift shift, bool include) {
  return AddFrame(std::make_shared<const Frame>(std::move(frame)), shift, include);
}

int ShiftedAverager::AddFrame(std::shared_ptr<const Frame> shared, Shift shift, bool include) {
  if (shared == nullptr) throw std::invalid_argument("ShiftedAverager::AddFrame: no frame");
  const Frame& frame = *shared;
  if (frame.shape().Empty()) throw std::invalid_argument("ShiftedAverager::AddFrame: empty frame");
  if (!Finite(shift)) throw std::invalid_argument("ShiftedAverager::AddFrame: non-finite shift");
  if (frames_.empty()) {
    shape_ = frame.shape();
    const long limit = options_.max_extent_frames;
    canvas_limit_ = {static_cast<int>(std::max(-1000000000L, -limit * shape_.rows)),
                     static_cast<int>(std::min(1000000000L, (limit + 1) * shape_.rows)),
                     static_cast<int>(std::max(-1000000000L, -limit * shape_.cols)),
                     static_cast<int>(std::min(1000000000L, (limit + 1) * shape_.cols))};
    sums_[0] = TiledCanvas();
    sums_[1] = TiledCanvas();
  } else if (frame.shape() != shape_) {
    throw std::invalid_argument("ShiftedAverager::AddFrame: frame shape differs from the first frame");
  }
  const int index = num_frames();
  Entry entry;
  entry.frame = std::move(shared);
  entry.shift = entry.applied_shift = shift;
  entry.include = include;
  if (include) {
    AccumulateOnCanvas(*entry.frame, shift, +1, &sums_[index % 2], pool_);
    ++num_resamples_;
    entry.contributing = true;
  }
  frames_.push_back(std::move(entry));
  // With a store, only the most recent frames stay in RAM.
  if (store_ != nullptr) {
    const int evict = index - options_.cache_frames;
    if (evict >= 0) frames_[static_cast<std::size_t>(evict)].frame.reset();
  }
  return index;
}

std::shared_ptr<const Frame> ShiftedAverager::frame(int i) const {
  CheckIndex(i, "ShiftedAverager::frame");
  const Entry& entry = frames_[static_cast<std::size_t>(i)];
  if (entry.frame != nullptr) return entry.frame;
  std::shared_ptr<const Frame> read = store_->GetShared(i, channel_);
  if (read == nullptr || read->shape() != shape_)
    throw std::runtime_error("ShiftedAverager: frame " + std::to_string(i) +
                             " read back from the store has a different shape");
  ++*num_store_reads_;
  return read;
}

void ShiftedAverager::SetShift(int i, Shift shift, bool include) {
  CheckIndex(i, "ShiftedAverager::SetShift");
  if (!Finite(shift)) throw std::invalid_argument("ShiftedAverager::SetShift: non-finite shift");
  Entry& entry = frames_[static_cast<std::size_t>(i)];
  const bool moved = (shift - entry.applied_shift).Norm() > options_.reresample_tolerance_px;
  const bool subtract = entry.contributing && (!include || moved);
  const bool add = include && (!entry.contributing || subtract);
  // Read back first: a failed read leaves the averager unchanged.
  std::shared_ptr<const Frame> pixels;
  if (subtract || add) pixels = frame(i);
  entry.shift = shift;
  entry.include = include;
  TiledCanvas* canvas = &sums_[i % 2];
  if (subtract) {
    AccumulateOnCanvas(*pixels, entry.applied_shift, -1, canvas, pool_);
    ++num_resamples_;
    entry.contributing = false;
  }
  if (add) {
    AccumulateOnCanvas(*pixels, shift, +1, canvas, pool_);
    ++num_resamples_;
    entry.applied_shift = shift;
    entry.contributing = true;
  }
}

void ShiftedAverager::SetShifts(const std::vector<ShiftUpdate>& updates) {
  for (const ShiftUpdate& u : updates) {
    CheckIndex(u.frame, "ShiftedAverager::SetShifts");
    if (!Finite(u.shift)) throw std::invalid_argument("ShiftedAverager::SetShifts: non-finite shift");
  }
  // Passes each way: SetShift's subtract and add per update, against one add
  // per frame contributing afterwards.
  std::vector<char> updated(frames_.size(), 0);
  long incremental = 0, rebuild = 0;
  for (const ShiftUpdate& u : updates) {
    const Entry& entry = frames_[static_cast<std::size_t>(u.frame)];
    const bool moved = (u.shift - entry.applied_shift).Norm() > options_.reresample_tolerance_px;
    const bool subtract = entry.contributing && (!u.include || moved);
    const bool add = u.include && (!entry.contributing || subtract);
    incremental += (subtract ? 1 : 0) + (add ? 1 : 0);
    updated[static_cast<std::size_t>(u.frame)] = 1;
    if (u.include) ++rebuild;
  }
  for (std::size_t i = 0; i < frames_.size(); ++i) {
    if (!updated[i] && frames_[i].contributing) ++rebuild;
  }
  if (rebuild >= incremental) {
    for (const ShiftUpdate& u : updates) SetShift(u.frame, u.shift, u.include);
    return;
  }
  // Rebuild. A frame within the tolerance keeps its applied shift, as
  // SetShift would leave it.
  for (const ShiftUpdate& u : updates) {
    Entry& entry = frames_[static_cast<std::size_t>(u.frame)];
    const bool moved = (u.shift - entry.applied_shift).Norm() > options_.reresample_tolerance_px;
    entry.shift = u.shift;
    entry.include = u.include;
    if (u.include && (!entry.contributing || moved)) entry.applied_shift = u.shift;
  }
  for (Entry& entry : frames_) entry.contributing = false;
  sums_[0].Zero();
  sums_[1].Zero();
  std::vector<int> order;
  for (std::size_t i = 0; i < frames_.size(); ++i)
    if (frames_[i].include) order.push_back(static_cast<int>(i));
  if (order.empty()) return;
  // Each frame is read back while the one before is resampled, as one more
  // task of its parallel loop: a read from the store (a pread of the frame)
  // would otherwise leave the other workers idle. A failed read is rethrown
  // when its frame's turn comes, so the frames before it are in the sums.
  std::shared_ptr<const Frame> next = frame(order[0]);  // may throw: see the header
  for (std::size_t k = 0; k < order.size(); ++k) {
    const std::size_t i = static_cast<std::size_t>(order[k]);
    Entry& entry = frames_[i];
    const std::shared_ptr<const Frame> pixels = std::move(next);
    std::exception_ptr read_error;
    std::function<void()> read_next;
    if (k + 1 < order.size()) {
      read_next = [this, &next, &read_error, f = order[k + 1]] {
        try {
          next = frame(f);
        } catch (...) {
          read_error = std::current_exception();
        }
      };
    }
    AccumulateOnCanvas(*pixels, entry.applied_shift, +1, &sums_[i % 2], pool_, read_next);
    ++num_resamples_;
    entry.contributing = true;
    if (read_error) std::rethrow_exception(read_error);
  }
}

int ShiftedAverager::num_included() const {
  return static_cast<int>(std::count_if(frames_.begin(), frames_.end(),
                                        [](const Entry& e) { return e.contributing; }));
}

Shift ShiftedAverager::shift(int i) const {
  CheckIndex(i, "ShiftedAverager::shift");
  return frames_[static_cast<std::size_t>(i)].shift;
}
Shift ShiftedAverager::applied_shift(int i) const {
  CheckIndex(i, "ShiftedAverager::applied_shift");
  return frames_[static_cast<std::size_t>(i)].applied_shift;
}
bool ShiftedAverager::included(int i) const {
  CheckIndex(i, "ShiftedAverager::included");
  return frames_[static_cast<std::size_t>(i)].include;
}

void ShiftedAverager::AccumulateOnCanvas(FrameView frame, Shift shift, double sign,
                                         TiledCanvas* canvas, ThreadPool* pool,
                                         const std::function<void()>& alongside) const {
  constexpr int kTile = TiledCanvas::kTileSize;
  if (pool == nullptr || pool->NumWorkers() < 2 || frame.rows() < 4 * kTile) {
    ResampleAccumulate(frame, shift, canvas_limit_, sign, canvas);
    if (alongside) alongside();
    return;
  }
  // The rows the frame covers, cut into bands of whole tile rows, one band
  // per task: each tile is written by one worker, and each band's pixels get
  // the very arithmetic of one call over the whole limit (the taps come from
  // the shift alone).
  const ResampleGeometry g = MakeGeometry(frame, shift, canvas_limit_.row0, canvas_limit_.col0,
                                          Shape{canvas_limit_.rows(), canvas_limit_.cols()});
  if (g.Empty()) {
    if (alongside) alongside();
    return;
  }
  const AverageImage::Rect covered{static_cast<int>(g.r0 + canvas_limit_.row0),
                                   static_cast<int>(g.r1 + canvas_limit_.row0),
                                   static_cast<int>(g.c0 + canvas_limit_.col0),
                                   static_cast<int>(g.c1 + canvas_limit_.col0)};
  canvas->Reserve(covered);
  const int first_tile = TiledCanvas::TileIndex(covered.row0);
  const int tiles = TiledCanvas::TileIndex(covered.row1 - 1) - first_tile + 1;
  const int bands = std::min(tiles, 2 * pool->NumWorkers());
  // `alongside` is the first task, so that it starts at once beside the
  // first band and its worker then joins the others.
  const int first_band = alongside ? 1 : 0;
  pool->ParallelFor(first_band + bands, [&](int task, int /*worker*/) {
    if (task < first_band) {
      alongside();
      return;
    }
    const int b = task - first_band;
    AverageImage::Rect band = canvas_limit_;
    band.row0 = std::max(covered.row0, (first_tile + b * tiles / bands) * kTile);
    band.row1 = std::min(covered.row1, (first_tile + (b + 1) * tiles / bands) * kTile);
    ResampleAccumulate(frame, shift, band, sign, canvas);
  });
}

AverageImage::Rect ShiftedAverager::canvas() const {
  return Union(sums_[0].bounds(), sums_[1].bounds());
}

AverageImage ShiftedAverager::MakeImage(const TiledCanvas& a, const TiledCanvas* b,
                                        const std::vector<Shift>& shifts) const {
  AverageImage image;
  MakeImageInto(a, b, shifts, &image);
  return image;
}

namespace {

// The mean of canvas a (+ b) over `rect` into `mean` (rect-sized,
// row-major), the counts into `counts` when not null, and, when asked, the
// per-canvas counts. Straight from the tiles, one pass: on a long drift the
// mosaic is ~1000^2 pixels and staging it in fresh arrays cost more than the
// arithmetic. The mean is MeanOfSums' of the sum a + b. Without `counts`
// they go through one row of scratch, so that a caller that wants the mean
// alone (an analysis of a large region) holds no second plane.
void MeanInto(const AverageImage::Rect& rect, const TiledCanvas& a, const TiledCanvas* b, float* mean,
              float* counts, std::vector<int>* counts_a = nullptr, std::vector<int>* counts_b = nullptr) {
  const Shape shape{rect.rows(), rect.cols()};
  const std::size_t n = static_cast<std::size_t>(shape.Pixels());
  if (counts_a != nullptr) counts_a->resize(n);
  if (counts_b != nullptr && b != nullptr) counts_b->resize(n);
  if (n == 0) return;
  const std::size_t cols = static_cast<std::size_t>(shape.cols);
  std::vector<float> row_counts(counts == nullptr ? cols : 0);
  TiledCanvas::ForEachRowSegment(
      rect, a, b,
      [&](int r, int c0, int c1, const double* sa, const int* ca, const double* sb, const int* cb) {
        const int len = c1 - c0;
        const std::size_t to = static_cast<std::size_t>(r - rect.row0) * cols + (c0 - rect.col0);
        float* m = mean + to;
        float* k = counts != nullptr ? counts + to : row_counts.data();
        int* out_a = counts_a != nullptr ? counts_a->data() + to : nullptr;
        int* out_b = counts_b != nullptr && b != nullptr ? counts_b->data() + to : nullptr;
        if (out_a != nullptr) {
          if (ca != nullptr) std::copy(ca, ca + len, out_a); else std::fill(out_a, out_a + len, 0);
        }
        if (out_b != nullptr) {
          if (cb != nullptr) std::copy(cb, cb + len, out_b); else std::fill(out_b, out_b + len, 0);
        }
        if (sa != nullptr && sb != nullptr) {
          for (int c = 0; c < len; ++c) {
            const int count = ca[c] + cb[c];
            k[c] = static_cast<float>(count);
            m[c] = static_cast<float>((sa[c] + sb[c]) / static_cast<double>(std::max(count, 1)));
          }
        } else if (sa != nullptr || sb != nullptr) {
          const double* s = sa != nullptr ? sa : sb;
          const int* q = sa != nullptr ? ca : cb;
          for (int c = 0; c < len; ++c) {
            k[c] = static_cast<float>(q[c]);
            m[c] = static_cast<float>(s[c] / static_cast<double>(std::max(q[c], 1)));
          }
        } else {
          std::fill(k, k + len, 0.0f);
          std::fill(m, m + len, 0.0f);
          return;
        }
        // As MeanOfSums: the select in its own loop keeps both vectorised.
        for (int c = 0; c < len; ++c) m[c] = k[c] > 0 ? m[c] : 0.0f;
      });
}

// MeanInto into *mean, and into *counts when not null, rect-shaped, their
// buffers reused when the shape fits.
void MeanIntoFrames(const AverageImage::Rect& rect, const TiledCanvas& a, const TiledCanvas* b,
                    Frame* mean, Frame* counts, std::vector<int>* counts_a = nullptr,
                    std::vector<int>* counts_b = nullptr) {
  const Shape shape{rect.rows(), rect.cols()};
  if (mean->shape() != shape) *mean = Frame(shape);
  if (counts != nullptr && counts->shape() != shape) *counts = Frame(shape);
  MeanInto(rect, a, b, mean->data(), counts != nullptr ? counts->data() : nullptr, counts_a, counts_b);
}

// The per-canvas counts of a and b over `rect` (rect-sized, row-major).
void CountsOver(const AverageImage::Rect& rect, const TiledCanvas& a, const TiledCanvas& b,
                std::vector<int>* counts_a, std::vector<int>* counts_b) {
  const std::size_t n = static_cast<std::size_t>(rect.rows()) * static_cast<std::size_t>(rect.cols());
  counts_a->assign(n, 0);
  counts_b->assign(n, 0);
  if (n == 0) return;
  const std::size_t cols = static_cast<std::size_t>(rect.cols());
  TiledCanvas::ForEachRowSegment(
      rect, a, &b, [&](int r, int c0, int c1, const double*, const int* ca, const double*, const int* cb) {
        const std::size_t to = static_cast<std::size_t>(r - rect.row0) * cols + (c0 - rect.col0);
        if (ca != nullptr) std::copy(ca, ca + (c1 - c0), counts_a->data() + to);
        if (cb != nullptr) std::copy(cb, cb + (c1 - c0), counts_b->data() + to);
      });
}

// `image` cropped to rect (image coordinates, inside it) into *out, reusing
// its buffer when the shape fits.
void CropInto(FrameView image, const AverageImage::Rect& rect, Frame* out) {
  const Shape shape{rect.rows(), rect.cols()};
  if (out->shape() != shape) *out = Frame(shape);
  for (int r = 0; r < shape.rows; ++r)
    std::copy(image.row(rect.row0 + r) + rect.col0, image.row(rect.row0 + r) + rect.col1,
              out->data() + static_cast<std::size_t>(r) * shape.cols);
}

AverageImage::Rect Moved(const AverageImage::Rect& rect, int rows, int cols) {
  if (rect.Empty()) return {};
  return {rect.row0 + rows, rect.row1 + rows, rect.col0 + cols, rect.col1 + cols};
}

}  // namespace

void ShiftedAverager::MakeImageInto(const TiledCanvas& a, const TiledCanvas* b,
                                    const std::vector<Shift>& shifts, AverageImage* out) const {
  AverageImage& image = *out;
  image.num_included = static_cast<int>(shifts.size());
  // Frame-0 window (inside the canvas limit).
  const AverageImage::Rect window{0, shape_.rows, 0, shape_.cols};
  MeanIntoFrames(window, a, b, &image.full, &image.counts);
  AverageImage::Rect valid = shifts.empty() ? AverageImage::Rect{} : window;
  for (const Shift& s : shifts) valid = Intersect(valid, Footprint(s, shape_));
  image.valid = valid;
  CropInto(image.full, valid, &image.common);
  MosaicInto(a, b, shifts, out);
}

void ShiftedAverager::MosaicInto(const TiledCanvas& a, const TiledCanvas* b,
                                 const std::vector<Shift>& shifts, AverageImage* out) const {
  AverageImage& image = *out;
  const AverageImage::Rect extent = MosaicExtent(shifts);
  image.mosaic_extent = extent;
  // Scratch of this call only: kept per thread, two mosaic-sized count
  // arrays stayed resident in every thread that had ever averaged.
  std::vector<int> counts_a, counts_b;
  MeanIntoFrames(extent, a, b, &image.mosaic, &image.mosaic_counts, &counts_a, &counts_b);
  image.best_covered = BestCoveredIn(extent, counts_a, b != nullptr ? &counts_b : nullptr);
  CropInto(image.mosaic, Moved(image.best_covered, -extent.row0, -extent.col0), &image.best);
}

AverageImage::Rect ShiftedAverager::BestCoveredIn(const AverageImage::Rect& extent,
                                                  const std::vector<int>& counts_a,
                                                  const std::vector<int>* counts_b) const {
  if (extent.Empty()) return {};
  AverageImage::Rect best = BestCoveredRect(counts_a.data(), counts_b != nullptr ? counts_b->data() : nullptr,
                                            extent.rows(), extent.cols(), options_.best_coverage_fraction);
  // Shrunk (centred) to FFT-friendly sides: every analysis of it (the FRC,
  // the information transfer, the lattice estimate) is a 2-D FFT of it.
  if (!best.Empty()) {
    const int rows = FftFriendlySizeAtMost(best.rows()), cols = FftFriendlySizeAtMost(best.cols());
    best.row0 += (best.rows() - rows) / 2;
    best.row1 = best.row0 + rows;
    best.col0 += (best.cols() - cols) / 2;
    best.col1 = best.col0 + cols;
  }
  return Moved(best, extent.row0, extent.col0);
}

std::vector<Shift> ShiftedAverager::ContributingShifts(int first, int step) const {
  std::vector<Shift> shifts;
  for (int i = first; i < num_frames(); i += step)
    if (frames_[static_cast<std::size_t>(i)].contributing)
      shifts.push_back(frames_[static_cast<std::size_t>(i)].applied_shift);
  return shifts;
}

AverageImage::Rect ShiftedAverager::MosaicExtent(const std::vector<Shift>& shifts) const {
  AverageImage::Rect extent;
  for (const Shift& s : shifts) extent = Union(extent, Intersect(Footprint(s, shape_), canvas_limit_));
  return extent;
}

AverageImage::Rect ShiftedAverager::BestCoveredRegion() const {
  // The per-half-set counts over the mosaic decide the region.
  const AverageImage::Rect extent = MosaicExtent(ContributingShifts(0, 1));
  std::vector<int> counts_a, counts_b;
  CountsOver(extent, sums_[0], sums_[1], &counts_a, &counts_b);
  return BestCoveredIn(extent, counts_a, &counts_b);
}

AverageImage::Rect ShiftedAverager::BestCoveredMean(Frame* best) const {
  if (best == nullptr) throw std::invalid_argument("ShiftedAverager::BestCoveredMean: null output");
  // The mosaic's counts are released (with BestCoveredRegion's return)
  // before the mean is allocated: the peak holds one of them, not both.
  const AverageImage::Rect region = BestCoveredRegion();
  MeanIntoFrames(region, sums_[0], &sums_[1], best, nullptr);
  return region;
}

void ShiftedAverager::MeanOver(const AverageImage::Rect& rect, float* mean) const {
  if (mean == nullptr) throw std::invalid_argument("ShiftedAverager::MeanOver: null output");
  MeanInto(rect, sums_[0], &sums_[1], mean, nullptr);
}

bool ShiftedAverager::HalfSetCovers(int parity, const AverageImage::Rect& rect) const {
  if (parity != 0 && parity != 1)
    throw std::invalid_argument("ShiftedAverager::HalfSetMeanOver: parity must be 0 or 1");
  const std::vector<Shift> shifts = ContributingShifts(parity, 2);
  return !shifts.empty() && Contains(MosaicExtent(shifts), rect);
}

bool ShiftedAverager::HalfSetMeanOver(int parity, const AverageImage::Rect& rect, float* mean) const {
  if (mean == nullptr) throw std::invalid_argument("ShiftedAverager::HalfSetMeanOver: null output");
  if (!HalfSetCovers(parity, rect)) return false;
  MeanInto(rect, sums_[parity], nullptr, mean, nullptr);
  return true;
}

bool ShiftedAverager::HalfSetMeanOver(int parity, const AverageImage::Rect& rect, Frame* mean) const {
  if (mean == nullptr) throw std::invalid_argument("ShiftedAverager::HalfSetMeanOver: null output");
  if (!HalfSetCovers(parity, rect)) return false;
  MeanIntoFrames(rect, sums_[parity], nullptr, mean, nullptr);
  return true;
}

void ShiftedAverager::MeanOverFootprint(int i, Frame* mean, Frame* counts) const {
  CheckIndex(i, "MeanOverFootprint");
  if (mean == nullptr) throw std::invalid_argument("ShiftedAverager::MeanOverFootprint: null output");
  const Entry& e = frames_[static_cast<std::size_t>(i)];
  const AverageImage::Rect rect =
      e.contributing ? Intersect(Footprint(e.applied_shift, shape_), canvas_limit_) : AverageImage::Rect{};
  MeanIntoFrames(rect, sums_[0], &sums_[1], mean, counts);
}

AverageImage ShiftedAverager::Average() const {
  AverageImage image;
  Average(&image);
  return image;
}

void ShiftedAverager::Average(AverageImage* out) const {
  if (out == nullptr) throw std::invalid_argument("ShiftedAverager::Average: null output");
  if (frames_.empty()) {
    *out = AverageImage();
    return;
  }
  MakeImageInto(sums_[0], &sums_[1], ContributingShifts(0, 1), out);
}

AverageImage ShiftedAverager::HalfSetAverage(int parity) const {
  if (parity != 0 && parity != 1)
    throw std::invalid_argument("ShiftedAverager::HalfSetAverage: parity must be 0 or 1");
  if (frames_.empty()) return AverageImage();
  return MakeImage(sums_[parity], nullptr, ContributingShifts(parity, 2));
}

AverageImage ShiftedAverager::AverageOf(const std::vector<bool>& subset) const {
  if (subset.size() != frames_.size())
    throw std::invalid_argument("ShiftedAverager::AverageOf: subset size differs from num_frames()");
  if (frames_.empty()) return AverageImage();
  TiledCanvas sums;
  std::vector<Shift> shifts;
  for (std::size_t i = 0; i < frames_.size(); ++i) {
    if (!subset[i] || !frames_[i].include) continue;
    AccumulateOnCanvas(*frame(static_cast<int>(i)), frames_[i].shift, +1, &sums);
    shifts.push_back(frames_[i].shift);
  }
  return MakeImage(sums, nullptr, shifts);
}

AverageImage ShiftedAverager::AverageExcluding(int i) const {
  CheckIndex(i, "ShiftedAverager::AverageExcluding");
  // The sum of both parities, as Average() reads it, less frame i.
  TiledCanvas sums = sums_[0].Clone();
  sums.Add(sums_[1]);
  const Entry& excluded = frames_[static_cast<std::size_t>(i)];
  if (excluded.contributing) AccumulateOnCanvas(*frame(i), excluded.applied_shift, -1, &sums);
  std::vector<Shift> shifts;
  for (int j = 0; j < num_frames(); ++j)
    if (j != i && frames_[static_cast<std::size_t>(j)].contributing)
      shifts.push_back(frames_[static_cast<std::size_t>(j)].applied_shift);
  return MakeImage(sums, nullptr, shifts);
}

void ShiftedAverager::LeaveOneOutOver(int i, FrameView frame_i, const AverageImage::Rect& rect,
                                      LeaveOneOutScratch* scratch, Frame* mean) const {
  const Shape shape{rect.rows(), rect.cols()};
  if (mean->shape() != shape) *mean = Frame(shape);
  if (shape.Empty()) return;
  const std::size_t cols = static_cast<std::size_t>(shape.cols);
  // Strip by strip: a strip's sums and counts stay in cache from the read
  // through the subtraction to the mean. Over whole-rect arrays these were
  // three passes over 12 bytes a pixel, most of a 2048^2 refinement's
  // template.
  constexpr int kStripRows = 16;
  scratch->sum.resize(kStripRows * cols);
  scratch->count.resize(kStripRows * cols);
  double* sum = scratch->sum.data();
  int* count = scratch->count.data();
  // Frame i's own contribution is taken out: the very arithmetic of the
  // canvas's ResampleAccumulate with sign -1. Beyond the canvas limit the sums are
  // zero and the counts go negative, which the mean maps to 0 exactly as an
  // uncovered pixel, so no clipping is needed (and the result is
  // bit-identical to subtracting a clipped copy).
  const Entry& excluded = frames_[static_cast<std::size_t>(i)];
  ResampleGeometry g;
  const float* resampled = nullptr;
  if (excluded.contributing) {
    g = MakeGeometry(frame_i, excluded.applied_shift, rect.row0, rect.col0, shape);
    if (!g.Empty()) resampled = HorizontalPass(frame_i, g);
  }
  const int out_cols = static_cast<int>(g.c1 - g.c0);
  const auto subtract = [](double& o, float v) { o += -1.0 * static_cast<double>(v); };
  for (int s0 = 0; s0 < shape.rows; s0 += kStripRows) {
    const int s1 = std::min(shape.rows, s0 + kStripRows);
    const AverageImage::Rect strip{rect.row0 + s0, rect.row0 + s1, rect.col0, rect.col1};
    TiledCanvas::Read(strip, sums_[0], &sums_[1], sum, count);
    if (resampled != nullptr) {
      for (long r = std::max<long>(s0, g.r0); r < std::min<long>(s1, g.r1); ++r) {
        const std::size_t row = static_cast<std::size_t>(r - s0) * cols;
        VerticalPassRow(resampled + static_cast<std::size_t>(r - g.r0) * out_cols, out_cols, g.ty,
                        out_cols, sum + row + g.c0, subtract);
        int* cnt = count + row + g.c0;
        for (int c = 0; c < out_cols; ++c) cnt[c] -= 1;
      }
    }
    MeanOfSums(sum, count, static_cast<std::size_t>(s1 - s0) * cols,
               mean->data() + static_cast<std::size_t>(s0) * cols);
  }
}

void ShiftedAverager::LeaveOneOutMean(int i, LeaveOneOutScratch* scratch, Frame* out) const {
  CheckIndex(i, "ShiftedAverager::LeaveOneOutMean");
  LeaveOneOutOver(i, *frame(i), AverageImage::Rect{0, shape_.rows, 0, shape_.cols}, scratch, out);
}

Shift ShiftedAverager::LeaveOneOutMeanInFrame(int i, LeaveOneOutScratch* scratch, Frame* out) const {
  CheckIndex(i, "ShiftedAverager::LeaveOneOutMeanInFrame");
  return LeaveOneOutMeanInFrame(i, *frame(i), scratch, out);
}

Shift ShiftedAverager::LeaveOneOutMeanInFrame(int i, const Frame& frame_i,
                                              LeaveOneOutScratch* scratch, Frame* out) const {
  CheckIndex(i, "ShiftedAverager::LeaveOneOutMeanInFrame");
  if (frame_i.shape() != shape_)
    throw std::invalid_argument("ShiftedAverager::LeaveOneOutMeanInFrame: frame shape differs");
  // Frame i's pixel q shows frame-0 pixel q - s_i: with s_i rounded to
  // whole pixels, output pixel q is the mean at frame-0 pixel q - whole, the
  // region's pixel q, so the mean is computed over that region alone.
  const Shift applied = frames_[static_cast<std::size_t>(i)].applied_shift;
  const Shift whole{std::round(ClampShift(applied.x)), std::round(ClampShift(applied.y))};
  const int top = static_cast<int>(-whole.y), left = static_cast<int>(-whole.x);
  const AverageImage::Rect rect{top, top + shape_.rows, left, left + shape_.cols};
  LeaveOneOutOver(i, frame_i, rect, scratch, out);
  return whole;
}

std::size_t ShiftedAverager::FrameBytes() const {
  std::size_t bytes = 0;
  for (const Entry& e : frames_)
    if (e.frame != nullptr) bytes += e.frame->pixels().size() * sizeof(float);
  return bytes;
}

std::size_t ShiftedAverager::CanvasBytes() const {
  return sums_[0].MemoryBytes() + sums_[1].MemoryBytes();
}

std::size_t ShiftedAverager::MemoryBytes() const { return FrameBytes() + CanvasBytes(); }

}  // namespace livealign
