#include "core/averager.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include "core/simulator.hpp"

namespace livealign {
namespace {

using Catch::Matchers::WithinAbs;

// Noise-free frames of a smooth specimen (columns of sigma 2.5 px, well
// sampled, so bicubic interpolation error is small) with random drift.
SimulatedSeries SmoothSeries(int num_frames, Shape shape = {96, 128}) {
  SimulatorOptions options;
  options.shape = shape;
  options.column_sigma_px = 2.5;
  options.poisson_noise = false;
  options.dose_counts_per_px = 1.0;
  options.initial_velocity_px_per_frame = {0.9, -0.6};
  options.random_acceleration_px = 0.3;
  return Simulate(options, num_frames, 21);
}

double MaxAbsDiff(FrameView a, FrameView b) {
  double worst = 0;
  for (int r = 0; r < a.rows(); ++r)
    for (int c = 0; c < a.cols(); ++c) worst = std::max(worst, double(std::fabs(a.at(r, c) - b.at(r, c))));
  return worst;
}

TEST_CASE("averaging exactly shifted frames with the true shifts reproduces frame 0",
          "[core][averager]") {
  SimulatedSeries series = SmoothSeries(8);
  ShiftedAverager averager;
  const Frame frame0 = series.frames[0].Clone();
  for (int i = 0; i < 8; ++i) averager.AddFrame(std::move(series.frames[i]), series.true_shifts[i]);
  const AverageImage average = averager.Average();
  REQUIRE(average.num_included == 8);
  REQUIRE_FALSE(average.valid.Empty());
  const Frame reference = CropFrame(frame0, average.valid);
  double peak = 0;
  for (float v : reference.pixels()) peak = std::max(peak, double(v));
  // Bicubic on sigma = 2.5 px columns: error well under 1 % of the column peak.
  CAPTURE(average.valid, peak);
  REQUIRE(MaxAbsDiff(average.common, reference) < 0.01 * peak);
  // With wrong shifts (all zero) the same frames do not reproduce frame 0.
  ShiftedAverager unaligned;
  SimulatedSeries again = SmoothSeries(8);
  for (int i = 0; i < 8; ++i) unaligned.AddFrame(std::move(again.frames[i]), Shift{0, 0});
  const AverageImage blurred = unaligned.Average();
  REQUIRE(MaxAbsDiff(CropFrame(blurred.full, average.valid), reference) > 0.1 * peak);
}

TEST_CASE("valid rectangle and counts follow the shifts", "[core][averager]") {
  const Shape shape{20, 30};
  ShiftedAverager averager;
  averager.AddFrame(Frame(shape, std::vector<float>(600, 1.0f)), Shift{0, 0});
  SECTION("integer shifts") {
    // Frame 1 is read at p + (3, -2): covers cols [0, 27), rows [2, 20).
    averager.AddFrame(Frame(shape, std::vector<float>(600, 3.0f)), Shift{3, -2});
    const AverageImage average = averager.Average();
    REQUIRE(average.valid == (AverageImage::Rect{2, 20, 0, 27}));
    REQUIRE(average.common.shape() == (Shape{18, 27}));
    REQUIRE(average.counts.at(10, 10) == 2.0f);
    REQUIRE(average.counts.at(0, 10) == 1.0f);   // row 0 only frame 0
    REQUIRE(average.counts.at(10, 28) == 1.0f);  // col 28 only frame 0
    REQUIRE_THAT(average.full.at(10, 10), WithinAbs(2.0, 1e-6));
    REQUIRE_THAT(average.full.at(0, 10), WithinAbs(1.0, 1e-6));
  }
  SECTION("fractional shifts need all four taps inside") {
    // x = 1.5: taps at c + 0 .. c + 3 -> c in [0, 27); y = -0.25: floor -1,
    // taps r - 2 .. r + 1 -> r in [2, 19).
    averager.AddFrame(Frame(shape, std::vector<float>(600, 3.0f)), Shift{1.5, -0.25});
    const AverageImage average = averager.Average();
    REQUIRE(average.valid == (AverageImage::Rect{2, 19, 0, 27}));
    // A constant frame stays constant under interpolation (weights sum to 1).
    REQUIRE_THAT(average.full.at(10, 10), WithinAbs(2.0, 1e-6));
  }
  SECTION("a frame shifted out of view covers nothing") {
    averager.AddFrame(Frame(shape, std::vector<float>(600, 3.0f)), Shift{100, 0});
    const AverageImage average = averager.Average();
    REQUIRE(average.valid.Empty());
    REQUIRE(average.common.shape().Pixels() == 0);
    REQUIRE(average.counts.at(5, 5) == 1.0f);
  }
  SECTION("excluded frames do not count") {
    averager.AddFrame(Frame(shape, std::vector<float>(600, 3.0f)), Shift{3, -2}, false);
    const AverageImage average = averager.Average();
    REQUIRE(average.num_included == 1);
    REQUIRE(average.valid == (AverageImage::Rect{0, 20, 0, 30}));
    REQUIRE_THAT(average.full.at(10, 10), WithinAbs(1.0, 1e-6));
  }
}

TEST_CASE("incremental SetShift equals recomputation from scratch", "[core][averager]") {
  SimulatorOptions options;
  options.shape = {64, 64};
  SimulatedSeries noisy = Simulate(options, 10, 5);
  std::mt19937 rng(3);
  std::normal_distribution<double> jitter(0, 0.7);

  ShiftedAverager incremental;
  for (int i = 0; i < 10; ++i)
    incremental.AddFrame(noisy.frames[i].Clone(), Shift{jitter(rng), jitter(rng)});
  // Several rounds of solver updates: moves, exclusions, re-inclusions.
  std::vector<Shift> final_shifts(10);
  std::vector<bool> final_include(10);
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < 10; ++i) {
      const Shift s = noisy.true_shifts[i] + Shift{jitter(rng), jitter(rng)} * (round < 3 ? 1 : 0.001);
      const bool include = (i + round) % 4 != 0;
      incremental.SetShift(i, s, include);
      final_shifts[i] = s;
      final_include[i] = include;
    }
  }
  ShiftedAverager scratch;
  for (int i = 0; i < 10; ++i)
    scratch.AddFrame(noisy.frames[i].Clone(), incremental.applied_shift(i), final_include[i]);
  const AverageImage a = incremental.Average();
  const AverageImage b = scratch.Average();
  REQUIRE(a.num_included == b.num_included);
  REQUIRE(a.valid == b.valid);
  REQUIRE(MaxAbsDiff(a.full, b.full) < 1e-5);
  REQUIRE(MaxAbsDiff(a.counts, b.counts) == 0);
  // Reusing an output image gives the same result.
  AverageImage reused = scratch.HalfSetAverage(0);
  incremental.Average(&reused);
  REQUIRE(reused.valid == a.valid);
  REQUIRE(reused.common.pixels() == a.common.pixels());
  REQUIRE(reused.num_included == a.num_included);
  // Applied shifts of included frames lag requested ones by at most the tolerance.
  for (int i = 0; i < 10; ++i)
    if (final_include[i]) REQUIRE((incremental.applied_shift(i) - final_shifts[i]).Norm() <= 0.01 + 1e-12);

