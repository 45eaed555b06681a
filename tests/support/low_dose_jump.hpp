#pragma once
// The low-dose stage jump the run-correlation tests share: the simulated
// perovskite (16 px cell) in 256^2 frames at 0.2 counts/px, drifting
// 0.4 px a frame, with a jump of `spacings` lattice spacings before frame
// `at`, in the direction (0.8, 0.6) that `livealign bench --jump-at` uses.

#include "core/simulator.hpp"

namespace livealign::testing {

inline SimulatorOptions LowDoseJump(int at, double spacings) {
  SimulatorOptions sim;
  sim.shape = Shape{256, 256};
  sim.dose_counts_per_px = 0.2;
  sim.initial_velocity_px_per_frame = SimulatorOptions::DefaultDriftAt(0.4);
  const double jump_px = spacings * sim.lattice_spacing_px;
  sim.jumps.push_back({at, Shift{0.8 * jump_px, 0.6 * jump_px}});
  return sim;
}

}  // namespace livealign::testing
