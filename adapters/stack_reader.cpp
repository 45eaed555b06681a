#include "adapters/stack_reader.hpp"

#include <algorithm>
#include <cctype>

#include "adapters/file_error.hpp"
#include "adapters/npy_frame_store.hpp"
#include "adapters/npy_reader.hpp"
#include "adapters/tiff_io.hpp"

namespace livealign {

namespace {

std::string Extension(const std::string& path) {
  const auto dot = path.find_last_of('.');
  std::string extension = dot == std::string::npos ? "" : path.substr(dot + 1);
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return extension;
}

// A stack's calibration and source, without its frames.
FrameStack CalibrationOf(const FrameStack& stack) {
  FrameStack calibration;
  calibration.source = stack.source;
  calibration.pixel_size_A = stack.pixel_size_A;
  calibration.pixel_size_y_A = stack.pixel_size_y_A;
  return calibration;
}

}  // namespace

FrameStack ReadFrameStack(const std::string& path) {
  const std::string extension = Extension(path);
  if (extension == "npy") return ReadNpy(path);
  if (extension == "tif" || extension == "tiff") return ReadTiff(path);
  throw FileError(path, "unsupported file type '." + extension + "' (expected .npy, .tif or .tiff)");
}

std::shared_ptr<FrameStore> OpenStackFrameStore(const std::string& path) {
  if (Extension(path) == "npy") return std::make_shared<NpyFrameStore>(path);
  return std::make_shared<MemoryFrameStore>();
}

std::vector<FrameStack> ReadChannelStacks(const std::string& path, int channel_axis) {
  std::vector<FrameStack> stacks;
  if (channel_axis < 0) {
    stacks.push_back(ReadFrameStack(path));
    return stacks;
  }
  if (Extension(path) != "npy") {
    throw FileError(path, "a channel axis is read from .npy files only");
  }
  return ReadNpyChannels(path, channel_axis);
}

struct StackFrameReader::Impl {
  std::optional<NpyFrameReader> npy;  // set when streaming from a file
  FrameStack stack;                   // frames handed out from memory otherwise
  FrameStack calibration;
  int frame_count = 0;
  Shape frame_shape;
  std::size_t next = 0;
};

StackFrameReader::StackFrameReader(const std::string& path) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  if (Extension(path) == "npy") {
    m.npy.emplace(path);
    m.calibration = CalibrationOf(m.npy->calibration());
    m.frame_count = m.npy->header().frame_count();
    m.frame_shape = m.npy->header().frame_shape();
    return;
  }
  *this = StackFrameReader(ReadFrameStack(path));
}

StackFrameReader::StackFrameReader(FrameStack stack) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.calibration = CalibrationOf(stack);
  m.frame_count = static_cast<int>(stack.size());
  m.frame_shape = stack.shape();
  m.stack = std::move(stack);
}

StackFrameReader::~StackFrameReader() = default;
StackFrameReader::StackFrameReader(StackFrameReader&&) noexcept = default;
StackFrameReader& StackFrameReader::operator=(StackFrameReader&&) noexcept = default;

const FrameStack& StackFrameReader::calibration() const { return impl_->calibration; }
int StackFrameReader::frame_count() const { return impl_->frame_count; }
Shape StackFrameReader::frame_shape() const { return impl_->frame_shape; }

std::optional<Frame> StackFrameReader::Next() {
  Impl& m = *impl_;
  if (m.npy) return m.npy->Next();
  if (m.next >= m.stack.frames.size()) return std::nullopt;
  return std::move(m.stack.frames[m.next++]);
}

}  // namespace livealign
