#pragma once
// Every tunable of the registration engine in one flat struct. Each field is
// one key of config/livealign.ini and one --option of `livealign register`,
// `serve` and `bench`, under the same name with '-' for '_' (weight_sigma is
// --weight-sigma and `weight-sigma = ...` in the ini file);
// tools/engine_option_binding.cpp maps them, so defaults are stated once: here.

#include <string>

namespace livealign {

struct EngineOptions {
  // --- pre-processing and correlation (core/correlator.hpp) ---
  // Real-space edge window before the FFT: "none", "hann" or "tukey".
  std::string window = "tukey";
  // Tukey taper fraction: 0 = box, 1 = Hann. 0.25 keeps most of the frame.
  double tukey_alpha = 0.25;
  // Fourier weight: "none", "gaussian", "lowpass" or "bandpass". The weight is
  // exactly 0 beyond its band limit, and spectra are cached cropped to that
  // band: a narrower band is faster and smaller, a wider one keeps more detail.
  std::string weight = "gaussian";
  // Gaussian width in cycles/px (Nyquist = 0.5).
  double weight_sigma = 0.05;
  // Band limit of gaussian/lowpass, cycles/px; also the high edge of bandpass.
  double weight_cutoff = 0.125;
  // Low edge of bandpass, cycles/px (removes slow background and scan ramps).
  double weight_low = 0.01;
  // "cc" (cross-correlation, robust at low dose), "pc" (phase: sharp but
  // noise-sensitive) or "hybrid" (|m|^p e^{i arg m}).
  std::string correlation = "cc";
  // Exponent of the hybrid correlation: 1 = cc, 0 = pc, 0.5 = mutual.
  double hybrid_p = 0.8;
  // Largest |shift| per axis searched for, px; 0 = a quarter of the frame.
  double max_shift_px = 0;
  // Distinct correlation maxima kept per pair for the solver to choose from.
  int top_k = 5;
  // Oversampling of the band-limited correlation map before the peak search.
  // 1: the map is sampled every N/M px (4 px at the default band), cheapest;
  // on crystals the brightest sample is then often a neighbouring lattice
  // translate, which the solver's snapping and the lattice-offset pinning
  // repair. 2: a 2x finer map (4x larger inverse FFT) on which the refined
  // best candidate is the true translate (measured 100 % vs 31 % of pairs on
  // the simulated perovskite), at about 2.5x the per-pair cost. The final
  // shifts were equally accurate with both (bench --size 512 --frames 40), so
  // the default is the cheap map.
  int oversample = 1;
  // Candidates refined to full precision and re-ranked per pair.
  int refine_candidates = 1;
  // Once a lattice is known and drift is smooth, search each new pair only
  // within a fraction of a lattice spacing of the drift prediction
  // (algorithms.md section 4.1): hops become impossible and the solver has
  // nothing to snap. A sudden stage jump is detected (the prediction window
  // holds no real peak) and that frame is searched without the window.
  bool predicted_search = true;

  // --- consistency solver (core/consistency_solver.hpp) ---
  // Residual scale floor, px: pairs within a few times this of the consistent
  // solution are inliers even when the data are very clean.
  double inlier_floor_px = 0.5;
  // Upper bound on robust-solver iterations per update (never hangs).
  int solver_max_iterations = 30;
  // A full re-solve from scratch every this many frames undoes early wrong
  // decisions; in between the solve is warm-started.
  int full_resolve_every = 10;

  // --- crystals (issue 4) ---
  // Estimate the lattice from the running average and snap lattice-vector hops.
  bool lattice_snapping = true;

  // --- precision stage ---
  // Refine each frame against the average of all other frames (full band);
  // brings precision towards the single-frame Poisson limit.
  bool refine_against_template = true;

  // --- quality figures and stop-when-good (core/quality.hpp) ---
  // The acquisition is "good" when every enabled target is met.
  // Target resolution (Fourier ring correlation of the even/odd half-set
  // averages at 1/7), Å; needs the pixel size; 0 = not a target.
  double target_resolution_A = 0;
  // Target image SNR of the average (from the half-set FRC); 0 = not a target.
  double target_snr = 0;
  // Stop (without claiming good) after this many frames; 0 = no limit.
  int max_frames = 0;
  // Good also requires the drift to have settled.
  bool require_drift_settled = false;
  // Drift counts as settled when its speed stays below this, Å/s (needs the
  // pixel size and timestamps; otherwise settled_px_per_frame applies) ...
  double settled_A_per_s = 0;
  double settled_px_per_frame = 0.05;
  // ... over this many frames (the rate is a least-squares fit over them).
  int drift_window_frames = 10;

  // --- calibration ---
  // Pixel size in Å along x (columns) and y (rows); 0 = unknown.
  double pixel_size_x_A = 0;
  double pixel_size_y_A = 0;

  // --- execution ---
  // Worker threads for pair correlations; 0 = all cores.
  int threads = 0;

  // --- long sessions ---
  // A pair is correlated only when the two frames' predicted overlap (the
  // earlier frame's current shift against the new frame's constant-velocity
  // prediction) is at least this fraction of the frame area; the others are
  // "no overlap" in the matrices. The consecutive pair is always correlated,
  // so the chain of overlapping pairs places every frame. 0.75: partially
  // overlapping pairs carry a window-envelope bias towards zero shift that
  // the first-order correction leaves at ~1 % of |shift| at half overlap;
  // on a simulated 400-frame 128^2 series drifting 1.1 frame widths the live
  // RMS error was 0.37 px at 0.5, 0.18 px at 0.75 and 0.44 px at 0.9 (too few
  // pairs). It also bounds the pairs per frame to the frames within ~0.13
  // frame widths of drift. 0 correlates every pair.
  double min_overlap_fraction = 0.75;
  // Full re-solves from scratch happen at k = full_resolve_every, then each at
  // max(k + full_resolve_every, full_resolve_growth * k) frames (geometric:
  // their cost amortises to O(pairs) per frame). Once the series has more
  // pairs than a warm-started global solve handles in a few ms, they run on a
  // snapshot in a background thread and the result is applied when done.
  double full_resolve_growth = 1.25;

  // Returns false and sets *error (one line naming the option) when a value is
  // out of range or a name is unknown.
  bool Check(std::string* error) const;
};

}  // namespace livealign
