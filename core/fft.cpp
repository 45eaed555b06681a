#include "core/fft.hpp"

#include <fftw3.h>

#include <algorithm>

#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <stdexcept>
#include <tuple>

namespace livealign {
namespace {
// FFTW's planner is not thread-safe; only fftwf_execute* is.
std::mutex& PlannerMutex() {
  static std::mutex mutex;
  return mutex;
}

// Guarded by PlannerMutex().
FftPlanning& Planning() {
  static FftPlanning planning = FftPlanning::kEstimate;
  return planning;
}

// Measured plans only for transforms at least this long along every
// dimension they transform; shorter ones stay estimated. Measuring the short
// ones gained nothing: the measured plans of a 64^2 and a 128^2 c2r are the
// estimated ones (fftwf_print_plan), and a 256^2 series' updates were no
// faster with its 256^2 transforms measured. From about 500 on they pay:
// register 40 x 512^2 took 0.180 s with its 504^2 and 500 x 504 region
// transforms measured too, against 0.186 s with only the 512^2 ones (medians
// of 50 alternated runs; both with buffering allowed, see below).
constexpr int kMinMeasuredLength = 384;

// Measured plans exclude FFTW's buffered algorithms (FFTW_NO_BUFFERING),
// which allocate their buffers on every execution: with them the RSS of a
// 1024^2 series grew by about 0.75 MiB a frame more than with estimated
// plans (370 against 295 MiB at k = 200; 292 MiB without buffering),
// presumably the frames' long-lived band caches taking the holes the
// buffers left. A problem only buffering solves is estimated. The cost: a
// 2048^2 r2c takes 28.8 ms instead of 19.0 ms buffered (31.5 ms estimated).
constexpr unsigned kMeasured = FFTW_MEASURE | FFTW_NO_BUFFERING;

// The arrays a plan is made on, and their sizes.
struct PlanArrays {
  float* real;
  fftwf_complex* spectrum;
  std::size_t n_real, n_complex;
};

// Scratch arrays for a measured plan, freed with the object.
struct ScratchArrays {
  ScratchArrays(std::size_t n_real, std::size_t n_complex)
      : real(fftwf_alloc_real(n_real)), spectrum(fftwf_alloc_complex(n_complex)) {
    if (real == nullptr || spectrum == nullptr) {
      fftwf_free(real);
      fftwf_free(spectrum);
      throw std::bad_alloc();
    }
  }
  ~ScratchArrays() {
    fftwf_free(real);
    fftwf_free(spectrum);
  }
  ScratchArrays(const ScratchArrays&) = delete;
  ScratchArrays& operator=(const ScratchArrays&) = delete;
  float* real;
  fftwf_complex* spectrum;
};

// make(flags, real, spectrum) plans a problem whose shortest transformed
// dimension is `length`, with the current planning's flags, on the arrays it
// is given: the instance's (`arrays`), or for a measured plan scratch arrays
// of the same sizes (fftwf_malloc'd, so aligned as every RealFft2d's),
// because measuring overwrites its arrays and PlanForwardColumns may be
// called on an instance whose input is already written. Estimated plans and
// plans from wisdom leave the instance's arrays untouched. Requires
// PlannerMutex() held.
template <typename Make>
fftwf_plan PlanWithPlanning(int length, const PlanArrays& arrays, Make make) {
  const auto estimated = [&] { return make(FFTW_ESTIMATE, arrays.real, arrays.spectrum); };
  if (length < kMinMeasuredLength) return estimated();
  switch (Planning()) {
    case FftPlanning::kEstimate:
      return estimated();
    case FftPlanning::kWisdom:
      if (const fftwf_plan plan = make(kMeasured | FFTW_WISDOM_ONLY, arrays.real, arrays.spectrum)) {
        return plan;
      }
      return estimated();  // a problem the wisdom does not hold
    case FftPlanning::kMeasure: {
      const ScratchArrays scratch(arrays.n_real, arrays.n_complex);
      if (const fftwf_plan plan = make(kMeasured, scratch.real, scratch.spectrum)) return plan;
      return estimated();  // a problem only buffering solves
    }
  }
  return nullptr;
}

// Plans are made once per problem and kept for the process. Planning, even
// with FFTW_ESTIMATE, was 7.5 % of the instructions of `register` on a
// 40 x 512^2 stack: every RealFft2d planned its own pair, and the lattice
// estimate, the FRC, the information transfer and each worker's template
// registration make one each. A plan runs on any arrays with the layout and
// alignment it was made for through FFTW's new-array execute functions
// (thread-safe), and every RealFft2d's buffers are fftwf_malloc'd, so one
// plan serves every instance of a shape.
enum class PlanKind { kForward, kInverse, kRowsForward, kColumnsForward };
using PlanKey = std::tuple<PlanKind, int, int, int>;  // kind, rows, cols, columns

// Requires PlannerMutex() held.
template <typename Make>
fftwf_plan CachedPlan(const PlanKey& key, Make make) {
  static std::map<PlanKey, fftwf_plan>* plans = new std::map<PlanKey, fftwf_plan>();  // never freed
  auto it = plans->find(key);
  if (it != plans->end()) return it->second;
  const fftwf_plan plan = make();
  if (!plan) throw std::runtime_error("RealFft2d: FFTW planning failed");
  plans->emplace(key, plan);
  return plan;
}
}  // namespace

bool ImportFftWisdom(const std::string& wisdom) {
  std::lock_guard<std::mutex> lock(PlannerMutex());
  if (fftwf_import_wisdom_from_string(wisdom.c_str()) == 0) return false;
  Planning() = FftPlanning::kWisdom;
  return true;
}

void MeasureFftPlans() {
  std::lock_guard<std::mutex> lock(PlannerMutex());
  Planning() = FftPlanning::kMeasure;
}

std::string ExportFftWisdom() {
  std::lock_guard<std::mutex> lock(PlannerMutex());
  char* text = fftwf_export_wisdom_to_string();
  if (text == nullptr) throw std::bad_alloc();
  std::string wisdom(text);
  std::free(text);  // FFTW allocates the string with malloc
  return wisdom;
}

FftPlanning CurrentFftPlanning() {
  std::lock_guard<std::mutex> lock(PlannerMutex());
  return Planning();
}

const char* FftPlanningName(FftPlanning planning) {
  switch (planning) {
    case FftPlanning::kEstimate: return "estimate";
    case FftPlanning::kWisdom: return "wisdom";
    case FftPlanning::kMeasure: return "measure";
  }
  return "unknown";
}

int FftFriendlySizeAtMost(int n) {
  if (n < 1) throw std::invalid_argument("FftFriendlySizeAtMost: n must be >= 1");
  for (int m = n;; --m) {
    int rest = m;
    for (const int p : {2, 3, 5, 7}) {
      while (rest % p == 0) rest /= p;
    }
    if (rest == 1) return m;
  }
}

struct RealFft2d::Impl {
  Shape shape;
  float* real = nullptr;
  fftwf_complex* spectrum = nullptr;
  // Shared, cached plans (CachedPlan): not owned.
  fftwf_plan forward = nullptr;
  fftwf_plan inverse = nullptr;
  // ForwardColumns: the rows' r2c and the column pass for `columns` columns.
  int columns = 0;
  fftwf_plan rows_forward = nullptr;
  fftwf_plan columns_forward = nullptr;

