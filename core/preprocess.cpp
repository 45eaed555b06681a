#include "core/preprocess.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <tuple>

namespace livealign {

std::optional<WindowType> WindowTypeFromName(std::string_view name) {
  if (name == "none") return WindowType::kNone;
  if (name == "hann") return WindowType::kHann;
  if (name == "tukey") return WindowType::kTukey;
  return std::nullopt;
}

const char* WindowTypeName(WindowType type) {
  switch (type) {
    case WindowType::kNone: return "none";
    case WindowType::kHann: return "hann";
    case WindowType::kTukey: return "tukey";
  }
  return "unknown";
}

double WindowValue(WindowType type, double tukey_alpha, double position_px, int n) {
  const double u = (position_px + 0.5) / n;
  if (!(u >= 0.0 && u <= 1.0)) return 0.0;
  if (type == WindowType::kNone) return 1.0;
  const double alpha = type == WindowType::kHann ? 1.0 : tukey_alpha;
  const double edge = std::min(u, 1.0 - u);  // distance to the nearer end
  if (edge >= alpha / 2) return 1.0;
  return 0.5 * (1.0 - std::cos(2.0 * M_PI * edge / alpha));
}

std::vector<float> WindowTable(WindowType type, int n, double tukey_alpha) {
  if (n < 1) throw std::invalid_argument("WindowTable: length must be >= 1");
  if (type == WindowType::kTukey && !(tukey_alpha >= 0.0 && tukey_alpha <= 1.0)) {
    throw std::invalid_argument("WindowTable: tukey alpha must be in [0, 1], got " +
                                std::to_string(tukey_alpha));
  }
  std::vector<float> table(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    table[static_cast<std::size_t>(i)] = static_cast<float>(WindowValue(type, tukey_alpha, i, n));
  }
  return table;
}

void ApplySeparableWindow(FrameView frame, const float* row_window, const float* col_window,
                          float* out) {
  const int rows = frame.rows(), cols = frame.cols();
  // Weighted mean, accumulated in double: sums of ~1e6 floats lose precision.
  double col_weight_sum = 0.0;
  for (int c = 0; c < cols; ++c) col_weight_sum += col_window[c];
  double weighted_sum = 0.0, weight_sum = 0.0;
  constexpr int kLanes = 8;
  const int vector_cols = cols - cols % kLanes;
  for (int r = 0; r < rows; ++r) {
    const float* row = frame.row(r);
    // kLanes independent partial sums: one serial chain of double adds
    // cannot be vectorised (the compiler must keep its order), lanes can.
    double lanes[kLanes] = {};
    for (int c = 0; c < vector_cols; c += kLanes) {
      for (int l = 0; l < kLanes; ++l) lanes[l] += double{row[c + l]} * col_window[c + l];
    }
    double row_sum = 0.0;
    for (int l = 0; l < kLanes; ++l) row_sum += lanes[l];
    for (int c = vector_cols; c < cols; ++c) row_sum += double{row[c]} * col_window[c];
    weighted_sum += row_sum * row_window[r];
    weight_sum += col_weight_sum * row_window[r];
  }
  const float mean = weight_sum > 0 ? static_cast<float>(weighted_sum / weight_sum) : 0.0f;
  for (int r = 0; r < rows; ++r) {
    const float* row = frame.row(r);
    float* out_row = out + static_cast<std::size_t>(r) * cols;
    const float wr = row_window[r];
    for (int c = 0; c < cols; ++c) out_row[c] = (row[c] - mean) * (wr * col_window[c]);
  }
}

namespace {

// d/ds log R at integer s = 0 .. n-1, where R(s) = sum_k w[k] w[(k + s) mod n]
// is CYCLIC like the FFT correlation it models (so no window gives R = const
// and no correction). R is even. Central differences; 0 where R is ~0.
std::vector<double> OverlapLogSlopes(const std::vector<float>& w) {
  const int n = static_cast<int>(w.size());
  std::vector<double> overlap(static_cast<std::size_t>(n) + 1, 0.0);
  // The cyclic index (k + s) mod n as two runs, k < n - s and k >= n - s,
  // summed in the same order: an integer division per term made this O(n^2)
  // loop ~1 ms per axis at 512, on the critical path of every engine start.
  for (int s = 0; s < n; ++s) {
    double sum = 0;
    for (int k = 0; k < n - s; ++k) sum += double{w[k]} * w[k + s];
    for (int k = n - s; k < n; ++k) sum += double{w[k]} * w[k + s - n];
    overlap[static_cast<std::size_t>(s)] = sum;
  }
  const double floor = 1e-9 * overlap[0];
  auto log_r = [&](int s) { return std::log(std::max(overlap[static_cast<std::size_t>(std::abs(s))], floor)); };
  std::vector<double> slopes(static_cast<std::size_t>(n), 0.0);
  for (int s = 1; s + 1 < n; ++s) {
    if (overlap[static_cast<std::size_t>(s) + 1] <= floor) break;
    slopes[static_cast<std::size_t>(s)] = 0.5 * (log_r(s + 1) - log_r(s - 1));
  }
  return slopes;
}

// OverlapLogSlopes of WindowTable(type, n, tukey_alpha), computed once per
// process and window: every engine builds three preprocessors of the same
// window (the correlator's and one per precision-stage worker), each for
// rows and columns, and at 512 one O(n^2) sum is ~0.4 ms of the engine's
// start. A few entries only (one per frame shape in use); the cache is
// emptied rather than grown past them.
std::vector<double> CachedOverlapLogSlopes(WindowType type, double tukey_alpha,
                                           const std::vector<float>& window) {
  using Key = std::tuple<WindowType, int, double>;
  constexpr std::size_t kMaxEntries = 16;
  static std::mutex mutex;
  static std::map<Key, std::vector<double>> cache;
  const Key key{type, static_cast<int>(window.size()), type == WindowType::kTukey ? tukey_alpha : 0.0};
  {
    std::lock_guard<std::mutex> lock(mutex);
    const auto found = cache.find(key);
    if (found != cache.end()) return found->second;
  }
  std::vector<double> slopes = OverlapLogSlopes(window);
  std::lock_guard<std::mutex> lock(mutex);
  if (cache.size() >= kMaxEntries) cache.clear();
  cache.emplace(key, slopes);
  return slopes;
}

double InterpolateSlope(const std::vector<double>& slopes, double s) {
  const double t = std::abs(s);
  const int i = static_cast<int>(std::floor(t));
  if (i + 1 >= static_cast<int>(slopes.size())) return 0.0;
  const double f = t - i;
  const double slope = (1 - f) * slopes[static_cast<std::size_t>(i)] + f * slopes[static_cast<std::size_t>(i) + 1];
  return s < 0 ? -slope : slope;
}

}  // namespace

Shift Preprocessor::OverlapLogGradient(Shift s) const {
  return {InterpolateSlope(col_log_slope_, s.x), InterpolateSlope(row_log_slope_, s.y)};
}

Preprocessor::Preprocessor(WindowType type, double tukey_alpha, Shape shape)
    : type_(type), shape_(shape) {
  if (shape.Empty()) throw std::invalid_argument("Preprocessor: empty shape");
  row_window_ = WindowTable(type, shape.rows, tukey_alpha);
  col_window_ = WindowTable(type, shape.cols, tukey_alpha);
  row_log_slope_ = CachedOverlapLogSlopes(type, tukey_alpha, row_window_);
  col_log_slope_ = CachedOverlapLogSlopes(type, tukey_alpha, col_window_);
}

void Preprocessor::Apply(FrameView frame, float* out) const {
  if (frame.shape() != shape_) {
    throw std::invalid_argument("Preprocessor::Apply: frame shape does not match");
  }
  if (frame.data() == nullptr || out == nullptr) {
    throw std::invalid_argument("Preprocessor::Apply: null buffer");
  }
  ApplySeparableWindow(frame, row_window_.data(), col_window_.data(), out);
}

}  // namespace livealign
