#pragma once
// Reads a frame stack from a file, choosing the reader by extension:
// .npy (adapters/npy_reader.hpp) or .tif/.tiff (adapters/tiff_io.hpp).
// Throws FileError for an unknown extension or a bad file.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "adapters/frame_stack.hpp"
#include "core/frame_store.hpp"

namespace livealign {

FrameStack ReadFrameStack(const std::string& path);

// Several detectors: the stacks of every channel of a file with a channel axis
// (adapters/npy_reader.hpp ReadNpyChannels; .npy only), or, with
// channel_axis < 0, the one stack ReadFrameStack reads. Throws FileError.
std::vector<FrameStack> ReadChannelStacks(const std::string& path, int channel_axis);

// One stack's frames one at a time, so that registration starts on frame 0
// while the rest is still read: an .npy file is streamed (NpyFrameReader), a
// TIFF is read whole on opening, an in-memory stack is handed out. Not
// synchronised (one thread reads).
class StackFrameReader {
 public:
  // Throws FileError as ReadFrameStack (for .npy: when opening, and from Next
  // when the file ends early).
  explicit StackFrameReader(const std::string& path);
  explicit StackFrameReader(FrameStack stack);
  ~StackFrameReader();
  StackFrameReader(StackFrameReader&&) noexcept;
  StackFrameReader& operator=(StackFrameReader&&) noexcept;

  // The calibration and source, as a FrameStack with no frames.
  const FrameStack& calibration() const;
  int frame_count() const;
  Shape frame_shape() const;
  // The next frame, or std::nullopt after the last.
  std::optional<Frame> Next();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Where a registration of the stack at `path` keeps its frames: for an .npy
// file the file itself (adapters/npy_frame_store.hpp: frames are read back
// at their offsets, so RAM holds only the engine's frame cache); for any
// other file, which is read whole anyway, RAM (MemoryFrameStore). Throws
// FileError as the readers.
std::shared_ptr<FrameStore> OpenStackFrameStore(const std::string& path);

}  // namespace livealign
