#pragma once
// FrameStack: the frames of one file (a single image or a series) plus what the
// file says about its calibration. Every reader in adapters/ returns one.
//
// Owns its frames (Frame is move-only, so FrameStack is too). Frames are
// float32, in file order, with header.index = position in the file and
// header.timestamp_s = NaN (files carry no acquisition times). Not
// synchronised; share a const FrameStack between threads freely.

#include <optional>
#include <string>
#include <vector>

#include "core/frame.hpp"

namespace livealign {

struct FrameStack {
  std::vector<Frame> frames;
  // Pixel size in ångström along x (columns). Applies to both axes unless
  // pixel_size_y_A is set. std::nullopt when the file has no calibration.
  std::optional<double> pixel_size_A;
  // Pixel size along y (rows), set only when the file calibrates y differently
  // from x (anisotropic pixels); otherwise std::nullopt.
  std::optional<double> pixel_size_y_A;
  // Where the frames came from (the path as given to the reader).
  std::string source;

  // Shape of the first frame ({0, 0} when empty). Every reader guarantees all
  // frames share one shape.
  Shape shape() const { return frames.empty() ? Shape{} : frames.front().shape(); }
  std::size_t size() const { return frames.size(); }
  bool empty() const { return frames.empty(); }
};

}  // namespace livealign
