#pragma once
// Small frames whose every pixel differs from every other frame's, for tests
// that check frames come back exactly (files, stores).

#include <utility>
#include <vector>

#include "core/frame.hpp"

namespace livealign::testing {

// `count` frames of `shape`; pixel i of frame k is 0.25 i + 10 k (exact in
// float32 for frames of up to 2^22 pixels).
inline std::vector<Frame> RampFrames(int count, Shape shape) {
  std::vector<Frame> frames;
  for (int k = 0; k < count; ++k) {
    Frame frame(shape);
    for (int i = 0; i < shape.Pixels(); ++i) frame.data()[i] = 0.25f * i + 10.0f * k;
    frames.push_back(std::move(frame));
  }
  return frames;
}

}  // namespace livealign::testing
