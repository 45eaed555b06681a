#pragma once
// PNG output (libpng's simplified API): 8-bit greyscale pictures of float
// frames with percentile contrast, and 8-bit RGB pictures (plots, matrices).
// Encoded in libpng's fast mode: these are previews, not archives.
// Files are written atomically (write-then-rename, see atomic_file.hpp); the
// Encode* variants return the PNG bytes for serving over HTTP.
//
// Stateless and thread-safe.

#include <cstdint>
#include <string>
#include <vector>

#include "adapters/atomic_file.hpp"
#include "adapters/rgb_image.hpp"
#include "core/frame.hpp"

namespace livealign {

struct GreyPngOptions {
  // Values at or below the low percentile map to 0, at or above the high one
  // to 255, linearly between. 0.5/99.5 ignores hot/dead pixels and a few
  // saturated columns while keeping nearly the full range of a STEM image.
  double low_percentile = 0.5;
  double high_percentile = 99.5;

  // Requires 0 <= low < high <= 100.
  bool Check(std::string* error) const;
};

// The display range actually used: value `low` -> 0, `high` -> 255.
struct ContrastRange {
  double low = 0;
  double high = 0;
};

// Percentiles of the finite pixels (nearest rank). Non-finite pixels are
// ignored; a frame without finite pixels gives {0, 0}.
// Throws std::invalid_argument for an empty frame or invalid options.
ContrastRange PercentileRange(FrameView frame, const GreyPngOptions& options = {});

// Maps each pixel linearly from `range` to 0..255 (clamped, rounded). NaN maps
// to 0. A degenerate range (high <= low, e.g. a constant frame) maps all to 0.
std::vector<std::uint8_t> ScaleToGrey8(FrameView frame, ContrastRange range);

// PNG bytes of `frame` with percentile contrast. *range_used (optional)
// receives the range. Throws std::invalid_argument for an empty frame or
// invalid options, FileError("<memory>", ...) if libpng fails.
std::vector<std::uint8_t> EncodeGreyPng(FrameView frame, const GreyPngOptions& options = {},
                                        ContrastRange* range_used = nullptr);

// PNG bytes of `image`. Throws std::invalid_argument for an empty image or a
// buffer whose size is not width*height*3.
std::vector<std::uint8_t> EncodeRgbPng(const RgbImage& image);

// Encode* then write atomically. Throws FileError when the file cannot be
// written (the previous file, if any, is left intact), std::invalid_argument
// as Encode*. WriteGreyPng returns the contrast range used.
ContrastRange WriteGreyPng(const std::string& path, FrameView frame,
                           const GreyPngOptions& options = {},
                           const AtomicWriteOptions& atomic = {});
void WriteRgbPng(const std::string& path, const RgbImage& image,
                 const AtomicWriteOptions& atomic = {});

}  // namespace livealign
