#include "core/engine_quality.hpp"

#include <catch2/catch.hpp>

namespace livealign {
namespace {

struct State {
  std::vector<FrameState> frames;
  SolverReport solve;
  std::vector<Shift> peaks;
  LatticeOffsetReport offsets;
  TemporalCheckReport temporal;
  Lattice lattice = Lattice::Reduced(Shift{16, 0}, Shift{0, 16});
  bool has_lattice = false;

  explicit State(int n) : frames(n) {
    for (int k = 0; k < n; ++k) {
      frames[k].index = k;
      frames[k].timestamp_s = 0.5 * k;
      frames[k].shift = Shift{0.2 * k, -0.1 * k};
    }
    solve.consistency_rms_px = 0.05;
    solve.converged = true;
    solve.message = "converged after 4 iterations";
    offsets.offsets.assign(n, Shift{});
  }
  EngineQuality Assess() const {
    EngineQualityInputs in;
    in.frames = &frames;
    in.solve = &solve;
    in.lattice = has_lattice ? &lattice : nullptr;
    in.reciprocal_peaks = &peaks;
    in.offsets = &offsets;
    in.temporal = &temporal;
    return AssessEngineQuality(in);
  }
};

TEST_CASE("a consistent series is valid and its verdict says so", "[core][engine_quality]") {
  const EngineQuality q = State(12).Assess();
  CHECK(q.num_frames == 12);
  CHECK(q.valid);
  CHECK(q.verdict.rfind("valid: 12/12 frames consistent to 0.050 px RMS", 0) == 0);
  CHECK(q.solver_converged);
  CHECK(q.solver_message == "converged after 4 iterations");
  // The drift rate is the fitted velocity (0.4, -0.2) px/s; no Å without pixel sizes.
  REQUIRE(q.drift_rate_px_per_s.has_value());
  CHECK_THAT(q.drift_rate_px_per_s->x, Catch::Matchers::WithinAbs(0.4, 1e-9));
  CHECK_FALSE(q.drift_rate_A_per_s.has_value());
  CHECK_FALSE(q.lattice.found);
}

TEST_CASE("too many flagged frames, a poor consistency or a lattice spike make it not valid",
          "[core][engine_quality]") {
  State s(8);
  for (int k = 0; k < 3; ++k) s.frames[k].flagged = true;
  EngineQuality q = s.Assess();
  CHECK_FALSE(q.valid);
  CHECK(q.flagged_frames == 3);
  CHECK(q.verdict.find("3/8 frames flagged") != std::string::npos);

  State poor(8);
  poor.solve.consistency_rms_px = 0.8;
  q = poor.Assess();
  CHECK_FALSE(q.valid);
  CHECK(q.verdict.find("consistency RMS 0.800 px") != std::string::npos);

  State spiky(8);
  spiky.has_lattice = true;
  TemporalSpike spike;
  spike.frame = 4;
  spike.is_lattice_vector = true;
  spiky.temporal.spikes.push_back(spike);
  q = spiky.Assess();
  CHECK_FALSE(q.valid);
  CHECK(q.temporal_lattice_spikes == std::vector<int>{4});
  CHECK(q.lattice.found);
}

TEST_CASE("an unpinned stage jump on a lattice is not valid and the verdict says why",
          "[core][engine_quality]") {
  State s(10);
  s.has_lattice = true;
  s.offsets.jumps.push_back({5, Shift{24, 0}, false});
  const EngineQuality q = s.Assess();
  CHECK(q.stage_jumps == 1);
  CHECK(q.stage_jump_frames == std::vector<int>{5});
  CHECK(q.stage_jumps_unobservable == 1);
  CHECK_FALSE(q.valid);
  CHECK_FALSE(q.lattice_offset_observable);  // no frame decided by coarse evidence
  CHECK(q.verdict.find("1 stage jump(s) not observable") != std::string::npos);
}

}  // namespace
}  // namespace livealign
