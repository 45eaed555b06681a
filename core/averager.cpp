#include "core/averager.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

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

// Output indices [lo, hi) whose taps all fall inside [0, length).
void CoveredRange(const Taps& taps, int length, long* lo, long* hi) {
  *lo = std::max<long>(0, -taps.n - taps.k_min);
  *hi = std::min<long>(length, length - taps.n - taps.k_max);
  if (*hi < *lo) *hi = *lo;
}

// Shifts far outside any frame are clamped before conversion to integers; the
// coverage is empty either way.
double ClampShift(double s) { return std::max(-1e9, std::min(1e9, s)); }

AverageImage::Rect CoverageRect(Shift shift, Shape shape) {
  const Taps tx = MakeTaps(ClampShift(shift.x)), ty = MakeTaps(ClampShift(shift.y));
  long c0, c1, r0, r1;
  CoveredRange(tx, shape.cols, &c0, &c1);
  CoveredRange(ty, shape.rows, &r0, &r1);
  return {static_cast<int>(r0), static_cast<int>(r1), static_cast<int>(c0), static_cast<int>(c1)};
}

bool Finite(Shift s) { return std::isfinite(s.x) && std::isfinite(s.y); }

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

bool ShiftedAverager::Options::Check(std::string* error) const {
  if (!(reresample_tolerance_px >= 0) || !std::isfinite(reresample_tolerance_px)) {
    if (error != nullptr) *error = "reresample_tolerance_px must be finite and >= 0";
    return false;
  }
  if (error != nullptr) error->clear();
  return true;
}

ShiftedAverager::ShiftedAverager() : ShiftedAverager(Options()) {}

ShiftedAverager::ShiftedAverager(Options options) : options_(options) {
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
    for (int p = 0; p < 2; ++p) {
      sum_[p].assign(static_cast<std::size_t>(shape_.Pixels()), 0.0);
      count_[p].assign(static_cast<std::size_t>(shape_.Pixels()), 0);
    }
  } else if (frame.shape() != shape_) {
    throw std::invalid_argument("ShiftedAverager::AddFrame: frame shape differs from the first frame");
  }
  const int index = num_frames();
  Entry entry;
  entry.frame = std::move(frame);
  entry.shift = entry.applied_shift = shift;
  entry.include = include;
  if (include) {
    Accumulate(entry.frame, shift, +1, sum_[index % 2].data(), count_[index % 2].data());
    ++num_resamples_;
    entry.contributing = true;
  }
  frames_.push_back(std::move(entry));
  return index;
}

