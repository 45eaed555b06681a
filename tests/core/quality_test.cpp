#include "core/quality.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include "core/averager.hpp"
#include "core/simulator.hpp"

namespace livealign {
namespace {

using Catch::Matchers::Contains;
using Catch::Matchers::WithinAbs;
using Catch::Matchers::WithinRel;

Frame PoissonNoise(Shape shape, double mean, unsigned seed) {
  std::mt19937 rng(seed);
  std::poisson_distribution<int> poisson(mean);
  Frame frame(shape);
  for (int r = 0; r < shape.rows; ++r)
    for (int c = 0; c < shape.cols; ++c) frame.at(r, c) = static_cast<float>(poisson(rng));
  return frame;
}

struct HalfSets {
  Frame even, odd;
  AverageImage full;
};

// Half-set averages of the first n frames at their true shifts, cropped to
// the full average's valid rectangle.
HalfSets HalfSetsOf(const SimulatedSeries& series, int n) {
  ShiftedAverager averager;
  for (int i = 0; i < n; ++i) averager.AddFrame(series.frames[i].Clone(), series.true_shifts[i]);
  HalfSets out;
  out.full = averager.Average();
  out.even = CropFrame(averager.HalfSetAverage(0).full, out.full.valid);
  out.odd = CropFrame(averager.HalfSetAverage(1).full, out.full.valid);
  return out;
}

SimulatorOptions SmallDrift(Shape shape, double dose) {
  SimulatorOptions options;
  options.shape = shape;
  options.dose_counts_per_px = dose;
  options.initial_velocity_px_per_frame = {0.4, 0.3};
  options.random_acceleration_px = 0.05;
  return options;
}

TEST_CASE("FRC of an image with itself is one at every ring", "[core][quality]") {
  const SimulatedSeries series = Simulate(SmallDrift({128, 160}, 0.5), 1, 4);
  const FrcReport report = FourierRingCorrelation(series.frames[0], series.frames[0]);
  REQUIRE(report.rings.size() == 65);
  for (std::size_t r = 1; r < report.rings.size(); ++r) REQUIRE_THAT(report.rings[r].frc, WithinAbs(1.0, 1e-6));
  REQUIRE(report.at_one_seventh.status == FrcCrossing::kNotReached);
  REQUIRE_THAT(report.at_half.frequency_cycles_per_px, WithinAbs(0.5, 1e-12));
  REQUIRE(report.image_snr > 1e6);
  REQUIRE(report.window_efficiency > 0.8);
  REQUIRE(report.window_efficiency < 1.0);
}

TEST_CASE("FRC of independent noise claims no resolution", "[core][quality]") {
  const unsigned seed = GENERATE(1u, 2u, 3u, 4u, 5u, 6u);
  const double mean = GENERATE(0.2, 50.0);
  CAPTURE(seed, mean);
  const Frame a = PoissonNoise({256, 256}, mean, seed);
  const Frame b = PoissonNoise({256, 256}, mean, seed + 100);
  const FrcReport report = FourierRingCorrelation(a, b);
  REQUIRE(report.at_one_seventh.status == FrcCrossing::kNoSignal);
  REQUIRE(report.at_half.status == FrcCrossing::kNoSignal);
  REQUIRE(report.image_snr < 0.05);
}

TEST_CASE("FRC resolution and SSNR improve with more frames", "[core][quality]") {
  const SimulatedSeries series = Simulate(SmallDrift({256, 256}, 0.1), 24, 17);
  const HalfSets few = HalfSetsOf(series, 4);
  const HalfSets many = HalfSetsOf(series, 24);
  const FrcReport frc_few = FourierRingCorrelation(few.even, few.odd);
  const FrcReport frc_many = FourierRingCorrelation(many.even, many.odd);
  CAPTURE(frc_few.at_one_seventh.frequency_cycles_per_px, frc_many.at_one_seventh.frequency_cycles_per_px,
          frc_few.image_snr, frc_many.image_snr);
  REQUIRE(frc_many.at_one_seventh.status != FrcCrossing::kNoSignal);
  REQUIRE(frc_many.at_one_seventh.frequency_cycles_per_px > frc_few.at_one_seventh.frequency_cycles_per_px);
  // Roughly 6x the frames: whole-image SNR grows by several times.
  REQUIRE(frc_many.image_snr > 3 * frc_few.image_snr);
  // The per-ring SSNR at low frequency grows too (rings 4..20, summed).
  double ssnr_few = 0, ssnr_many = 0;
  for (int r = 4; r <= 20; ++r) {
    ssnr_few += frc_few.rings[r].ssnr;
    ssnr_many += frc_many.rings[r].ssnr;
  }
  REQUIRE(ssnr_many > 2 * ssnr_few);
  // The 0.5 threshold is stricter than 1/7.
  if (frc_many.at_half.status == FrcCrossing::kCrossed)
    REQUIRE(frc_many.at_half.frequency_cycles_per_px <= frc_many.at_one_seventh.frequency_cycles_per_px);
}

TEST_CASE("FRC and information transfer of images written into the transform equal those of the images",
          "[core][quality]") {
  const SimulatedSeries series = Simulate(SmallDrift({256, 192}, 0.1), 8, 5);
  const HalfSets sets = HalfSetsOf(series, 8);
  const Shape shape = sets.even.shape();
  auto writer_of = [](FrameView image) {
    return [image](float* out) {
      std::copy(image.data(), image.data() + image.shape().Pixels(), out);
      return true;
    };
  };
  const FrcReport direct = FourierRingCorrelation(sets.even, sets.odd);
  const std::optional<FrcReport> written =
      FourierRingCorrelation(shape, writer_of(sets.even), writer_of(sets.odd));
  REQUIRE(written.has_value());
  REQUIRE(written->rings.size() == direct.rings.size());
  for (std::size_t r = 0; r < direct.rings.size(); ++r) REQUIRE(written->rings[r].frc == direct.rings[r].frc);
  REQUIRE(written->image_snr == direct.image_snr);
  // Swapped, the same figure: the FRC is symmetric in its two images.
  const std::optional<FrcReport> swapped =
      FourierRingCorrelation(shape, writer_of(sets.odd), writer_of(sets.even));
  REQUIRE(swapped.has_value());
  REQUIRE_THAT(swapped->image_snr, WithinRel(direct.image_snr, 1e-9));

  const InformationTransferReport transfer = InformationTransfer(sets.even);
  const InformationTransferReport transfer_written = InformationTransfer(shape, writer_of(sets.even));
  REQUIRE(transfer_written.found == transfer.found);
  REQUIRE(transfer_written.frequency_cycles_per_px == transfer.frequency_cycles_per_px);
  REQUIRE(transfer_written.peaks.size() == transfer.peaks.size());
  REQUIRE(transfer_written.threshold == transfer.threshold);

  // A writer with no image: no figure.
  const ImageWriter none = [](float*) { return false; };
  REQUIRE_FALSE(FourierRingCorrelation(shape, writer_of(sets.even), none).has_value());
  REQUIRE_FALSE(FourierRingCorrelation(shape, none, writer_of(sets.odd)).has_value());
  const InformationTransferReport nothing = InformationTransfer(shape, none);
  REQUIRE_FALSE(nothing.found);
  REQUIRE(nothing.peaks.empty());
}

TEST_CASE("information transfer reaches higher frequencies in the average than in one frame",
          "[core][quality]") {
  SimulatorOptions options = SmallDrift({256, 256}, 0.08);
  options.column_sigma_px = 1.5;
  const SimulatedSeries series = Simulate(options, 30, 23);
  const HalfSets sets = HalfSetsOf(series, 30);
  const InformationTransferReport single = InformationTransfer(series.frames[0]);
  const InformationTransferReport average = InformationTransfer(sets.full.common);
  CAPTURE(single.frequency_cycles_per_px, average.frequency_cycles_per_px, average.peaks.size());
  REQUIRE(average.found);
  REQUIRE(average.frequency_cycles_per_px > single.frequency_cycles_per_px + 0.02);
  // The strongest peak of the average is the perovskite (1,1) reflection at
  // sqrt(2) / spacing (A + B add there; at (1,0) they subtract).
  REQUIRE_THAT(average.peaks.front().frequency_cycles_per_px, WithinAbs(std::sqrt(2.0) / 16, 0.005));
  REQUIRE(average.threshold > 10);

  SECTION("pure noise has no significant peak") {
    const InformationTransferReport noise = InformationTransfer(PoissonNoise({256, 256}, 0.2, 9));
    REQUIRE_FALSE(noise.found);
    REQUIRE(noise.peaks.empty());
  }
}

TEST_CASE("drift that stops halfway is reported settled near the stopping frame", "[core][quality]") {
  std::mt19937 rng(5);
  std::normal_distribution<double> measurement_noise(0, 0.02);
  DriftOptions options;  // window 10, 5 slow windows, 0.05 px/frame
  DriftSettledTracker tracker(options);
  const int stop = 30;
  bool was_settled = false;
  DriftStatus last;
  for (int i = 0; i < 60; ++i) {
    const double t = std::min(i, stop);
    const Shift shift{0.5 * t + measurement_noise(rng), -0.3 * t + measurement_noise(rng)};
    last = tracker.Add(shift, 0.25 * i);
    if (i < stop) REQUIRE_FALSE(last.settled);
    if (last.settled) was_settled = true;
    if (i == 20) {
      REQUIRE(last.rate_valid);
      REQUIRE_THAT(last.speed_px_per_frame, WithinRel(std::hypot(0.5, 0.3), 0.05));
      REQUIRE_THAT(last.speed_px_per_s, WithinRel(std::hypot(0.5, 0.3) / 0.25, 0.05));
      REQUIRE(last.trend == DriftTrend::kSteady);
    }
    if (i == stop + 12) REQUIRE(last.trend == DriftTrend::kSlowing);
  }
  REQUIRE(was_settled);
  REQUIRE(last.settled);
  CAPTURE(tracker.settled_at_frame(), tracker.settled_since_frame());
  REQUIRE(tracker.settled_at_frame() <= stop + options.window_frames + options.settle_window_frames);
  REQUIRE(std::abs(tracker.settled_since_frame() - stop) <= 3);

  SECTION("restarting drift unsettles") {
    tracker.Add(Shift{0.5 * stop + 5, -0.3 * stop}, 0.25 * 60);
    tracker.Add(Shift{0.5 * stop + 10, -0.3 * stop}, 0.25 * 61);
    REQUIRE(tracker.settled_at_frame() == -1);
  }
}

TEST_CASE("frequencies convert to Å with anisotropic pixels", "[core][quality]") {
  const PixelSizeA pixel_size{0.2, 0.25};  // y, x
  REQUIRE_THAT(PeriodA(0.1, 0, pixel_size), WithinRel(2.5, 1e-12));  // 10 px along x
  REQUIRE_THAT(PeriodA(0, 0.1, pixel_size), WithinRel(2.0, 1e-12));  // 10 px along y
  // A diagonal frequency: |f| = hypot(0.1 / 0.25, 0.1 / 0.2) per Å.
  REQUIRE_THAT(PeriodA(0.1, 0.1, pixel_size), WithinRel(1.0 / std::hypot(0.4, 0.5), 1e-12));
  REQUIRE(std::isinf(PeriodA(0, 0, pixel_size)));
  const RingResolutionA ring = RingFrequencyToA(0.25, pixel_size);
  REQUIRE_THAT(ring.along_x_A, WithinRel(1.0, 1e-12));
  REQUIRE_THAT(ring.along_y_A, WithinRel(0.8, 1e-12));
  REQUIRE_THAT(ring.mean_A, WithinRel(0.9, 1e-12));
  REQUIRE_THROWS_AS(PeriodA(0.1, 0.1, PixelSizeA{0, 1}), std::invalid_argument);
}

TEST_CASE("the stop rule flips when the targets are reached", "[core][quality]") {
  StopRule::Options options;
  options.target_resolution_A = 1.2;
  options.max_frames = 100;
  StopRule rule(options);
  StopInputs inputs;
  inputs.num_frames = 20;
  SECTION("resolution") {
    StopDecision decision = rule.Evaluate(inputs);  // not measured yet
    REQUIRE_FALSE(decision.good);
    REQUIRE_THAT(decision.reason, Contains("not measurable"));
    inputs.resolution_A = 1.5;
    REQUIRE_FALSE(rule.Evaluate(inputs).good);
    inputs.resolution_A = 1.12;
    inputs.num_frames = 31;
    decision = rule.Evaluate(inputs);
    REQUIRE(decision.good);
    REQUIRE(decision.stop);
    REQUIRE(decision.reason == "resolution 1.12 Å reached target 1.2 Å after 31 frames");
  }
  SECTION("all enabled targets must hold") {
    options.target_snr = 10;
    options.require_drift_settled = true;
    StopRule strict(options);
    inputs.resolution_A = 1.0;
    inputs.snr = 12;
    REQUIRE_FALSE(strict.Evaluate(inputs).good);  // drift not settled
    REQUIRE_THAT(strict.Evaluate(inputs).reason, Contains("drift not settled"));
    inputs.drift_settled = true;
    REQUIRE(strict.Evaluate(inputs).good);
    inputs.snr = 5;
    REQUIRE_FALSE(strict.Evaluate(inputs).good);
  }
  SECTION("max frames stops without claiming good") {
    inputs.resolution_A = 2.0;
    inputs.num_frames = 100;
    const StopDecision decision = rule.Evaluate(inputs);
    REQUIRE_FALSE(decision.good);
    REQUIRE(decision.stop);
    REQUIRE_THAT(decision.reason, Contains("maximum of 100 frames"));
  }
  SECTION("no target") {
    REQUIRE_FALSE(StopRule(StopRule::Options()).Evaluate(inputs).good);
  }
}

}  // namespace
}  // namespace livealign