  SECTION("AverageOf with every frame equals Average") {
    ShiftedAverager exact(ShiftedAverager::Options{0.0});
    for (int i = 0; i < 10; ++i) exact.AddFrame(noisy.frames[i].Clone(), final_shifts[i], final_include[i]);
    const AverageImage from_scratch = exact.AverageOf(std::vector<bool>(10, true));
    REQUIRE(MaxAbsDiff(from_scratch.full, exact.Average().full) < 1e-5);
  }
}

TEST_CASE("shifts within the tolerance are not re-resampled", "[core][averager]") {
  SimulatorOptions options;
  options.shape = {32, 32};
  SimulatedSeries series = Simulate(options, 2, 1);
  ShiftedAverager averager;
  averager.AddFrame(std::move(series.frames[0]), Shift{0, 0});
  averager.AddFrame(std::move(series.frames[1]), Shift{1.0, 1.0});
  REQUIRE(averager.num_resamples() == 2);
  averager.SetShift(1, Shift{1.005, 1.0}, true);
  REQUIRE(averager.num_resamples() == 2);
  REQUIRE(averager.applied_shift(1) == (Shift{1.0, 1.0}));
  REQUIRE(averager.shift(1) == (Shift{1.005, 1.0}));
  averager.SetShift(1, Shift{1.02, 1.0}, true);  // moved: subtract + add
  REQUIRE(averager.num_resamples() == 4);
  averager.SetShift(1, Shift{1.02, 1.0}, false);  // excluded: subtract only
  REQUIRE(averager.num_resamples() == 5);
  REQUIRE(averager.num_included() == 1);
  averager.SetShift(1, Shift{1.02, 1.0}, true);  // back in: add
  REQUIRE(averager.num_resamples() == 6);
}

