#include "core/precision_stage.hpp"

#include <algorithm>

#include <catch2/catch.hpp>

#include "core/correlator.hpp"
#include "core/engine_options.hpp"
#include "core/simulator.hpp"

namespace livealign {
namespace {

struct Series {
  ShiftedAverager averager;
  std::vector<Shift> truth;
};

// 128^2 frames at 2 counts/px.
SimulatorOptions SmallFrames() {
  SimulatorOptions sim;
  sim.shape = Shape{128, 128};
  sim.dose_counts_per_px = 2.0;
  return sim;
}

// n simulated frames in an averager at their true shifts (frame 0 = 0).
void Fill(int n, Series* s, const SimulatorOptions& sim = SmallFrames()) {
  Simulator microscope(sim, 9);
  for (int k = 0; k < n; ++k) {
    Frame frame = microscope.NextFrame();
    s->truth.push_back(microscope.TrueShift(k) - microscope.TrueShift(0));
    s->averager.AddFrame(std::move(frame), s->truth.back());
  }
}

TEST_CASE("the final pass brings a frame's shift back towards the truth", "[core][precision_stage]") {
  Series s;
  Fill(12, &s);
  const int n = 12;
  std::vector<Shift> pairwise = s.truth;
  pairwise[5] += Shift{0.4, -0.3};  // a pairwise error the template corrects
  s.averager.SetShift(5, pairwise[5], true);
  std::vector<bool> flagged(n, false);
  flagged[8] = true;
  PrecisionStage stage(Shape{128, 128}, EngineOptions{}, 1);
  ThreadPool pool(1);
  REQUIRE(stage.RefineAll(s.averager, pairwise, flagged, pool));
  const double before = (pairwise[5] - s.truth[5]).Norm();
  const double after = (stage.Published(5, pairwise[5]) - s.truth[5]).Norm();
  CAPTURE(before, after);
  CHECK(after < 0.5 * before);
  CHECK(stage.Published(0, pairwise[0]) == Shift{});  // the gauge
  // A flagged frame is not refined: its pairwise shift is published.
  CHECK(stage.Published(8, pairwise[8]) == pairwise[8]);
  // A pairwise shift that moved further than the trusted step wins.
  const Shift moved = pairwise[5] + Shift{2 * PrecisionStage::MaxStepPx(), 0};
  CHECK(stage.Published(5, moved) == moved);
}

TEST_CASE("a frame at a fractional shift is refined without the template's interpolation bias",
          "[core][precision_stage]") {
  // Noise-free frames at their true shifts, whose fractional parts (x) cycle
  // through 0, 1/4, 1/2 and 3/4 of a pixel, over a drift of 2.75 px so the
  // template covers almost every frame's whole footprint: the refinement
  // must return the truth. Moving the template into a frame's coordinates by
  // the fraction (bicubic) shifted the lattice's harmonics by the kernel's
  // phase error: 5.3e-3 px at worst here. Now 0.8e-3 px, the rest from the
  // template's own mix of resampled frames.
  SimulatorOptions sim;
  sim.shape = Shape{256, 256};
  sim.poisson_noise = false;
  sim.random_acceleration_px = 0;
  sim.initial_velocity_px_per_frame = Shift{0.25, 0.0};
  const int n = 12;
  Series s;
  Fill(n, &s, sim);
  PrecisionStage stage(sim.shape, EngineOptions{}, 1);
  ThreadPool pool(1);
  REQUIRE(stage.RefineAll(s.averager, s.truth, std::vector<bool>(n, false), pool));
  double worst = 0;
  for (int k = 0; k < n; ++k) worst = std::max(worst, (stage.Published(k, s.truth[k]) - s.truth[k]).Norm());
  CAPTURE(worst);
  CHECK(worst < 2e-3);
}

TEST_CASE("the live step refines at most its budget and nothing when disabled",
          "[core][precision_stage]") {
  Series s;
  Fill(8, &s);
  const std::vector<bool> flagged(8, false);
  ThreadPool pool(1);
  EngineOptions options;
  options.live_refine_per_update = 2;
  PrecisionStage stage(Shape{128, 128}, options, 1);
  CHECK(stage.RefineLive(s.averager, s.truth, flagged, pool) == 2);
  CHECK(stage.RefineLive(s.averager, s.truth, flagged, pool, 1) == 1);
  options.refine_against_template = false;
  PrecisionStage off(Shape{128, 128}, options, 1);
  CHECK(off.RefineLive(s.averager, s.truth, flagged, pool) == 0);
  CHECK_FALSE(off.RefineAll(s.averager, s.truth, flagged, pool));
  CHECK(off.Published(3, Shift{1, 2}) == Shift{1, 2});
}

TEST_CASE("kept frame spectra, tapped from the correlator's transform, refine as computed ones do",
          "[core][precision_stage]") {
  Series s;
  const int n = 10;
  Fill(n, &s);
  std::vector<Shift> pairwise = s.truth;
  for (int i = 1; i < n; ++i) pairwise[i] += Shift{0.05 * (i % 3), -0.04 * (i % 2)};
  for (int i = 0; i < n; ++i) s.averager.SetShift(i, pairwise[i], true);
  const std::vector<bool> flagged(n, false);
  ThreadPool pool(2);
  const Shape shape{128, 128};

  EngineOptions none;
  none.precision_spectra_cache_mib = 0;
  PrecisionStage computed(shape, none, pool.NumWorkers());
  CHECK_FALSE(computed.WantsFrameSpectrum());

  // Room for 3 spectra of the 64 x 33 band (16,896 bytes each).
  EngineOptions three;
  three.precision_spectra_cache_mib = 3.5 * 16896 / 1048576.0;
  PrecisionStage kept(shape, three, pool.NumWorkers());
  // The engine default window is the correlator default (engine_options.def).
  Correlator correlator(CorrelatorOptions{}, shape, 1);
  for (int i = 0; i < n; ++i) {
    const bool wanted = kept.WantsFrameSpectrum();
    CHECK(wanted == (i < 3));
    std::unique_ptr<const BandSpectrum> spectrum;
    Correlator::SpectrumTap tap;
    tap.columns = kept.FrameSpectrumColumns();
    tap.read = [&](const std::complex<float>* values, int cols) {
      spectrum = std::make_unique<const BandSpectrum>(kept.FrameSpectrumFrom(values, cols));
    };
    correlator.Prepare(s.averager.frame(i)->view(), &tap);
    REQUIRE(spectrum != nullptr);
    kept.AddFrameSpectrum(i, std::move(spectrum));  // dropped once full
  }
  CHECK(kept.FrameSpectraBytes() == 3 * 16896);

  REQUIRE(computed.RefineAll(s.averager, pairwise, flagged, pool));
  REQUIRE(kept.RefineAll(s.averager, pairwise, flagged, pool));
  for (int i = 0; i < n; ++i) {
    CAPTURE(i);
    const Shift a = computed.Published(i, pairwise[i]);
    const Shift b = kept.Published(i, pairwise[i]);
    if (i > 0) CHECK(a != pairwise[i]);  // refined (frame 0 is the gauge)
    CHECK((a - b).Norm() < 1e-4);
  }
}

}  // namespace
}  // namespace livealign
