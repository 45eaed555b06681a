#pragma once
// The registration's quality figures and its verdict, assembled once per
// update from what the solver, the lattice tracker and the temporal check
// found (EngineQuality, core/registration_result.hpp).
//
// The verdict: valid when most frames are registered (at most a quarter
// flagged), the inlier set is consistent to well under a pixel (RMS < 0.5
// px), no frame jumps by a lattice vector against both time neighbours, and
// every stage jump's lattice offset was pinned by image content (continuity
// cannot carry it across a jump). The verdict text states the evidence.
//
// Pure function of its inputs; thread-compatible.

#include <vector>

#include "core/consistency_solver.hpp"
#include "core/lattice.hpp"
#include "core/lattice_offsets.hpp"
#include "core/registration_result.hpp"
#include "core/quality.hpp"
#include "core/temporal_check.hpp"

namespace livealign {

// Views of the engine's state; every pointer but `lattice` is required.
struct EngineQualityInputs {
  const std::vector<FrameState>* frames = nullptr;  // published shifts and flags
  const SolverReport* solve = nullptr;              // the last solve
  const Lattice* lattice = nullptr;                 // null: no lattice known
  const std::vector<Shift>* reciprocal_peaks = nullptr;
  const LatticeOffsetReport* offsets = nullptr;
  const TemporalCheckReport* temporal = nullptr;
  int pairs_snapped = 0;  // in published coordinates (LatticeTracker::pairs_snapped)
  int drift_window_frames = DriftOptions{}.window_frames;  // EngineOptions::drift_window_frames
  double pixel_size_x_A = 0;     // <= 0: unknown
  double pixel_size_y_A = 0;
};

EngineQuality AssessEngineQuality(const EngineQualityInputs& inputs);

}  // namespace livealign
