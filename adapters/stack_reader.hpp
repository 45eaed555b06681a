#pragma once
// Reads a frame stack from a file, choosing the reader by extension:
// .npy (adapters/npy_reader.hpp) or .tif/.tiff (adapters/tiff_io.hpp).
// Throws FileError for an unknown extension or a bad file.

#include <string>
#include <vector>

#include "adapters/frame_stack.hpp"

namespace livealign {

FrameStack ReadFrameStack(const std::string& path);

// Several detectors: the stacks of every channel of a file with a channel axis
// (adapters/npy_reader.hpp ReadNpyChannels; .npy only), or, with
// channel_axis < 0, the one stack ReadFrameStack reads. Throws FileError.
std::vector<FrameStack> ReadChannelStacks(const std::string& path, int channel_axis);

}  // namespace livealign
