// The image-quality assembly (core/image_quality_report.hpp), directly and
// through the engine: resolution, SNR, information transfer, drift settling
// and stop-when-good on simulated series.
#include <catch2/catch.hpp>

#include <random>

#include "core/image_quality_report.hpp"
#include "core/quality.hpp"
#include "core/registration_engine.hpp"
#include "core/simulator.hpp"

namespace livealign {
namespace {

EngineOptions Calibrated(double pixel_size_A) {
  EngineOptions o;
  o.pixel_size_x_A = pixel_size_A;
  o.pixel_size_y_A = pixel_size_A;
  return o;
}

// A simulated microscope whose stage moves at a constant velocity.
SimulatorOptions ConstantDrift(Shape shape, double dose_counts_per_px, Shift velocity_px_per_frame) {
  SimulatorOptions sim;
  sim.shape = shape;
  sim.dose_counts_per_px = dose_counts_per_px;
  sim.initial_velocity_px_per_frame = velocity_px_per_frame;
  sim.random_acceleration_px = 0;
  return sim;
}

TEST_CASE("the frames needed for 1/7 grow the half-set SSNR to 1/6", "[core][image_quality]") {
  // FRC c = 0.5: half-set SSNR 1, needs 1/6 -> already there.
  CHECK(FramesToReachOneSeventh(0.5, 10) == 10);
  // c = 1/13: SSNR 1/12, half of 1/6 -> twice the frames.
  CHECK(FramesToReachOneSeventh(1.0 / 13.0, 10) == 20);
  CHECK_FALSE(FramesToReachOneSeventh(0.0, 10).has_value());
  CHECK_FALSE(FramesToReachOneSeventh(1.0, 10).has_value());
}

TEST_CASE("without frames the image quality claims nothing", "[core][image_quality]") {
  ShiftedAverager averager;
  ThreadPool pool(1);
  EngineOptions options;
  options.target_snr = 5;
  const ImageQualityReport r = AssessImageQuality(averager, {}, options, pool);
  CHECK(r.num_frames == 0);
  CHECK(r.frc_status == "no_signal");
  CHECK_FALSE(r.resolution_cycles_per_px.has_value());
  CHECK_FALSE(r.good);
  CHECK(r.drift_trend == "unknown");
}

TEST_CASE("a region too large to compute the spectral figures side by side gives the same figures",
          "[core][image_quality]") {
  // 1100^2 frames: a best-covered region beyond the 1024^2 up to which the
  // FRC and the two information transfers run in parallel, so here they run
  // one after another; each must equal its building block's result.
  Simulator microscope(ConstantDrift(Shape{1100, 1100}, 0.5, Shift{0, 0}), 9);
  ShiftedAverager averager;
  std::vector<FrameState> frames;
  for (int k = 0; k < 4; ++k) {
    averager.AddFrame(microscope.NextFrame(), Shift{0, 0});
    FrameState state;
    state.index = k;
    state.timestamp_s = k;
    frames.push_back(state);
  }
  ThreadPool pool(2);
  const ImageQualityReport r = AssessImageQuality(averager, frames, EngineOptions{}, pool);
  Frame best, even, odd;
  const AverageImage::Rect region = averager.BestCoveredMean(&best);
  REQUIRE(static_cast<long>(region.rows()) * region.cols() > 1024L * 1024L);
  REQUIRE(averager.HalfSetMeanOver(0, region, &even));
  REQUIRE(averager.HalfSetMeanOver(1, region, &odd));
  const FrcReport frc = FourierRingCorrelation(even, odd);
  REQUIRE(r.frc.size() == frc.rings.size());
  for (std::size_t i = 0; i < frc.rings.size(); ++i) REQUIRE(r.frc[i] == frc.rings[i].frc);
  REQUIRE(r.snr == frc.image_snr);
  const InformationTransferReport average = InformationTransfer(best);
  const InformationTransferReport single = InformationTransfer(*averager.frame(3));
  REQUIRE(average.found);
  REQUIRE(r.info_transfer_cycles_per_px == average.frequency_cycles_per_px);
  REQUIRE(single.found == r.single_frame_info_transfer_cycles_per_px.has_value());
  if (single.found) REQUIRE(*r.single_frame_info_transfer_cycles_per_px == single.frequency_cycles_per_px);
}

TEST_CASE("the average resolves what a single low-dose frame cannot", "[core][image_quality]") {
  SimulatorOptions sim;  // 512^2 perovskite, 16 px cell (3.905 Å at 0.244 Å/px)
  sim.dose_counts_per_px = 0.2;
  Simulator microscope(sim, 4);
  RegistrationEngine engine(Calibrated(0.244), sim.shape);
  std::optional<double> resolution_at_8;
  for (int k = 0; k < 40; ++k) {
    engine.AddFrame(microscope.NextFrame());
    if (k == 7) resolution_at_8 = engine.ImageQuality().resolution_cycles_per_px;
  }
  engine.Finish();
  const ImageQualityReport q = engine.ImageQuality();
  CAPTURE(q.frc_status, q.snr, q.reason);
  REQUIRE(q.resolution_cycles_per_px.has_value());
  REQUIRE(q.resolution_A.has_value());
  REQUIRE(q.info_transfer_A.has_value());
  CAPTURE(*q.resolution_cycles_per_px, *q.resolution_A, *q.info_transfer_A);
  // More frames, finer resolution.
  REQUIRE(resolution_at_8.has_value());
  CHECK(*q.resolution_cycles_per_px > *resolution_at_8);
  // The average transfers information to a higher frequency than one frame.
  const double single = q.single_frame_info_transfer_cycles_per_px.value_or(0.0);
  CAPTURE(single);
  CHECK(*q.info_transfer_cycles_per_px > single);
  CHECK(q.frc.size() == q.frc_frequency_cycles_per_px.size());
  CHECK(q.snr > 0);
}

TEST_CASE("frames of pure noise claim no resolution", "[core][image_quality]") {
  const Shape shape{256, 256};
  RegistrationEngine engine(Calibrated(0.2), shape);
  std::mt19937 rng(3);
  std::poisson_distribution<int> poisson(0.5);
  for (int k = 0; k < 12; ++k) {
    Frame frame(shape);
    for (std::int64_t i = 0; i < shape.Pixels(); ++i) frame.data()[i] = static_cast<float>(poisson(rng));
    frame.mutable_header().index = k;
    engine.AddFrame(std::move(frame));
  }
  const ImageQualityReport q = engine.ImageQuality();
  CAPTURE(q.frc_status, q.snr);
  CHECK(q.frc_status == "no_signal");
  CHECK_FALSE(q.resolution_cycles_per_px.has_value());
  CHECK_FALSE(q.resolution_A.has_value());
  CHECK_FALSE(q.good);
}

TEST_CASE("good flips when the configured SNR target is reached", "[core][image_quality]") {
  SimulatorOptions sim;
  sim.shape = Shape{256, 256};
  sim.dose_counts_per_px = 0.3;
  Simulator microscope(sim, 9);
  EngineOptions options = Calibrated(0.244);
  // Between the SNR of a few frames and that of thirty.
  RegistrationEngine probe(options, sim.shape);
  Simulator probe_microscope(sim, 9);
  for (int k = 0; k < 30; ++k) probe.AddFrame(probe_microscope.NextFrame());
  const double snr_30 = probe.ImageQuality().snr;
  REQUIRE(snr_30 > 0);
  options.target_snr = 0.5 * snr_30;

  RegistrationEngine engine(options, sim.shape);
  int flipped_at = -1;
  for (int k = 0; k < 30; ++k) {
    engine.AddFrame(microscope.NextFrame());
    const ImageQualityReport q = engine.ImageQuality();
    if (flipped_at < 0 && q.good) {
      flipped_at = k + 1;
      CHECK(q.reason.find("SNR") != std::string::npos);
    }
    if (flipped_at < 0) CHECK_FALSE(q.stop);
  }
  CAPTURE(snr_30, flipped_at);
  CHECK(flipped_at > 2);
  CHECK(flipped_at < 30);
}

TEST_CASE("drift that stops halfway is reported settled from about that frame",
          "[core][image_quality]") {
  SimulatorOptions sim = ConstantDrift(Shape{256, 256}, 1.0, Shift{0.6, -0.4});
  sim.drift_stops_at_frame = 20;
  Simulator microscope(sim, 2);
  EngineOptions options = Calibrated(0.244);
  options.require_drift_settled = true;
  RegistrationEngine engine(options, sim.shape);
  bool settled_before_stop = false;
  for (int k = 0; k < 40; ++k) {
    engine.AddFrame(microscope.NextFrame());
    if (k < 20 && engine.ImageQuality().drift_settled) settled_before_stop = true;
  }
  const ImageQualityReport q = engine.ImageQuality();
  CAPTURE(q.drift_settled_since_frame, q.drift_trend);
  CHECK_FALSE(settled_before_stop);
  CHECK(q.drift_settled);
  CHECK(q.drift_settled_since_frame >= 17);
  CHECK(q.drift_settled_since_frame <= 24);
  REQUIRE(q.drift_A_per_s.has_value());
  CHECK(q.drift_A_per_s->Norm() < 0.05 * 0.244 / 0.5 * 2);
}

TEST_CASE("a resolution target needs the pixel size, and anisotropic pixels convert per axis",
          "[core][image_quality]") {
  SimulatorOptions sim;
  sim.shape = Shape{256, 256};
  sim.dose_counts_per_px = 0.5;
  Simulator microscope(sim, 12);
  EngineOptions uncalibrated;
  uncalibrated.target_resolution_A = 100;  // trivially reached if it could be measured
  RegistrationEngine engine(uncalibrated, sim.shape);
  EngineOptions anisotropic;
  anisotropic.pixel_size_x_A = 0.2;
  anisotropic.pixel_size_y_A = 0.3;
  RegistrationEngine calibrated(anisotropic, sim.shape);
  for (int k = 0; k < 12; ++k) {
    Frame frame = microscope.NextFrame();
    calibrated.AddFrame(frame.Clone());
    engine.AddFrame(std::move(frame));
  }
  const ImageQualityReport q = engine.ImageQuality();
  CHECK_FALSE(q.good);
  CHECK(q.reason.find("pixel size") != std::string::npos);
  const ImageQualityReport a = calibrated.ImageQuality();
  REQUIRE(a.resolution_cycles_per_px.has_value());
  REQUIRE(a.resolution_A.has_value());
  // A ring at f cycles/px has period 0.2/f Å along x and 0.3/f along y;
  // the reported figure is their mean.
  CHECK_THAT(*a.resolution_A,
             Catch::Matchers::WithinRel(0.5 * (0.2 + 0.3) / *a.resolution_cycles_per_px, 1e-6));
}

TEST_CASE("image quality stays defined when the drift carries the view off frame 0",
          "[core][image_quality][mosaic]") {
  // 3 px/frame over 48 frames of 128^2: the last frames lie more than a frame
  // width from frame 0, so no region is covered by every frame. Quality is
  // measured on the mosaic's best-covered region instead.
  const SimulatorOptions sim = ConstantDrift(Shape{128, 128}, 2.0, Shift{3.0, 0.4});
  Simulator microscope(sim, 6);
  EngineOptions options = Calibrated(0.244);
  RegistrationEngine engine(options, sim.shape);
  for (int k = 0; k < 48; ++k) engine.AddFrame(microscope.NextFrame());
  engine.Finish();
  const AverageImage average = engine.Average();
  CAPTURE(average.valid, average.mosaic_extent, average.best_covered);
  REQUIRE(average.valid.Empty());
  REQUIRE(average.mosaic_extent.cols() > 2 * sim.shape.cols);
  REQUIRE(average.best_covered.rows() >= 64);
  REQUIRE(average.best_covered.cols() >= 32);
  const ImageQualityReport q = engine.ImageQuality();
  CAPTURE(q.frc_status, q.snr, q.reason);
  REQUIRE(q.frc_status != "no_signal");
  REQUIRE(q.resolution_cycles_per_px.has_value());
  CHECK(q.snr > 0);
  CHECK(q.info_transfer_cycles_per_px.has_value());
}

}  // namespace
}  // namespace livealign
