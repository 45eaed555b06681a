#include "core/averager.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "core/coverage_region.hpp"

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

// The sampling geometry of ResampleAccumulate / ResampleInto: destination
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

// Adds sign * (src resampled) to the dst_shape-sized sum (and count, when not
// null); sampling as ResampleGeometry.
void ResampleAccumulate(FrameView src, Shift shift, long add_row, long add_col, double sign,
                        Shape dst_shape, double* sum, int* count) {
  const ResampleGeometry g = MakeGeometry(src, shift, add_row, add_col, dst_shape);
  if (g.Empty()) return;
  const int out_cols = static_cast<int>(g.c1 - g.c0);
  const std::size_t dst_cols = static_cast<std::size_t>(dst_shape.cols);
  const float* tmp = HorizontalPass(src, g);
  // Vertical pass, accumulated into the running sum.
  const int ny_taps = g.ty.k_max - g.ty.k_min + 1;
  const int icount = sign > 0 ? 1 : -1;
  for (long r = g.r0; r < g.r1; ++r) {
    const float* t0 = tmp + static_cast<std::size_t>(r - g.r0) * out_cols;
    double* out = sum + static_cast<std::size_t>(r) * dst_cols + g.c0;
    if (ny_taps == 1) {
      for (int c = 0; c < out_cols; ++c) out[c] += sign * t0[c];
    } else {
      const float* t1 = t0 + out_cols;
      const float* t2 = t1 + out_cols;
      const float* t3 = t2 + out_cols;
      const float w0 = g.ty.w[0], w1 = g.ty.w[1], w2 = g.ty.w[2], w3 = g.ty.w[3];
      for (int c = 0; c < out_cols; ++c)
        out[c] += sign * static_cast<double>(w0 * t0[c] + w1 * t1[c] + w2 * t2[c] + w3 * t3[c]);
    }
    if (count != nullptr) {
      int* cnt = count + static_cast<std::size_t>(r) * dst_cols + g.c0;
      for (int c = 0; c < out_cols; ++c) cnt[c] += icount;
    }
  }
}

