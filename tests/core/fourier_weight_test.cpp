#include "core/fourier_weight.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <stdexcept>

namespace livealign {
namespace {

using Catch::Matchers::WithinAbs;

TEST_CASE("Fourier weight names parse and print back", "[core][fourier_weight]") {
  for (auto type : {FourierWeightType::kNone, FourierWeightType::kGaussian,
                    FourierWeightType::kLowpass, FourierWeightType::kBandpass}) {
    REQUIRE(FourierWeightTypeFromName(FourierWeightTypeName(type)) == type);
  }
  REQUIRE_FALSE(FourierWeightTypeFromName("wiener").has_value());
}

TEST_CASE("each weight follows its documented formula", "[core][fourier_weight]") {
  FourierWeightOptions o;
  SECTION("gaussian") {
    o.type = FourierWeightType::kGaussian;
    o.sigma_cycles_per_px = 0.05;
    o.cutoff_cycles_per_px = 0.125;
    const FourierWeight w(o);
    REQUIRE_THAT(w(0.0), WithinAbs(1.0, 1e-12));
    REQUIRE_THAT(w(0.05), WithinAbs(std::exp(-0.5), 1e-12));
    REQUIRE_THAT(w(0.1249), WithinAbs(std::exp(-0.1249 * 0.1249 / (2 * 0.0025)), 1e-12));
    REQUIRE(w(0.125) == 0.0);
    REQUIRE(w(0.3) == 0.0);
    REQUIRE_THAT(w.At(0.03, 0.04), WithinAbs(w(0.05), 1e-12));
    REQUIRE(w.band_limit_cycles_per_px() == 0.125);
  }
  SECTION("lowpass") {
    o.type = FourierWeightType::kLowpass;
    o.cutoff_cycles_per_px = 0.2;
    o.rolloff_cycles_per_px = 0.1;
    const FourierWeight w(o);
    REQUIRE(w(0.0) == 1.0);
    REQUIRE(w(0.1) == 1.0);
    REQUIRE_THAT(w(0.15), WithinAbs(0.5, 1e-12));
    REQUIRE(w(0.12) > w(0.18));
    REQUIRE(w(0.2) == 0.0);
    REQUIRE(w.band_limit_cycles_per_px() == 0.2);
  }
  SECTION("bandpass") {
    o.type = FourierWeightType::kBandpass;
    o.low_cycles_per_px = 0.02;
    o.high_cycles_per_px = 0.2;
    o.rolloff_cycles_per_px = 0.05;
    const FourierWeight w(o);
    REQUIRE(w(0.0) == 0.0);
    REQUIRE_THAT(w(0.01), WithinAbs(0.5, 1e-12));
    REQUIRE(w(0.05) == 1.0);
    REQUIRE_THAT(w(0.175), WithinAbs(0.5, 1e-12));
    REQUIRE(w(0.2) == 0.0);
    REQUIRE(w.band_limit_cycles_per_px() == 0.2);
  }
  SECTION("none") {
    o.type = FourierWeightType::kNone;
    const FourierWeight w(o);
    REQUIRE(w(0.0) == 1.0);
    REQUIRE(w(0.7) == 1.0);
    REQUIRE(std::isinf(w.band_limit_cycles_per_px()));
  }
}

TEST_CASE("the band size is the smallest FFT-friendly even size holding the band",
          "[core][fourier_weight]") {
  REQUIRE(BandSize(0.125, 512) == 128);
  REQUIRE(BandSize(0.125, 1024) == 256);
  REQUIRE(BandSize(0.125, 500) == 128);    // ceil(62.5) = 63 -> 126 = 2*3^2*7 -> 128
  REQUIRE(BandSize(0.2, 512) == 216);      // 103 -> 206, 208, 210 unfriendly -> 216
  REQUIRE(BandSize(0.125, 192) == 48);
  REQUIRE(BandSize(0.4, 100) == 80);
  REQUIRE(BandSize(0.5, 100) == 100);      // no crop possible
  REQUIRE(BandSize(0.49, 99) == 99);       // 49 -> 98 unfriendly, 100 > 99: capped
  REQUIRE(BandSize(std::numeric_limits<double>::infinity(), 256) == 256);
  REQUIRE_THROWS_AS(BandSize(0.0, 256), std::invalid_argument);
  REQUIRE(IsFftFriendlyEven(2));
  REQUIRE(IsFftFriendlyEven(750));
  REQUIRE_FALSE(IsFftFriendlyEven(14));
  REQUIRE_FALSE(IsFftFriendlyEven(75));
}

TEST_CASE("Fourier weight options are checked", "[core][fourier_weight]") {
  std::string error;
  REQUIRE(FourierWeightOptions{}.Check(&error));
  FourierWeightOptions o;
  SECTION("gaussian sigma must be positive") { o.sigma_cycles_per_px = 0; }
  SECTION("cutoff beyond the spectrum corner") { o.cutoff_cycles_per_px = 0.8; }
  SECTION("lowpass rolloff wider than the cutoff") {
    o.type = FourierWeightType::kLowpass;
    o.rolloff_cycles_per_px = 0.2;
  }
  SECTION("bandpass low above high") {
    o.type = FourierWeightType::kBandpass;
    o.low_cycles_per_px = 0.3;
  }
  REQUIRE_FALSE(o.Check(&error));
  REQUIRE_FALSE(error.empty());
  REQUIRE_THROWS_AS(FourierWeight(o), std::invalid_argument);
}

}  // namespace
}  // namespace livealign
