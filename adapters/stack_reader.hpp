#pragma once
// Reads a frame stack from a file, choosing the reader by extension:
// .npy (adapters/npy_reader.hpp) or .tif/.tiff (adapters/tiff_io.hpp).
// Throws FileError for an unknown extension or a bad file.

#include <string>

#include "adapters/frame_stack.hpp"

namespace livealign {

FrameStack ReadFrameStack(const std::string& path);

}  // namespace livealign