  ~Impl() {
    fftwf_free(real);
    fftwf_free(spectrum);
  }
};

RealFft2d::RealFft2d(Shape shape) : impl_(std::make_unique<Impl>()) {
  if (shape.Empty()) throw std::invalid_argument("RealFft2d: empty shape");
  Impl& m = *impl_;
  m.shape = shape;
  const std::size_t n_real = static_cast<std::size_t>(shape.Pixels());
  const std::size_t n_complex = static_cast<std::size_t>(shape.rows) * (shape.cols / 2 + 1);
  std::lock_guard<std::mutex> lock(PlannerMutex());
  m.real = fftwf_alloc_real(n_real);
  m.spectrum = fftwf_alloc_complex(n_complex);
  if (!m.real || !m.spectrum) throw std::bad_alloc();
  // Planned with the process's FftPlanning (fft.hpp).
  const int length = std::min(shape.rows, shape.cols);
  const PlanArrays arrays{m.real, m.spectrum, n_real, n_complex};
  m.forward = CachedPlan({PlanKind::kForward, shape.rows, shape.cols, 0}, [&] {
    return PlanWithPlanning(length, arrays, [&](unsigned flags, float* real, fftwf_complex* spectrum) {
      return fftwf_plan_dft_r2c_2d(shape.rows, shape.cols, real, spectrum, flags);
    });
  });
  m.inverse = CachedPlan({PlanKind::kInverse, shape.rows, shape.cols, 0}, [&] {
    return PlanWithPlanning(length, arrays, [&](unsigned flags, float* real, fftwf_complex* spectrum) {
      return fftwf_plan_dft_c2r_2d(shape.rows, shape.cols, spectrum, real, flags);
    });
  });
}

RealFft2d::~RealFft2d() = default;
RealFft2d::RealFft2d(RealFft2d&&) noexcept = default;
RealFft2d& RealFft2d::operator=(RealFft2d&&) noexcept = default;

Shape RealFft2d::shape() const { return impl_->shape; }
float* RealFft2d::real() { return impl_->real; }
cfloat* RealFft2d::spectrum() { return reinterpret_cast<cfloat*>(impl_->spectrum); }
void RealFft2d::Forward() { fftwf_execute_dft_r2c(impl_->forward, impl_->real, impl_->spectrum); }
void RealFft2d::Inverse() { fftwf_execute_dft_c2r(impl_->inverse, impl_->spectrum, impl_->real); }

void RealFft2d::ForwardColumns(int columns) {
  PlanForwardColumns(columns);
  Impl& m = *impl_;
  fftwf_execute_dft_r2c(m.rows_forward, m.real, m.spectrum);
  fftwf_execute_dft(m.columns_forward, m.spectrum, m.spectrum);
}

void RealFft2d::PlanForwardColumns(int columns) {
  Impl& m = *impl_;
  if (columns < 1 || columns > spectrum_cols())
    throw std::invalid_argument("RealFft2d::ForwardColumns: column count out of range");
  if (columns != m.columns) {
    std::lock_guard<std::mutex> lock(PlannerMutex());
    int rows = m.shape.rows, cols = m.shape.cols;
    const int half = spectrum_cols();
    const PlanArrays arrays{m.real, m.spectrum, static_cast<std::size_t>(m.shape.Pixels()), spectrum_size()};
    m.rows_forward = CachedPlan({PlanKind::kRowsForward, rows, cols, 0}, [&] {
      return PlanWithPlanning(cols, arrays, [&](unsigned flags, float* real, fftwf_complex* spectrum) {
        return fftwf_plan_many_dft_r2c(1, &cols, rows, real, nullptr, 1, cols, spectrum, nullptr, 1, half,
                                       flags);
      });
    });
    m.columns_forward = CachedPlan({PlanKind::kColumnsForward, rows, cols, columns}, [&] {
      return PlanWithPlanning(rows, arrays, [&](unsigned flags, float*, fftwf_complex* spectrum) {
        return fftwf_plan_many_dft(1, &rows, columns, spectrum, nullptr, half, 1, spectrum, nullptr, half, 1,
                                   FFTW_FORWARD, flags);
      });
    });
    m.columns = columns;
  }
}

}  // namespace livealign
