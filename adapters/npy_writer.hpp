#pragma once
// Writes frames as a float32, C-order .npy file (format version 1.0): a 2-D
// array for one frame, 3-D (frames, rows, cols) for several. Replaced
// atomically. Throws FileError when it cannot be written and
// std::invalid_argument for no frames or frames of different shapes.

#include <string>
#include <vector>

#include "core/frame.hpp"

namespace livealign {

void WriteNpy(const std::string& path, const std::vector<Frame>& frames);

}  // namespace livealign
