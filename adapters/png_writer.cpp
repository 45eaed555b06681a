#include "adapters/png_writer.hpp"

#include <png.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <stdexcept>

#include "adapters/file_error.hpp"

namespace livealign {
namespace {

// libpng reports an error by calling this and expects it not to return: it
// keeps the message and jumps back to Encode's setjmp (no C++ frame with a
// destructor lies in between; an exception would have to unwind libpng's C
// frames).
struct PngWriteState {
  std::vector<std::uint8_t> bytes;
  std::string error;
};

void OnPngError(png_structp png, png_const_charp message) {
  static_cast<PngWriteState*>(png_get_error_ptr(png))->error = message;
  png_longjmp(png, 1);
}

void IgnorePngWarning(png_structp, png_const_charp) {}

void AppendToBuffer(png_structp png, png_bytep data, png_size_t length) {
  auto* state = static_cast<PngWriteState*>(png_get_io_ptr(png));
  try {
    state->bytes.insert(state->bytes.end(), data, data + length);
  } catch (const std::bad_alloc&) {
    png_error(png, "out of memory");
  }
}

void NoFlush(png_structp) {}

// These PNGs are previews (the data is in the TIFFs): zlib level 1, with
// `row_filter` (a PNG_FILTER_* flag) and `zlib_strategy`. A grey average is
// mostly 8-bit noise, which string matching cannot shorten: Z_RLE (runs and
// Huffman codes only) and no filter make a 496^2 average 1 % smaller than
// deflate's default strategy in a third of its time (2.5 against 6.7 ms). The
// shift-matrix figure's repeated cells and lettering need string matching
// (Z_RLE made it 21 times larger); its cells are many rows tall, so the "up"
// filter turns most rows into zeros: a 40-frame figure (1248 x 576) came out
// 40 KB in 4.3 ms against 65 KB in 6.8 ms unfiltered.
std::vector<std::uint8_t> Encode(const std::uint8_t* pixels, int width, int height, int colour_type,
                                 int channels, int row_filter, int zlib_strategy) {
  PngWriteState state;
  state.bytes.reserve(static_cast<std::size_t>(width) * height * channels + 1024);
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &state, OnPngError, IgnorePngWarning);
  if (png == nullptr) throw std::bad_alloc();
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_write_struct(&png, nullptr);
    throw std::bad_alloc();
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    throw FileError("<memory>", "PNG encoding failed: " + state.error);
  }
  png_set_write_fn(png, &state, AppendToBuffer, NoFlush);
  png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), 8,
               colour_type, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_set_filter(png, PNG_FILTER_TYPE_BASE, row_filter);
  png_set_compression_level(png, 1);
  png_set_compression_strategy(png, zlib_strategy);
  png_write_info(png, info);
  const std::size_t row_stride = static_cast<std::size_t>(width) * channels;
  for (int r = 0; r < height; ++r) {
    png_write_row(png, const_cast<png_bytep>(pixels + static_cast<std::size_t>(r) * row_stride));
  }
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return std::move(state.bytes);
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
  auto rank_of = [&](double percentile) {
    const double position = percentile / 100.0 * static_cast<double>(values.size() - 1);
    return static_cast<std::size_t>(std::llround(position));
  };
  const std::size_t low = rank_of(options.low_percentile), high = rank_of(options.high_percentile);
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(low), values.end());
  // Everything after the low rank is no smaller than it, so the high rank is
  // found among those alone.
  if (high > low) {
    std::nth_element(values.begin() + static_cast<std::ptrdiff_t>(low) + 1,
                     values.begin() + static_cast<std::ptrdiff_t>(high), values.end());
  }
  ContrastRange range;
  range.low = values[low];
  range.high = values[high];
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
    out[i] = static_cast<std::uint8_t>(g + 0.5);  // g >= 0: rounds half up, without a libm call
  }
  return out;
}

std::vector<std::uint8_t> EncodeGreyPng(FrameView frame, const GreyPngOptions& options,
                                        ContrastRange* range_used) {
  const ContrastRange range = PercentileRange(frame, options);
  if (range_used) *range_used = range;
  const std::vector<std::uint8_t> grey = ScaleToGrey8(frame, range);
  return Encode(grey.data(), frame.cols(), frame.rows(), PNG_COLOR_TYPE_GRAY, 1, PNG_FILTER_NONE, Z_RLE);
}

std::vector<std::uint8_t> EncodeRgbPng(const RgbImage& image) {
  if (image.width <= 0 || image.height <= 0) {
    throw std::invalid_argument("EncodeRgbPng: empty image");
  }
  if (image.rgb.size() != static_cast<std::size_t>(image.width) * image.height * 3) {
    throw std::invalid_argument("EncodeRgbPng: buffer size is not width*height*3");
  }
  return Encode(image.rgb.data(), image.width, image.height, PNG_COLOR_TYPE_RGB, 3, PNG_FILTER_UP,
                Z_DEFAULT_STRATEGY);
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
