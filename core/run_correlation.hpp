#pragma once
// The correlation of two runs of frames, each already summed at its frames'
// positions into a content image and a window-weight image on one cyclic
// grid (Correlator::CoarseRunCorrelation makes them from the coarse bands).
//
// Why weights: a windowed frame is its content times a window fixed to the
// frame, and correlating windowed frames multiplies the content's
// correlation by the window's overlap, whose slope pulls a broad peak toward
// zero displacement by pixels. Divided by its summed weight, a run's sum is
// its content's mean wherever the run covers the specimen well, free of the
// window. Two such means are compared over the region both cover, after a
// best-fitting plane is removed from each: a thickness or illumination ramp
// is the same wherever it is, and would make every translate look alike.
//
// Pure function of its inputs; thread-compatible.

#include <vector>

#include "core/frame.hpp"
#include "core/shift.hpp"

namespace livealign {

// A run's sum on the grid: row-major, grid.rows x grid.cols floats each.
struct RunImages {
  const float* content = nullptr;
  const float* weight = nullptr;
};

// For each offset v (pixels; px_per_cell pixels per grid cell along x and
// y), the correlation coefficient of first's mean and second's mean read at
// x + v (bilinear on the cyclic grid), over the cells where each run's
// weight exceeds half its peak, planes removed. 0 for an offset whose
// common region is under 1/16 of the grid, or when a weight is nowhere
// positive. The planes are fitted in the grid's own coordinates, so the runs
// should cover its middle, as frames at the runs' common centre do, and not
// straddle its edges.
std::vector<double> RunCorrelationAtOffsets(const RunImages& first, const RunImages& second, Shape grid,
                                            Shift px_per_cell, const std::vector<Shift>& offsets);

}  // namespace livealign