void ShiftedAverager::SetShift(int i, Shift shift, bool include) {
  CheckIndex(i, "ShiftedAverager::SetShift");
  if (!Finite(shift)) throw std::invalid_argument("ShiftedAverager::SetShift: non-finite shift");
  Entry& entry = frames_[static_cast<std::size_t>(i)];
  entry.shift = shift;
  entry.include = include;
  const bool moved = (shift - entry.applied_shift).Norm() > options_.reresample_tolerance_px;
  double* sum = sum_[i % 2].data();
  int* count = count_[i % 2].data();
  if (entry.contributing && (!include || moved)) {
    Accumulate(entry.frame, entry.applied_shift, -1, sum, count);
    ++num_resamples_;
    entry.contributing = false;
  }
  if (include && !entry.contributing) {
    Accumulate(entry.frame, shift, +1, sum, count);
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

void ShiftedAverager::Accumulate(const Frame& frame, Shift shift, double sign, double* sum,
                                 int* count) const {
  const int rows = shape_.rows, cols = shape_.cols;
  const Taps tx = MakeTaps(ClampShift(shift.x)), ty = MakeTaps(ClampShift(shift.y));
  long c0, c1, r0, r1;
  CoveredRange(tx, cols, &c0, &c1);
  CoveredRange(ty, rows, &r0, &r1);
  if (c0 >= c1 || r0 >= r1) return;
  const int out_cols = static_cast<int>(c1 - c0);
  // Horizontal pass into tmp over the source rows the vertical taps need.
  const long src_row0 = r0 + ty.n + ty.k_min;
  const long src_rows = (r1 - 1 + ty.n + ty.k_max) - src_row0 + 1;
  std::vector<float> tmp(static_cast<std::size_t>(src_rows) * out_cols);
  const int nx_taps = tx.k_max - tx.k_min + 1;
  for (long sr = 0; sr < src_rows; ++sr) {
    const float* src = frame.data() + static_cast<std::size_t>(src_row0 + sr) * cols +
                       (c0 + tx.n + tx.k_min);
    float* dst = tmp.data() + static_cast<std::size_t>(sr) * out_cols;
    if (nx_taps == 1) {
      std::copy(src, src + out_cols, dst);
    } else {
      const float w0 = tx.w[0], w1 = tx.w[1], w2 = tx.w[2], w3 = tx.w[3];
      for (int c = 0; c < out_cols; ++c)
        dst[c] = w0 * src[c] + w1 * src[c + 1] + w2 * src[c + 2] + w3 * src[c + 3];
    }
  }
  // Vertical pass, accumulated into the running sum.
  const int ny_taps = ty.k_max - ty.k_min + 1;
  const int icount = sign > 0 ? 1 : -1;
  for (long r = r0; r < r1; ++r) {
    const float* t0 = tmp.data() + static_cast<std::size_t>(r - r0) * out_cols;
    double* out = sum + static_cast<std::size_t>(r) * cols + c0;
    int* cnt = count + static_cast<std::size_t>(r) * cols + c0;
    if (ny_taps == 1) {
      for (int c = 0; c < out_cols; ++c) out[c] += sign * t0[c];
    } else {
      const float* t1 = t0 + out_cols;
      const float* t2 = t1 + out_cols;
      const float* t3 = t2 + out_cols;
      const float w0 = ty.w[0], w1 = ty.w[1], w2 = ty.w[2], w3 = ty.w[3];
      for (int c = 0; c < out_cols; ++c)
        out[c] += sign * static_cast<double>(w0 * t0[c] + w1 * t1[c] + w2 * t2[c] + w3 * t3[c]);
    }
    for (int c = 0; c < out_cols; ++c) cnt[c] += icount;
  }
}

AverageImage ShiftedAverager::MakeImage(const double* sum_a, const int* count_a,
                                        const double* sum_b, const int* count_b,
                                        const std::vector<Shift>& shifts) const {
  AverageImage image;
  MakeImageInto(sum_a, count_a, sum_b, count_b, shifts, &image);
  return image;
}

void ShiftedAverager::MakeImageInto(const double* sum_a, const int* count_a,
                                    const double* sum_b, const int* count_b,
                                    const std::vector<Shift>& shifts, AverageImage* out) const {
  AverageImage& image = *out;
  image.num_included = static_cast<int>(shifts.size());
  if (image.full.shape() != shape_) image.full = Frame(shape_);
  if (image.counts.shape() != shape_) image.counts = Frame(shape_);
  const std::size_t n = static_cast<std::size_t>(shape_.Pixels());
  float* full = image.full.data();
  float* counts = image.counts.data();
  for (std::size_t k = 0; k < n; ++k) {
    const double s = sum_a[k] + (sum_b != nullptr ? sum_b[k] : 0.0);
    const int c = count_a[k] + (count_b != nullptr ? count_b[k] : 0);
    counts[k] = static_cast<float>(c);
    full[k] = c > 0 ? static_cast<float>(s / c) : 0.0f;
  }
  AverageImage::Rect valid{0, shape_.rows, 0, shape_.cols};
  if (shifts.empty()) valid = {};
  for (const Shift& s : shifts) {
    const AverageImage::Rect r = CoverageRect(s, shape_);
    valid.row0 = std::max(valid.row0, r.row0);
    valid.row1 = std::min(valid.row1, r.row1);
    valid.col0 = std::max(valid.col0, r.col0);
    valid.col1 = std::min(valid.col1, r.col1);
  }
  if (valid.Empty()) valid = {};
  image.valid = valid;
  if (image.common.shape() != Shape{valid.rows(), valid.cols()}) {
    image.common = CropFrame(image.full, valid);
  } else {
    for (int r = 0; r < valid.rows(); ++r)
      std::copy(image.full.data() + static_cast<std::size_t>(valid.row0 + r) * shape_.cols + valid.col0,
                image.full.data() + static_cast<std::size_t>(valid.row0 + r) * shape_.cols + valid.col1,
                image.common.data() + static_cast<std::size_t>(r) * valid.cols());
  }
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
  std::vector<double> sum(static_cast<std::size_t>(shape_.Pixels()), 0.0);
  std::vector<int> count(sum.size(), 0);
  std::vector<Shift> shifts;
  for (std::size_t i = 0; i < frames_.size(); ++i) {
    if (!subset[i] || !frames_[i].include) continue;
    Accumulate(frames_[i].frame, frames_[i].shift, +1, sum.data(), count.data());
    shifts.push_back(frames_[i].shift);
  }
  return MakeImage(sum.data(), count.data(), nullptr, nullptr, shifts);
}

AverageImage ShiftedAverager::AverageExcluding(int i) const {
  CheckIndex(i, "ShiftedAverager::AverageExcluding");
  const std::size_t n = static_cast<std::size_t>(shape_.Pixels());
  std::vector<double> sum(n);
  std::vector<int> count(n);
  for (std::size_t k = 0; k < n; ++k) {
    sum[k] = sum_[0][k] + sum_[1][k];
    count[k] = count_[0][k] + count_[1][k];
  }
  const Entry& excluded = frames_[static_cast<std::size_t>(i)];
  if (excluded.contributing)
    Accumulate(excluded.frame, excluded.applied_shift, -1, sum.data(), count.data());
  std::vector<Shift> shifts;
  for (int j = 0; j < num_frames(); ++j)
    if (j != i && frames_[static_cast<std::size_t>(j)].contributing)
      shifts.push_back(frames_[static_cast<std::size_t>(j)].applied_shift);
  return MakeImage(sum.data(), count.data(), nullptr, nullptr, shifts);
}

void ShiftedAverager::LeaveOneOutMean(int i, LeaveOneOutScratch* scratch, Frame* out) const {
  CheckIndex(i, "ShiftedAverager::LeaveOneOutMean");
  const std::size_t n = static_cast<std::size_t>(shape_.Pixels());
  scratch->sum.resize(n);
  scratch->count.resize(n);
  double* sum = scratch->sum.data();
  int* count = scratch->count.data();
  for (std::size_t k = 0; k < n; ++k) {
    sum[k] = sum_[0][k] + sum_[1][k];
    count[k] = count_[0][k] + count_[1][k];
  }
  const Entry& excluded = frames_[static_cast<std::size_t>(i)];
  if (excluded.contributing) Accumulate(excluded.frame, excluded.applied_shift, -1, sum, count);
  if (out->shape() != shape_) *out = Frame(shape_);
  float* mean = out->data();
  for (std::size_t k = 0; k < n; ++k) {
    mean[k] = count[k] > 0 ? static_cast<float>(sum[k] / count[k]) : 0.0f;
  }
}

void ShiftedAverager::LeaveOneOutMeanInFrame(int i, LeaveOneOutScratch* scratch,
                                             Frame* mean_scratch, Frame* out) const {
  LeaveOneOutMean(i, scratch, mean_scratch);
  const std::size_t n = static_cast<std::size_t>(shape_.Pixels());
  std::fill(scratch->sum.begin(), scratch->sum.end(), 0.0);
  std::fill(scratch->count.begin(), scratch->count.end(), 0);
  // Accumulate samples its input at p + shift; sampling the mean at
  // q - s_i puts frame-0 content where frame i shows it.
  const Shift applied = frames_[static_cast<std::size_t>(i)].applied_shift;
  Accumulate(*mean_scratch, applied.Inverse(), +1, scratch->sum.data(), scratch->count.data());
  if (out->shape() != shape_) *out = Frame(shape_);
  float* values = out->data();
  for (std::size_t k = 0; k < n; ++k) {
    values[k] = scratch->count[k] > 0 ? static_cast<float>(scratch->sum[k]) : 0.0f;
  }
}

std::size_t ShiftedAverager::MemoryBytes() const {
  std::size_t bytes = 0;
  for (const Entry& e : frames_) bytes += e.frame.pixels().size() * sizeof(float);
  for (int p = 0; p < 2; ++p)
    bytes += sum_[p].size() * sizeof(double) + count_[p].size() * sizeof(int);
  return bytes;
}

}  // namespace livealign
