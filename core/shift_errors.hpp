#pragma once
// Accuracy of estimated shifts against a ground truth (the simulator's), after
// removing the mean offset: the absolute origin of a registration is a free
// gauge, so only the frames' positions relative to each other are compared.
// Used by `livealign bench` and the accuracy tests.

#include <vector>

#include "core/shift.hpp"

namespace livealign {

struct ShiftErrors {
  int frames = 0;       // frames compared
  double rms_x_px = 0;  // per-axis RMS error
  double rms_y_px = 0;
  double rms_px = 0;    // RMS of the error vector's length
  double max_px = 0;    // largest per-frame error length
};

// Compares estimated[i] with truth[i] over the frames not marked in `skip`
// (e.g. flagged frames; may be empty for none). All-NaN-free inputs assumed.
// Throws std::invalid_argument when the sizes differ.
ShiftErrors CompareShifts(const std::vector<Shift>& estimated, const std::vector<Shift>& truth,
                          const std::vector<bool>& skip = {});

}  // namespace livealign
