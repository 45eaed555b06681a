#pragma once
// LivePrecisionSchedule: which frames the precision stage (registration
// against the leave-one-out average, core/template_registration.hpp) refines
// during a series, so that live shifts approach the final ones without
// waiting for the series end.
//
// A frame's template is the mean of the other included frames. It changes
// enough to be worth a new refinement when the number of included frames has
// grown by `growth` (as a fraction) since the frame was last refined, or when
// the frame's pairwise shift moved by more than `moved_px` since then (a
// re-solve or a lattice offset moved it). Each update refines at most
// `per_update` frames: the newest frame first (it has only its pairwise shift
// and is what the drift message reports), then never-refined frames
// (oldest first), then the stalest (largest growth ratio, then largest move).
// Frame 0 is the gauge and is never selected.
//
// Cost: with growth g a frame is refreshed about log(k)/log(1 + g) times over
// k frames, i.e. about 1/ln(1 + g) refreshes per update in the steady state
// (2.5 for g = 0.5) plus the newest frame, so per_update = 3 about keeps up;
// a backlog is worked off stalest first (the engine's budget on a long
// series is smaller: EngineOptions::live_refine_per_update_long).
//
// Growth refreshes go on however large the template already is. Its noise
// alone would not need them beyond a few hundred frames (the error variance
// against a template of n frames is about sigma^2 (1 + 1/n)), but a refresh
// also re-registers the frame in the solution's current coordinates, which
// re-solves keep moving by less than moved_px: stopping growth refreshes at
// templates of 200 frames made 1000 x 1024^2 live and final 0.0152 px
// (1.44x the bound) against 0.0125 px (1.18x), while 256^2 series of 1000-4000
// frames were unchanged.
//
//   LivePrecisionSchedule schedule(options);
//   schedule.Resize(k + 1);
//   for (int i : schedule.Select(num_included, pairwise_shifts, flagged)) refine(i) ...
//   schedule.MarkRefined(i, num_included, pairwise_shifts[i]);

#include <string>
#include <vector>

#include "core/shift.hpp"

namespace livealign {

class LivePrecisionSchedule {
 public:
  struct Options {
    int per_update = 3;     // frames refined per update; 0 = no live refinement
    double growth = 0.5;    // refresh when included frames grew by this fraction
    double moved_px = 0.05; // ... or the pairwise shift moved by more than this
    int min_frames = 3;     // no refinement before this many included frames

    bool Check(std::string* error) const;
  };

  // Throws std::invalid_argument when options.Check() fails.
  explicit LivePrecisionSchedule(Options options);

  // The series now has n frames (new ones are never refined).
  void Resize(int n);
  // Frames to refine now, in priority order, at most `budget` (per_update
  // when < 0; fewer when none is due). pairwise_shifts and flagged have one
  // entry per frame.
  std::vector<int> Select(int num_included, const std::vector<Shift>& pairwise_shifts,
                          const std::vector<bool>& flagged, int budget = -1) const;
  // Frames the series end must still refine on a long series: those never
  // refined (except frame 0, the gauge, and flagged frames); no budget.
  std::vector<int> SelectNeverRefined(int num_included, const std::vector<bool>& flagged) const;
  // Records that frame i was refined against a template of num_included frames
  // while its pairwise shift was `pairwise`.
  void MarkRefined(int i, int num_included, Shift pairwise);
  // Frames refined at least once; refinements done so far.
  int num_refined_frames() const;
  long num_refinements() const { return num_refinements_; }

 private:
  struct State {
    int included_at_refine = 0;  // 0: never refined
    Shift pairwise_at_refine;
  };
  Options options_;
  std::vector<State> states_;
  long num_refinements_ = 0;
};

}  // namespace livealign