// Writes src resampled into the dst_shape-sized out, 0 where the taps do not
// all fall inside src; sampling as ResampleGeometry. The same values as one
// ResampleAccumulate into zeroed sums keeping the covered pixels, without the
// double sums and counts.
void ResampleInto(FrameView src, Shift shift, long add_row, long add_col, Shape dst_shape,
                  float* out) {
  const ResampleGeometry g = MakeGeometry(src, shift, add_row, add_col, dst_shape);
  if (g.Empty()) {
    ZeroOutside(out, dst_shape, AverageImage::Rect{});
    return;
  }
  ZeroOutside(out, dst_shape,
              AverageImage::Rect{static_cast<int>(g.r0), static_cast<int>(g.r1),
                                 static_cast<int>(g.c0), static_cast<int>(g.c1)});
  const int out_cols = static_cast<int>(g.c1 - g.c0);
  const std::size_t dst_cols = static_cast<std::size_t>(dst_shape.cols);
  const float* tmp = HorizontalPass(src, g);
  const int ny_taps = g.ty.k_max - g.ty.k_min + 1;
  for (long r = g.r0; r < g.r1; ++r) {
    const float* t0 = tmp + static_cast<std::size_t>(r - g.r0) * out_cols;
    float* row = out + static_cast<std::size_t>(r) * dst_cols + g.c0;
    if (ny_taps == 1) {
      std::copy(t0, t0 + out_cols, row);
    } else {
      const float* t1 = t0 + out_cols;
      const float* t2 = t1 + out_cols;
      const float* t3 = t2 + out_cols;
      const float w0 = g.ty.w[0], w1 = g.ty.w[1], w2 = g.ty.w[2], w3 = g.ty.w[3];
      for (int c = 0; c < out_cols; ++c)
        row[c] = w0 * t0[c] + w1 * t1[c] + w2 * t2[c] + w3 * t3[c];
    }
  }
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
  if (frame.shape().Empty()) throw std::invalid_argument("ShiftedAverager::AddFrame: empty frame");
  if (!Finite(shift)) throw std::invalid_argument("ShiftedAverager::AddFrame: non-finite shift");
  if (frames_.empty()) {
    shape_ = frame.shape();
    const long limit = options_.max_extent_frames;
    canvas_limit_ = {static_cast<int>(std::max(-1000000000L, -limit * shape_.rows)),
                     static_cast<int>(std::min(1000000000L, (limit + 1) * shape_.rows)),
                     static_cast<int>(std::max(-1000000000L, -limit * shape_.cols)),
                     static_cast<int>(std::min(1000000000L, (limit + 1) * shape_.cols))};
    canvas_ = {};
    // The canvas always holds frame 0's window, so `full` is a crop of it.
    GrowCanvas({0, shape_.rows, 0, shape_.cols});
  } else if (frame.shape() != shape_) {
    throw std::invalid_argument("ShiftedAverager::AddFrame: frame shape differs from the first frame");
  }
  const int index = num_frames();
  Entry entry;
  entry.frame = std::make_shared<const Frame>(std::move(frame));
  entry.shift = entry.applied_shift = shift;
  entry.include = include;
  if (include) {
    GrowCanvas(Footprint(shift, shape_));
    AccumulateOnCanvas(*entry.frame, shift, +1, sum_[index % 2].data(), count_[index % 2].data());
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
  Frame read = store_->Get(i, channel_);
  if (read.shape() != shape_)
    throw std::runtime_error("ShiftedAverager: frame " + std::to_string(i) +
                             " read back from the store has a different shape");
  ++*num_store_reads_;
  return std::make_shared<const Frame>(std::move(read));
}

void ShiftedAverager::GrowCanvas(AverageImage::Rect footprint) {
  footprint = Intersect(footprint, canvas_limit_);
  if (footprint.Empty() || (!canvas_.Empty() && Contains(canvas_, footprint))) return;
  AverageImage::Rect grown = Union(canvas_, footprint);
  if (!canvas_.Empty()) {
    // A margin on each side that grew, so a steady drift regrows rarely.
    const int margin_rows = std::max(8, shape_.rows / 4), margin_cols = std::max(8, shape_.cols / 4);
    if (grown.row0 < canvas_.row0) grown.row0 -= margin_rows;
    if (grown.row1 > canvas_.row1) grown.row1 += margin_rows;
    if (grown.col0 < canvas_.col0) grown.col0 -= margin_cols;
    if (grown.col1 > canvas_.col1) grown.col1 += margin_cols;
    grown = Intersect(grown, canvas_limit_);
  }
  const std::size_t n = static_cast<std::size_t>(grown.rows()) * grown.cols();
  for (int p = 0; p < 2; ++p) {
    std::vector<double> sum(n, 0.0);
    std::vector<int> count(n, 0);
    for (int r = 0; r < canvas_.rows(); ++r) {
      const std::size_t from = static_cast<std::size_t>(r) * canvas_.cols();
      const std::size_t to = static_cast<std::size_t>(r + canvas_.row0 - grown.row0) * grown.cols() +
                             (canvas_.col0 - grown.col0);
      std::copy(sum_[p].begin() + from, sum_[p].begin() + from + canvas_.cols(), sum.begin() + to);
      std::copy(count_[p].begin() + from, count_[p].begin() + from + canvas_.cols(), count.begin() + to);
    }
    sum_[p] = std::move(sum);
    count_[p] = std::move(count);
  }
  canvas_ = grown;
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
  double* sum = sum_[i % 2].data();
  int* count = count_[i % 2].data();
  if (subtract) {
    AccumulateOnCanvas(*pixels, entry.applied_shift, -1, sum, count);
    ++num_resamples_;
    entry.contributing = false;
  }
  if (add) {
    GrowCanvas(Footprint(shift, shape_));
    sum = sum_[i % 2].data();
    count = count_[i % 2].data();
    AccumulateOnCanvas(*pixels, shift, +1, sum, count);
    ++num_resamples_;
    entry.applied_shift = shift;
    entry.contributing = true;
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

void ShiftedAverager::AccumulateOnCanvas(FrameView frame, Shift shift, double sign, double* sum,
                                         int* count) const {
  // Canvas pixel (r, c) is frame-0 pixel (r + row0, c + col0), which frame
  // i shows at that position + shift.
  ResampleAccumulate(frame, shift, canvas_.row0, canvas_.col0, sign,
                     Shape{canvas_.rows(), canvas_.cols()}, sum, count);
}

AverageImage ShiftedAverager::MakeImage(const double* sum_a, const int* count_a,
                                        const double* sum_b, const int* count_b,
                                        const std::vector<Shift>& shifts) const {
  AverageImage image;
  MakeImageInto(sum_a, count_a, sum_b, count_b, shifts, &image);
  return image;
}

namespace {

// Crops the canvas-sized `values` to `rect` (frame-0 coordinates, inside
// the canvas) into *out, reusing its buffer when the shape fits.
void CropCanvas(const std::vector<float>& values, const AverageImage::Rect& canvas,
                const AverageImage::Rect& rect, Frame* out) {
  const Shape shape{rect.rows(), rect.cols()};
  if (out->shape() != shape) *out = Frame(shape);
  for (int r = 0; r < shape.rows; ++r) {
    const std::size_t from = static_cast<std::size_t>(rect.row0 - canvas.row0 + r) * canvas.cols() +
                             (rect.col0 - canvas.col0);
    std::copy(values.begin() + from, values.begin() + from + shape.cols,
              out->data() + static_cast<std::size_t>(r) * shape.cols);
  }
}

}  // namespace

void ShiftedAverager::MakeImageInto(const double* sum_a, const int* count_a,
                                    const double* sum_b, const int* count_b,
                                    const std::vector<Shift>& shifts, AverageImage* out) const {
  AverageImage& image = *out;
  image.num_included = static_cast<int>(shifts.size());
  const std::size_t n = static_cast<std::size_t>(canvas_.rows()) * canvas_.cols();
  std::vector<float> mean(n), counts(n);
  // As MeanOfSums, over the sum of the two parities when both are given.
  if (sum_b != nullptr) {
    for (std::size_t k = 0; k < n; ++k) {
      const int c = count_a[k] + count_b[k];
      counts[k] = static_cast<float>(c);
      mean[k] = static_cast<float>((sum_a[k] + sum_b[k]) / static_cast<double>(std::max(c, 1)));
    }
  } else {
    for (std::size_t k = 0; k < n; ++k) {
      const int c = count_a[k];
      counts[k] = static_cast<float>(c);
      mean[k] = static_cast<float>(sum_a[k] / static_cast<double>(std::max(c, 1)));
    }
  }
  for (std::size_t k = 0; k < n; ++k) mean[k] = counts[k] > 0 ? mean[k] : 0.0f;
  // Frame-0 window (always inside the canvas).
  const AverageImage::Rect window{0, shape_.rows, 0, shape_.cols};
  CropCanvas(mean, canvas_, window, &image.full);
  CropCanvas(counts, canvas_, window, &image.counts);
  AverageImage::Rect valid = shifts.empty() ? AverageImage::Rect{} : window;
  AverageImage::Rect extent;
  for (const Shift& s : shifts) {
    const AverageImage::Rect footprint = Footprint(s, shape_);
    valid = Intersect(valid, footprint);
    extent = Union(extent, Intersect(footprint, canvas_));
  }
  image.valid = valid;
  CropCanvas(mean, canvas_, valid, &image.common);
  // Mosaic and its best-covered region.
  image.mosaic_extent = extent;
  CropCanvas(mean, canvas_, extent, &image.mosaic);
  CropCanvas(counts, canvas_, extent, &image.mosaic_counts);
  AverageImage::Rect best;
  if (!extent.Empty()) {
    const int rows = extent.rows(), cols = extent.cols();
    std::vector<int> a(static_cast<std::size_t>(rows) * cols), b;
    if (count_b != nullptr) b.resize(a.size());
    for (int r = 0; r < rows; ++r) {
      const std::size_t from = static_cast<std::size_t>(extent.row0 - canvas_.row0 + r) * canvas_.cols() +
                               (extent.col0 - canvas_.col0);
      std::copy(count_a + from, count_a + from + cols, a.begin() + static_cast<std::size_t>(r) * cols);
      if (count_b != nullptr)
        std::copy(count_b + from, count_b + from + cols, b.begin() + static_cast<std::size_t>(r) * cols);
    }
    best = BestCoveredRect(a.data(), count_b != nullptr ? b.data() : nullptr, rows, cols,
                           options_.best_coverage_fraction);
    if (!best.Empty()) {
      best.row0 += extent.row0;
      best.row1 += extent.row0;
      best.col0 += extent.col0;
      best.col1 += extent.col0;
    }
  }
  image.best_covered = best;
  CropCanvas(mean, canvas_, best, &image.best);
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
  std::vector<Shift> shifts;
  for (const Entry& e : frames_)
    if (e.contributing) shifts.push_back(e.applied_shift);
  MakeImageInto(sum_[0].data(), count_[0].data(), sum_[1].data(), count_[1].data(), shifts, out);
}

AverageImage ShiftedAverager::HalfSetAverage(int parity) const {
  if (parity != 0 && parity != 1)
    throw std::invalid_argument("ShiftedAverager::HalfSetAverage: parity must be 0 or 1");
  if (frames_.empty()) return AverageImage();
  std::vector<Shift> shifts;
  for (int i = parity; i < num_frames(); i += 2)
    if (frames_[static_cast<std::size_t>(i)].contributing)
      shifts.push_back(frames_[static_cast<std::size_t>(i)].applied_shift);
  return MakeImage(sum_[parity].data(), count_[parity].data(), nullptr, nullptr, shifts);
}

AverageImage ShiftedAverager::AverageOf(const std::vector<bool>& subset) const {
  if (subset.size() != frames_.size())
    throw std::invalid_argument("ShiftedAverager::AverageOf: subset size differs from num_frames()");
  if (frames_.empty()) return AverageImage();
  const std::size_t n = static_cast<std::size_t>(canvas_.rows()) * canvas_.cols();
  std::vector<double> sum(n, 0.0);
  std::vector<int> count(n, 0);
  std::vector<Shift> shifts;
  for (std::size_t i = 0; i < frames_.size(); ++i) {
    if (!subset[i] || !frames_[i].include) continue;
    AccumulateOnCanvas(*frame(static_cast<int>(i)), frames_[i].shift, +1, sum.data(), count.data());
    shifts.push_back(frames_[i].shift);
  }
  return MakeImage(sum.data(), count.data(), nullptr, nullptr, shifts);
}

AverageImage ShiftedAverager::AverageExcluding(int i) const {
  CheckIndex(i, "ShiftedAverager::AverageExcluding");
  const std::size_t n = static_cast<std::size_t>(canvas_.rows()) * canvas_.cols();
  std::vector<double> sum(n);
  std::vector<int> count(n);
  for (std::size_t k = 0; k < n; ++k) {
    sum[k] = sum_[0][k] + sum_[1][k];
    count[k] = count_[0][k] + count_[1][k];
  }
  const Entry& excluded = frames_[static_cast<std::size_t>(i)];
  if (excluded.contributing)
    AccumulateOnCanvas(*frame(i), excluded.applied_shift, -1, sum.data(), count.data());
  std::vector<Shift> shifts;
  for (int j = 0; j < num_frames(); ++j)
    if (j != i && frames_[static_cast<std::size_t>(j)].contributing)
      shifts.push_back(frames_[static_cast<std::size_t>(j)].applied_shift);
  return MakeImage(sum.data(), count.data(), nullptr, nullptr, shifts);
}

void ShiftedAverager::LeaveOneOutOver(int i, FrameView frame_i, const AverageImage::Rect& rect,
                                      LeaveOneOutScratch* scratch, Frame* mean) const {
  const Shape shape{rect.rows(), rect.cols()};
  const std::size_t n = static_cast<std::size_t>(shape.Pixels());
  scratch->sum.resize(n);
  scratch->count.resize(n);
  double* sum = scratch->sum.data();
  int* count = scratch->count.data();
  const AverageImage::Rect inside = Intersect(rect, canvas_);
  // Only what the copy below does not overwrite is zeroed.
  const AverageImage::Rect kept{inside.row0 - rect.row0, inside.row1 - rect.row0,
                                inside.col0 - rect.col0, inside.col1 - rect.col0};
  ZeroOutside(sum, shape, kept);
  ZeroOutside(count, shape, kept);
  const double* sum0 = sum_[0].data();
  const double* sum1 = sum_[1].data();
  const int* count0 = count_[0].data();
  const int* count1 = count_[1].data();
  const int inside_cols = inside.cols();
  for (int r = inside.row0; r < inside.row1; ++r) {
    const std::size_t from = static_cast<std::size_t>(r - canvas_.row0) * canvas_.cols() +
                             (inside.col0 - canvas_.col0);
    const std::size_t to = static_cast<std::size_t>(r - rect.row0) * shape.cols + (inside.col0 - rect.col0);
    for (int c = 0; c < inside_cols; ++c) sum[to + c] = sum0[from + c] + sum1[from + c];
    for (int c = 0; c < inside_cols; ++c) count[to + c] = count0[from + c] + count1[from + c];
  }
  const Entry& excluded = frames_[static_cast<std::size_t>(i)];
  if (excluded.contributing) {
    // Take out frame i's own contribution. Outside the canvas the sums are
    // zero and the counts go negative, which the mean below maps to 0 exactly
    // as an uncovered pixel, so no clipping to the canvas is needed (and the
    // result is bit-identical to subtracting a clipped copy).
    ResampleAccumulate(frame_i, excluded.applied_shift, rect.row0, rect.col0, -1, shape, sum, count);
  }
  if (mean->shape() != shape) *mean = Frame(shape);
  MeanOfSums(sum, count, n, mean->data());
}

void ShiftedAverager::LeaveOneOutMean(int i, LeaveOneOutScratch* scratch, Frame* out) const {
  CheckIndex(i, "ShiftedAverager::LeaveOneOutMean");
  LeaveOneOutOver(i, *frame(i), AverageImage::Rect{0, shape_.rows, 0, shape_.cols}, scratch, out);
}

void ShiftedAverager::LeaveOneOutMeanInFrame(int i, LeaveOneOutScratch* scratch,
                                             Frame* mean_scratch, Frame* out) const {
  CheckIndex(i, "ShiftedAverager::LeaveOneOutMeanInFrame");
  LeaveOneOutMeanInFrame(i, *frame(i), scratch, mean_scratch, out);
}

void ShiftedAverager::LeaveOneOutMeanInFrame(int i, const Frame& frame_i,
                                             LeaveOneOutScratch* scratch, Frame* mean_scratch,
                                             Frame* out) const {
  CheckIndex(i, "ShiftedAverager::LeaveOneOutMeanInFrame");
  if (frame_i.shape() != shape_)
    throw std::invalid_argument("ShiftedAverager::LeaveOneOutMeanInFrame: frame shape differs");
  // Frame i's pixel q shows frame-0 pixel q - s_i: the mean is needed over
  // frame i's footprint plus the interpolation taps (two pixels each side).
  const Shift applied = frames_[static_cast<std::size_t>(i)].applied_shift;
  const long top = static_cast<long>(std::floor(-ClampShift(applied.y))) - 2;
  const long left = static_cast<long>(std::floor(-ClampShift(applied.x))) - 2;
  const AverageImage::Rect rect{static_cast<int>(top), static_cast<int>(top + shape_.rows + 5),
                                static_cast<int>(left), static_cast<int>(left + shape_.cols + 5)};
  LeaveOneOutOver(i, frame_i, rect, scratch, mean_scratch);
  // Output pixel q samples the mean at q - s_i - (rect origin).
  if (out->shape() != shape_) *out = Frame(shape_);
  ResampleInto(*mean_scratch, applied.Inverse(), -rect.row0, -rect.col0, shape_, out->data());
}

std::size_t ShiftedAverager::FrameBytes() const {
  std::size_t bytes = 0;
  for (const Entry& e : frames_)
    if (e.frame != nullptr) bytes += e.frame->pixels().size() * sizeof(float);
  return bytes;
}

std::size_t ShiftedAverager::MemoryBytes() const {
  std::size_t bytes = FrameBytes();
  for (int p = 0; p < 2; ++p)
    bytes += sum_[p].size() * sizeof(double) + count_[p].size() * sizeof(int);
  return bytes;
}

}  // namespace livealign
