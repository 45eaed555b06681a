#include "core/registration_engine.hpp"

#include <catch2/catch.hpp>

#include <cmath>

#include "core/simulator.hpp"

namespace livealign {
namespace {

struct AxisErrors {
  double rms_x = 0, rms_y = 0, max_norm = 0;
};

// Per-axis RMS error after removing the mean offset (the absolute origin is a
// free gauge), and the largest per-frame error, over unflagged frames.
AxisErrors ErrorsAgainstTruth(const std::vector<FrameState>& frames,
                              const std::vector<Shift>& truth) {
  Shift mean;
  int n = 0;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    if (frames[i].flagged) continue;
    mean += frames[i].shift - truth[i];
    ++n;
  }
  REQUIRE(n > 0);
  mean = mean * (1.0 / n);
  AxisErrors e;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    if (frames[i].flagged) continue;
    const Shift d = frames[i].shift - truth[i] - mean;
    e.rms_x += d.x * d.x;
    e.rms_y += d.y * d.y;
    e.max_norm = std::max(e.max_norm, d.Norm());
  }
  e.rms_x = std::sqrt(e.rms_x / n);
  e.rms_y = std::sqrt(e.rms_y / n);
  return e;
}

TEST_CASE("a 40-frame low-dose perovskite stack registers within 3x the Cramer-Rao bound",
          "[core][registration_engine]") {
  const double dose = GENERATE(0.2, 0.08);
  CAPTURE(dose);
  SimulatorOptions sim;
  sim.shape = Shape{512, 512};
  sim.dose_counts_per_px = dose;
  Simulator microscope(sim, /*seed=*/11);
  const ShiftPrecisionBound crb = CramerRaoBound(microscope.NoiseFreeFrame(0));
  CAPTURE(crb.sigma_x_px, crb.sigma_y_px);

  RegistrationEngine engine(EngineOptions{}, sim.shape);
  std::vector<Shift> truth;
  for (int k = 0; k < 40; ++k) {
    engine.AddFrame(microscope.NextFrame());
    truth.push_back(microscope.TrueShift(k));
  }
  engine.Finish();
  const AxisErrors e = ErrorsAgainstTruth(engine.frames(), truth);
  CAPTURE(e.rms_x, e.rms_y, e.max_norm, engine.quality().consistency_rms_px);
  CHECK(engine.quality().flagged_frames == 0);
  CHECK(e.rms_x <= 3 * crb.sigma_x_px);
  CHECK(e.rms_y <= 3 * crb.sigma_y_px);
  // No unit-cell hop anywhere: every frame within 0.35 lattice spacings.
  CHECK(e.max_norm < 0.35 * sim.lattice_spacing_px);
  CHECK(engine.frames()[0].shift == Shift{0, 0});
}

TEST_CASE("a frame of unrelated content is flagged and does not disturb the others",
          "[core][registration_engine]") {
  SimulatorOptions sim;
  sim.shape = Shape{256, 256};
  sim.dose_counts_per_px = 2.0;
  Simulator microscope(sim, 3);
  SimulatorOptions other = sim;
  other.lattice = SpecimenLattice::kHexagonal;
  other.lattice_spacing_px = 11;
  other.num_blobs = 6;
  Simulator stranger(other, 99);

  RegistrationEngine engine(EngineOptions{}, sim.shape);
  std::vector<Shift> truth;
  const int bad = 7;
  for (int k = 0; k < 16; ++k) {
    Frame frame = microscope.NextFrame();
    truth.push_back(microscope.TrueShift(k));
    if (k == bad) {
      frame = stranger.NoisyFrame(5);
      frame.mutable_header().index = k;
    }
    engine.AddFrame(std::move(frame));
  }
  engine.Finish();
  CHECK(engine.frames()[bad].flagged);
  CHECK(engine.quality().flagged_frames == 1);
  std::vector<FrameState> good = engine.frames();
  good[bad].flagged = true;  // excluded from the error anyway
  const AxisErrors e = ErrorsAgainstTruth(good, truth);
  CAPTURE(e.rms_x, e.rms_y, e.max_norm);
  CHECK(e.max_norm < 0.2);
}

TEST_CASE("a frame of the wrong shape or with NaN is refused and leaves the engine unchanged",
          "[core][registration_engine]") {
  SimulatorOptions sim;
  sim.shape = Shape{128, 128};
  Simulator microscope(sim, 5);
  RegistrationEngine engine(EngineOptions{}, sim.shape);
  engine.AddFrame(microscope.NextFrame());
  CHECK_THROWS_AS(engine.AddFrame(Frame(Shape{128, 64})), std::invalid_argument);
  Frame with_nan = microscope.NextFrame();
  with_nan.at(3, 4) = std::nanf("");
  CHECK_THROWS_AS(engine.AddFrame(std::move(with_nan)), std::invalid_argument);
  CHECK(engine.num_frames() == 1);
  engine.AddFrame(microscope.NextFrame());
  CHECK(engine.num_frames() == 2);
}

TEST_CASE("engine options are checked", "[core][registration_engine]") {
  EngineOptions options;
  std::string error;
  CHECK(options.Check(&error));
  options.weight = "sinc";
  CHECK_FALSE(options.Check(&error));
  CHECK(error.find("weight") != std::string::npos);
  CHECK_THROWS_AS(RegistrationEngine(options, Shape{64, 64}), std::invalid_argument);
}

}  // namespace
}  // namespace livealign
