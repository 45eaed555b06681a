#include "core/fourier_weight.hpp"
#include "core/check.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>

namespace livealign {
namespace {

constexpr double kMaxFrequency = 0.7072;  // just above the corner, 0.5 * sqrt(2)

double RaisedCosineLowpass(double k, double cutoff, double rolloff) {
  if (k >= cutoff) return 0.0;
  const double start = cutoff - rolloff;
  if (k <= start) return 1.0;
  return 0.5 * (1.0 + std::cos(M_PI * (k - start) / rolloff));
}

}  // namespace

std::optional<FourierWeightType> FourierWeightTypeFromName(std::string_view name) {
  if (name == "none") return FourierWeightType::kNone;
  if (name == "gaussian") return FourierWeightType::kGaussian;
  if (name == "lowpass") return FourierWeightType::kLowpass;
  if (name == "bandpass") return FourierWeightType::kBandpass;
  return std::nullopt;
}

const char* FourierWeightTypeName(FourierWeightType type) {
  switch (type) {
    case FourierWeightType::kNone: return "none";
    case FourierWeightType::kGaussian: return "gaussian";
    case FourierWeightType::kLowpass: return "lowpass";
    case FourierWeightType::kBandpass: return "bandpass";
  }
  return "unknown";
}

bool FourierWeightOptions::Check(std::string* error) const {
  auto positive = [](double v) { return std::isfinite(v) && v > 0; };
  switch (type) {
    case FourierWeightType::kNone:
      return true;
    case FourierWeightType::kGaussian:
      if (!positive(sigma_cycles_per_px)) return Fail(error, "gaussian sigma must be > 0");
      if (!positive(cutoff_cycles_per_px) || cutoff_cycles_per_px > kMaxFrequency)
        return Fail(error, "gaussian cutoff must be in (0, 0.707] cycles/px");
      return true;
    case FourierWeightType::kLowpass:
      if (!positive(cutoff_cycles_per_px) || cutoff_cycles_per_px > kMaxFrequency)
        return Fail(error, "lowpass cutoff must be in (0, 0.707] cycles/px");
      if (!positive(rolloff_cycles_per_px) || rolloff_cycles_per_px > cutoff_cycles_per_px)
        return Fail(error, "lowpass rolloff must be in (0, cutoff]");
      return true;
    case FourierWeightType::kBandpass:
      if (!positive(low_cycles_per_px)) return Fail(error, "bandpass low must be > 0");
      if (!positive(high_cycles_per_px) || high_cycles_per_px > kMaxFrequency)
        return Fail(error, "bandpass high must be in (0, 0.707] cycles/px");
      if (!(low_cycles_per_px < high_cycles_per_px))
        return Fail(error, "bandpass low must be below high");
      if (!positive(rolloff_cycles_per_px) || rolloff_cycles_per_px > high_cycles_per_px)
        return Fail(error, "bandpass rolloff must be in (0, high]");
      return true;
  }
  return Fail(error, "unknown Fourier weight type");
}

FourierWeight::FourierWeight(const FourierWeightOptions& options) : options_(options) {
  std::string error;
  if (!options.Check(&error)) throw std::invalid_argument("FourierWeight: " + error);
}

double FourierWeight::operator()(double k) const {
  const FourierWeightOptions& o = options_;
  switch (o.type) {
    case FourierWeightType::kNone:
      return 1.0;
    case FourierWeightType::kGaussian:
      if (k >= o.cutoff_cycles_per_px) return 0.0;
      return std::exp(-k * k / (2.0 * o.sigma_cycles_per_px * o.sigma_cycles_per_px));
    case FourierWeightType::kLowpass:
      return RaisedCosineLowpass(k, o.cutoff_cycles_per_px, o.rolloff_cycles_per_px);
    case FourierWeightType::kBandpass: {
      const double high_pass =
          k < o.low_cycles_per_px ? 0.5 * (1.0 - std::cos(M_PI * k / o.low_cycles_per_px)) : 1.0;
      return high_pass * RaisedCosineLowpass(k, o.high_cycles_per_px, o.rolloff_cycles_per_px);
    }
  }
  return 0.0;
}

double FourierWeight::At(double kx, double ky) const { return (*this)(std::hypot(kx, ky)); }

double FourierWeight::band_limit_cycles_per_px() const {
  switch (options_.type) {
    case FourierWeightType::kNone: return std::numeric_limits<double>::infinity();
    case FourierWeightType::kGaussian:
    case FourierWeightType::kLowpass: return options_.cutoff_cycles_per_px;
    case FourierWeightType::kBandpass: return options_.high_cycles_per_px;
  }
  return std::numeric_limits<double>::infinity();
}

bool IsFftFriendlyEven(int n) {
  if (n < 2 || n % 2 != 0) return false;
  for (int p : {2, 3, 5})
    while (n % p == 0) n /= p;
  return n == 1;
}

int BandSize(double band_limit, int n) {
  if (n < 1) throw std::invalid_argument("BandSize: n must be >= 1");
  if (!(band_limit > 0)) throw std::invalid_argument("BandSize: band limit must be > 0");
  if (!std::isfinite(band_limit)) return n;
  // Frequencies with W != 0 satisfy |f| < band_limit * n; the largest such
  // integer is ceil(band_limit * n) - 1, which must be <= M/2 - 1. The small
  // epsilon keeps an exact product like 0.125 * 512 = 64 from rounding up.
  const double half = std::ceil(band_limit * n - 1e-9);
  if (half * 2 >= n) return n;
  for (int m = static_cast<int>(half) * 2; m < n; m += 2) {
    if (IsFftFriendlyEven(m)) return m;
  }
  return n;
}

}  // namespace livealign