TEST_CASE("half-set and leave-one-out averages", "[core][averager]") {
  SimulatorOptions options;
  options.shape = {48, 40};
  SimulatedSeries series = Simulate(options, 7, 8);
  ShiftedAverager averager;
  for (int i = 0; i < 7; ++i) averager.AddFrame(series.frames[i].Clone(), series.true_shifts[i]);

  std::vector<bool> even(7), odd(7);
  for (int i = 0; i < 7; ++i) (i % 2 == 0 ? even : odd)[i] = true;
  const AverageImage half0 = averager.HalfSetAverage(0), half1 = averager.HalfSetAverage(1);
  REQUIRE(half0.num_included == 4);
  REQUIRE(half1.num_included == 3);
  REQUIRE(MaxAbsDiff(half0.full, averager.AverageOf(even).full) < 1e-5);
  REQUIRE(MaxAbsDiff(half1.full, averager.AverageOf(odd).full) < 1e-5);

  std::vector<bool> all_but_3(7, true);
  all_but_3[3] = false;
  const AverageImage loo = averager.AverageExcluding(3);
  REQUIRE(loo.num_included == 6);
  REQUIRE(MaxAbsDiff(loo.full, averager.AverageOf(all_but_3).full) < 1e-5);
  REQUIRE(MaxAbsDiff(loo.counts, averager.AverageOf(all_but_3).counts) == 0);
  REQUIRE(loo.valid == averager.AverageOf(all_but_3).valid);

  // 7 frames of 48 x 40 floats + 2 x (double + int) running sums.
  REQUIRE(averager.MemoryBytes() == 7u * 1920 * 4 + 2u * 1920 * (8 + 4));
}

TEST_CASE("averager misuse is refused", "[core][averager]") {
  ShiftedAverager averager;
  REQUIRE_THROWS_AS(averager.AddFrame(Frame(), Shift{}), std::invalid_argument);
  averager.AddFrame(Frame(Shape{4, 4}), Shift{});
  REQUIRE_THROWS_AS(averager.AddFrame(Frame(Shape{4, 5}), Shift{}), std::invalid_argument);
  REQUIRE_THROWS_AS(averager.AddFrame(Frame(Shape{4, 4}), Shift{std::nan(""), 0}),
                    std::invalid_argument);
  REQUIRE_THROWS_AS(averager.SetShift(1, Shift{}, true), std::invalid_argument);
  REQUIRE_THROWS_AS(averager.AverageOf({true, false}), std::invalid_argument);
  REQUIRE_THROWS_AS(ShiftedAverager(ShiftedAverager::Options{-1.0}), std::invalid_argument);
}

}  // namespace
}  // namespace livealign
