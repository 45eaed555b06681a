#include "adapters/png_writer.hpp"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "adapters/file_error.hpp"

namespace livealign {
namespace {

std::vector<std::uint8_t> Encode(const std::uint8_t* pixels, int width, int height,
                                 png_uint_32 format, int channels) {
  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(width);
  image.height = static_cast<png_uint_32>(height);
  image.format = format;
  // These PNGs are previews (the data is in the TIFFs), and the shift-matrix
  // figure is thousands of pixels wide: libpng's fast mode (no row filter, a
  // low zlib level) encodes several times faster for somewhat larger files.
  image.flags = PNG_IMAGE_FLAG_FAST;
  const png_int_32 row_stride = width * channels;
  // One encoding into a buffer of the documented upper bound (libpng >=
  // 1.6.29); asking libpng for the exact size first would compress twice.
  png_alloc_size_t size = PNG_IMAGE_PNG_SIZE_MAX(image);
  std::vector<std::uint8_t> out(size);
  if (!png_image_write_to_memory(&image, out.data(), &size, 0, pixels, row_stride, nullptr)) {
    const std::string message = image.message;
    png_image_free(&image);
    throw FileError("<memory>", "PNG encoding failed: " + message);
  }
  out.resize(size);
  return out;
}

}  // namespace

bool GreyPngOptions::Check(std::string* error) const {
  if (!(low_percentile >= 0 && low_percentile < high_percentile && high_percentile <= 100)) {
    if (error) {
      *error = "percentiles must satisfy 0 <= low < high <= 100, got " +
               std::to_string(low_percentile) + " and " + std::to_string(high_percentile);
    }
    return false;
  }
  return true;
}

ContrastRange PercentileRange(FrameView frame, const GreyPngOptions& options) {
  std::string error;
  if (!options.Check(&error)) throw std::invalid_argument("PercentileRange: " + error);
  if (frame.shape().Empty()) throw std::invalid_argument("PercentileRange: empty frame");
  std::vector<float> values;
  values.reserve(static_cast<std::size_t>(frame.shape().Pixels()));
  for (std::int64_t i = 0; i < frame.shape().Pixels(); ++i) {
    if (std::isfinite(frame.data()[i])) values.push_back(frame.data()[i]);
  }
  if (values.empty()) return {};
  auto rank = [&](double percentile) {
    const double position = percentile / 100.0 * static_cast<double>(values.size() - 1);
    const auto k = static_cast<std::size_t>(std::llround(position));
    std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(k), values.end());
    return static_cast<double>(values[k]);
  };
  ContrastRange range;
  range.low = rank(options.low_percentile);
  range.high = rank(options.high_percentile);
  return range;
}

std::vector<std::uint8_t> ScaleToGrey8(FrameView frame, ContrastRange range) {
  const auto n = static_cast<std::size_t>(std::max<std::int64_t>(0, frame.shape().Pixels()));
  std::vector<std::uint8_t> out(n, 0);
  if (!(range.high > range.low)) return out;
  const double scale = 255.0 / (range.high - range.low);
  for (std::size_t i = 0; i < n; ++i) {
    const double v = frame.data()[i];
    if (std::isnan(v)) continue;
    const double g = std::min(255.0, std::max(0.0, (v - range.low) * scale));
    out[i] = static_cast<std::uint8_t>(std::lround(g));
  }
  return out;
}

std::vector<std::uint8_t> EncodeGreyPng(FrameView frame, const GreyPngOptions& options,
                                        ContrastRange* range_used) {
  const ContrastRange range = PercentileRange(frame, options);
  if (range_used) *range_used = range;
  const std::vector<std::uint8_t> grey = ScaleToGrey8(frame, range);
  return Encode(grey.data(), frame.cols(), frame.rows(), PNG_FORMAT_GRAY, 1);
}

std::vector<std::uint8_t> EncodeRgbPng(const RgbImage& image) {
  if (image.width <= 0 || image.height <= 0) {
    throw std::invalid_argument("EncodeRgbPng: empty image");
  }
  if (image.rgb.size() != static_cast<std::size_t>(image.width) * image.height * 3) {
    throw std::invalid_argument("EncodeRgbPng: buffer size is not width*height*3");
  }
  return Encode(image.rgb.data(), image.width, image.height, PNG_FORMAT_RGB, 3);
}

ContrastRange WriteGreyPng(const std::string& path, FrameView frame,
                           const GreyPngOptions& options, const AtomicWriteOptions& atomic) {
  ContrastRange range;
  const std::vector<std::uint8_t> bytes = EncodeGreyPng(frame, options, &range);
  AtomicWriteBytes(path, bytes.data(), bytes.size(), atomic);
  return range;
}

void WriteRgbPng(const std::string& path, const RgbImage& image,
                 const AtomicWriteOptions& atomic) {
  const std::vector<std::uint8_t> bytes = EncodeRgbPng(image);
  AtomicWriteBytes(path, bytes.data(), bytes.size(), atomic);
}

}  // namespace livealign
