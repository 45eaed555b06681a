#include "adapters/stack_reader.hpp"

#include <algorithm>
#include <cctype>

#include "adapters/file_error.hpp"
#include "adapters/npy_reader.hpp"
#include "adapters/tiff_io.hpp"

namespace livealign {

FrameStack ReadFrameStack(const std::string& path) {
  const auto dot = path.find_last_of('.');
  std::string extension = dot == std::string::npos ? "" : path.substr(dot + 1);
  std::transform(extension.begin(), extension.end(), extension.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (extension == "npy") return ReadNpy(path);
  if (extension == "tif" || extension == "tiff") return ReadTiff(path);
  throw FileError(path, "unsupported file type '." + extension + "' (expected .npy, .tif or .tiff)");
}

}  // namespace livealign
