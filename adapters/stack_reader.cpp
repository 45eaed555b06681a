#include "adapters/stack_reader.hpp"

#include <algorithm>
#include <cctype>

#include "adapters/file_error.hpp"
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

}  // namespace

FrameStack ReadFrameStack(const std::string& path) {
  const std::string extension = Extension(path);
  if (extension == "npy") return ReadNpy(path);
  if (extension == "tif" || extension == "tiff") return ReadTiff(path);
  throw FileError(path, "unsupported file type '." + extension + "' (expected .npy, .tif or .tiff)");
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

}  // namespace livealign
