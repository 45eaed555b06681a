#include "core/fft.hpp"

#include <fftw3.h>

#include <mutex>
#include <stdexcept>

namespace livealign {
namespace {
// FFTW's planner is not thread-safe; only fftwf_execute* is.
std::mutex& PlannerMutex() {
  static std::mutex mutex;
  return mutex;
}
}  // namespace

struct RealFft2d::Impl {
  Shape shape;
  float* real = nullptr;
  fftwf_complex* spectrum = nullptr;
  fftwf_plan forward = nullptr;
  fftwf_plan inverse = nullptr;
  // ForwardColumns: the rows' r2c and the column pass for `columns` columns.
  int columns = 0;
  fftwf_plan rows_forward = nullptr;
  fftwf_plan columns_forward = nullptr;

  ~Impl() {
    std::lock_guard<std::mutex> lock(PlannerMutex());
    if (forward) fftwf_destroy_plan(forward);
    if (inverse) fftwf_destroy_plan(inverse);
    if (rows_forward) fftwf_destroy_plan(rows_forward);
    if (columns_forward) fftwf_destroy_plan(columns_forward);
    fftwf_free(real);
    fftwf_free(spectrum);
  }
};

RealFft2d::RealFft2d(Shape shape) : impl_(std::make_unique<Impl>()) {
  if (shape.Empty()) throw std::invalid_argument("RealFft2d: empty shape");
  impl_->shape = shape;
  const std::size_t n_real = static_cast<std::size_t>(shape.Pixels());
  const std::size_t n_complex = static_cast<std::size_t>(shape.rows) * (shape.cols / 2 + 1);
  std::lock_guard<std::mutex> lock(PlannerMutex());
  impl_->real = fftwf_alloc_real(n_real);
  impl_->spectrum = fftwf_alloc_complex(n_complex);
  if (!impl_->real || !impl_->spectrum) throw std::bad_alloc();
  // FFTW_ESTIMATE: on this class of machine MEASURE picked no faster plans
  // within the run-to-run noise (+-30 % here), and ESTIMATE costs no
  // planning time.
  impl_->forward = fftwf_plan_dft_r2c_2d(shape.rows, shape.cols, impl_->real,
                                         impl_->spectrum, FFTW_ESTIMATE);
  impl_->inverse = fftwf_plan_dft_c2r_2d(shape.rows, shape.cols, impl_->spectrum,
                                         impl_->real, FFTW_ESTIMATE);
  if (!impl_->forward || !impl_->inverse) throw std::runtime_error("RealFft2d: FFTW planning failed");
}

RealFft2d::~RealFft2d() = default;
RealFft2d::RealFft2d(RealFft2d&&) noexcept = default;
RealFft2d& RealFft2d::operator=(RealFft2d&&) noexcept = default;

Shape RealFft2d::shape() const { return impl_->shape; }
float* RealFft2d::real() { return impl_->real; }
cfloat* RealFft2d::spectrum() { return reinterpret_cast<cfloat*>(impl_->spectrum); }
void RealFft2d::Forward() { fftwf_execute(impl_->forward); }
void RealFft2d::Inverse() { fftwf_execute(impl_->inverse); }

void RealFft2d::ForwardColumns(int columns) {
  Impl& m = *impl_;
  if (columns < 1 || columns > spectrum_cols())
    throw std::invalid_argument("RealFft2d::ForwardColumns: column count out of range");
  if (columns != m.columns) {
    std::lock_guard<std::mutex> lock(PlannerMutex());
    if (m.columns_forward) fftwf_destroy_plan(m.columns_forward);
    m.columns_forward = nullptr;
    int rows = m.shape.rows, cols = m.shape.cols;
    const int half = spectrum_cols();
    if (!m.rows_forward) {
      // Planned on the real data's own buffers; FFTW_ESTIMATE leaves them be.
      m.rows_forward = fftwf_plan_many_dft_r2c(1, &cols, rows, m.real, nullptr, 1, cols,
                                               m.spectrum, nullptr, 1, half, FFTW_ESTIMATE);
    }
    m.columns_forward = fftwf_plan_many_dft(1, &rows, columns, m.spectrum, nullptr, half, 1,
                                            m.spectrum, nullptr, half, 1, FFTW_FORWARD,
                                            FFTW_ESTIMATE);
    if (!m.rows_forward || !m.columns_forward)
      throw std::runtime_error("RealFft2d: FFTW planning failed");
    m.columns = columns;
  }
  fftwf_execute(m.rows_forward);
  fftwf_execute(m.columns_forward);
}

}  // namespace livealign
