#include "adapters/tiff_io.hpp"

#include <tiffio.h>

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <vector>

#include <nlohmann/json.hpp>

#include "adapters/file_error.hpp"

namespace livealign {
namespace {

namespace fs = std::filesystem;

constexpr double kAngstromPerCm = 1e8;
constexpr double kAngstromPerInch = 2.54e8;
// A "pixel size" above this comes from a display DPI, not a microscope.
constexpr double kMaxPlausiblePixelSizeA = 1e5;  // 10 µm
// Frame sides beyond this are a corrupt header, not a STEM image.
constexpr std::uint32_t kMaxSide = 1u << 20;
// Largest single page we decode (float32 output is 4 bytes per pixel).
constexpr std::uint64_t kMaxPagePixels = std::uint64_t{1} << 28;
// libtiff refuses single allocations above this (corrupt strip/tile sizes).
constexpr tmsize_t kMaxLibtiffAlloc = tmsize_t{1} << 30;

// libtiff messages for one handle, captured instead of printed to stderr.
struct TiffMessages {
  std::string first_error;
};

int CaptureError(TIFF*, void* user_data, const char* module, const char* fmt, va_list ap) {
  auto* messages = static_cast<TiffMessages*>(user_data);
  if (messages->first_error.empty()) {
    char buffer[512];
    std::vsnprintf(buffer, sizeof(buffer), fmt, ap);
    messages->first_error = std::string(module ? module : "libtiff") + ": " + buffer;
  }
  return 1;  // handled: do not call the global (printing) handler
}

int IgnoreWarning(TIFF*, void*, const char*, const char*, va_list) { return 1; }

struct TiffCloser {
  void operator()(TIFF* tif) const { TIFFClose(tif); }
};
using TiffPtr = std::unique_ptr<TIFF, TiffCloser>;

// Opens with per-handle message capture. `messages` must outlive the handle.
TiffPtr OpenTiff(const std::string& path, const char* mode, TiffMessages* messages) {
  TIFFOpenOptions* opts = TIFFOpenOptionsAlloc();
  TIFFOpenOptionsSetErrorHandlerExtR(opts, &CaptureError, messages);
  TIFFOpenOptionsSetWarningHandlerExtR(opts, &IgnoreWarning, nullptr);
  TIFFOpenOptionsSetMaxSingleMemAlloc(opts, kMaxLibtiffAlloc);
  TiffPtr tif(TIFFOpenExt(path.c_str(), mode, opts));
  TIFFOpenOptionsFree(opts);
  return tif;
}

std::string Detail(const TiffMessages& messages) {
  return messages.first_error.empty() ? std::string() : " (" + messages.first_error + ")";
}

// --- pixel size --------------------------------------------------------------

std::optional<double> UnitInAngstrom(std::string unit) {
  while (!unit.empty() && std::isspace(static_cast<unsigned char>(unit.back()))) unit.pop_back();
  if (unit == "nm" || unit == "nanometer" || unit == "nanometre") return 10.0;
  if (unit == "um" || unit == "micron" || unit == "microns" || unit == "\xC2\xB5m" ||
      unit == "\xCE\xBCm" || unit == "\\u00B5m" || unit == "micrometer")
    return 1e4;
  if (unit == "A" || unit == "\xC3\x85" || unit == "\\u00C5" || unit == "angstrom" ||
      unit == "Angstrom")
    return 1.0;
  if (unit == "pm") return 0.01;
  if (unit == "mm") return 1e7;
  if (unit == "cm") return 1e8;
  if (unit == "m") return 1e10;
  return std::nullopt;
}

struct PixelSize {
  std::optional<double> x_A;
  std::optional<double> y_A;
};

bool Positive(double v) { return std::isfinite(v) && v > 0; }

void SetFromXY(double x, double y, PixelSize* out) {
  out->x_A = x;
  if (std::abs(y - x) > 1e-6 * x) out->y_A = y;
}

PixelSize PixelSizeFromTags(TIFF* tif) {
  PixelSize size;
  const char* description = nullptr;
  std::string text;
  if (TIFFGetField(tif, TIFFTAG_IMAGEDESCRIPTION, &description) && description) {
    text = description;
  }
  // 1. Our own JSON description.
  if (!text.empty() && text.front() == '{') {
    const nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (doc.is_object() && doc.contains("pixel_size_A")) {
      const nlohmann::json& v = doc["pixel_size_A"];
      if (v.is_number() && Positive(v.get<double>())) {
        size.x_A = v.get<double>();
        return size;
      }
      if (v.is_array() && v.size() == 2 && v[0].is_number() && v[1].is_number() &&
          Positive(v[0].get<double>()) && Positive(v[1].get<double>())) {
        SetFromXY(v[1].get<double>(), v[0].get<double>(), &size);
        return size;
      }
    }
  }
  float x_resolution = 0, y_resolution = 0;
  const bool have_x = TIFFGetField(tif, TIFFTAG_XRESOLUTION, &x_resolution) == 1;
  if (!TIFFGetField(tif, TIFFTAG_YRESOLUTION, &y_resolution)) y_resolution = x_resolution;
  if (!have_x || !Positive(x_resolution) || !Positive(y_resolution)) return size;
  // 2. ImageJ: "ImageJ=1.53t\nimages=5\nunit=nm\n..." and resolution in px per unit.
  if (text.rfind("ImageJ=", 0) == 0) {
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
      if (line.rfind("unit=", 0) != 0) continue;
      if (const auto unit_A = UnitInAngstrom(line.substr(5))) {
        SetFromXY(*unit_A / x_resolution, *unit_A / y_resolution, &size);
      }
      return size;  // ImageJ said which unit; do not fall back to ResolutionUnit
    }
  }
  // 3. Standard ResolutionUnit (inch when the tag is absent, per TIFF 6.0).
  std::uint16_t unit = RESUNIT_INCH;
  TIFFGetFieldDefaulted(tif, TIFFTAG_RESOLUTIONUNIT, &unit);
  double unit_A = 0;
  if (unit == RESUNIT_CENTIMETER) unit_A = kAngstromPerCm;
  if (unit == RESUNIT_INCH) unit_A = kAngstromPerInch;
  if (unit_A == 0) return size;
  const double x = unit_A / x_resolution;
  const double y = unit_A / y_resolution;
  if (x > kMaxPlausiblePixelSizeA || y > kMaxPlausiblePixelSizeA) return size;
  SetFromXY(x, y, &size);
  return size;
}

// --- reading -----------------------------------------------------------------

struct PageLayout {
  std::uint32_t width = 0, height = 0;
  std::uint16_t bits = 0, sample_format = SAMPLEFORMAT_UINT;

  bool operator==(const PageLayout& o) const {
    return width == o.width && height == o.height && bits == o.bits &&
           sample_format == o.sample_format;
  }
  std::string Describe() const {
    const char* kind = sample_format == SAMPLEFORMAT_IEEEFP ? "float"
                       : sample_format == SAMPLEFORMAT_INT  ? "int"
                                                            : "uint";
    // rows x cols, as numpy shapes are printed elsewhere.
    return std::to_string(height) + "x" + std::to_string(width) + " " + kind +
           std::to_string(bits);
  }
};

PageLayout ReadLayout(TIFF* tif, const std::string& path, int page) {
  const std::string where = "page " + std::to_string(page) + ": ";
  PageLayout layout;
  std::uint16_t samples = 1, photometric = PHOTOMETRIC_MINISBLACK;
  if (!TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &layout.width) ||
      !TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &layout.height)) {
    throw FileError(path, where + "corrupt: missing image width or length");
  }
  TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &layout.bits);
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &layout.sample_format);
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &samples);
  TIFFGetFieldDefaulted(tif, TIFFTAG_PHOTOMETRIC, &photometric);
  if (samples != 1) {
    throw FileError(path, where + "unsupported: " + std::to_string(samples) +
                              " samples per pixel (only single-channel greyscale is read)");
  }
  if (photometric == PHOTOMETRIC_PALETTE) {
    throw FileError(path, where + "unsupported: palette (colour-mapped) image");
  }
  if (layout.width == 0 || layout.height == 0) {
    throw FileError(path, where + "empty image (" + std::to_string(layout.height) + "x" +
                              std::to_string(layout.width) + ")");
  }
  if (layout.width > kMaxSide || layout.height > kMaxSide ||
      std::uint64_t{layout.width} * layout.height > kMaxPagePixels) {
    throw FileError(path, where + "absurd size " + std::to_string(layout.height) + "x" +
                              std::to_string(layout.width) + " (rows x cols)");
  }
  const bool ok =
      (layout.sample_format == SAMPLEFORMAT_UINT &&
       (layout.bits == 8 || layout.bits == 16 || layout.bits == 32)) ||
      (layout.sample_format == SAMPLEFORMAT_INT &&
       (layout.bits == 8 || layout.bits == 16 || layout.bits == 32)) ||
      (layout.sample_format == SAMPLEFORMAT_IEEEFP && (layout.bits == 32 || layout.bits == 64));
  if (!ok) {
    throw FileError(path, where + "unsupported sample type " + layout.Describe() +
                              " (supported: 8/16/32-bit unsigned or signed integers, "
                              "32/64-bit float)");
  }
  return layout;
}

// Decodes the current page into `raw` (native byte order, row-major).
void DecodePage(TIFF* tif, const TiffMessages& messages, const std::string& path, int page,
                const PageLayout& layout, std::vector<unsigned char>* raw) {
  const std::string where = "page " + std::to_string(page) + ": ";
  const std::size_t bytes_per_sample = layout.bits / 8;
  const std::size_t row_bytes = std::size_t{layout.width} * bytes_per_sample;
  raw->assign(row_bytes * layout.height, 0);
  if (TIFFIsTiled(tif)) {
    std::uint32_t tile_w = 0, tile_h = 0;
    if (!TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tile_w) ||
        !TIFFGetField(tif, TIFFTAG_TILELENGTH, &tile_h) || tile_w == 0 || tile_h == 0 ||
        tile_w > kMaxSide || tile_h > kMaxSide ||
        std::uint64_t{tile_w} * tile_h > kMaxPagePixels) {
      throw FileError(path, where + "corrupt tile size");
    }
    const std::size_t tile_row_bytes = std::size_t{tile_w} * bytes_per_sample;
    std::vector<unsigned char> tile(tile_row_bytes * tile_h);
    for (std::uint32_t y = 0; y < layout.height; y += tile_h) {
      for (std::uint32_t x = 0; x < layout.width; x += tile_w) {
        const ttile_t index = TIFFComputeTile(tif, x, y, 0, 0);
        if (TIFFReadEncodedTile(tif, index, tile.data(), static_cast<tmsize_t>(tile.size())) < 0) {
          throw FileError(path, where + "corrupt or truncated tile " + std::to_string(index) +
                                    Detail(messages));
        }
        const std::uint32_t rows = std::min(tile_h, layout.height - y);
        const std::size_t copy = std::size_t{std::min(tile_w, layout.width - x)} * bytes_per_sample;
        for (std::uint32_t r = 0; r < rows; ++r) {
          std::memcpy(raw->data() + (y + r) * row_bytes + x * bytes_per_sample,
                      tile.data() + r * tile_row_bytes, copy);
        }
      }
    }
    return;
  }
  std::uint32_t rows_per_strip = layout.height;
  TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rows_per_strip);
  rows_per_strip = std::max<std::uint32_t>(1, std::min(rows_per_strip, layout.height));
  const std::uint32_t strips = (layout.height + rows_per_strip - 1) / rows_per_strip;
  if (TIFFNumberOfStrips(tif) < strips) {
    throw FileError(path, where + "corrupt: " + std::to_string(TIFFNumberOfStrips(tif)) +
                              " strips for " + std::to_string(strips) + " needed");
  }
  for (std::uint32_t s = 0; s < strips; ++s) {
    const std::uint32_t row0 = s * rows_per_strip;
    const std::uint32_t rows = std::min(rows_per_strip, layout.height - row0);
    const tmsize_t want = static_cast<tmsize_t>(rows * row_bytes);
    const tmsize_t got = TIFFReadEncodedStrip(tif, s, raw->data() + row0 * row_bytes, want);
    if (got < want) {
      throw FileError(path, where + "corrupt or truncated strip " + std::to_string(s) +
                                Detail(messages));
    }
  }
}

Frame ToFrame(const std::vector<unsigned char>& raw, const PageLayout& layout, int index) {
  const Shape shape{static_cast<int>(layout.height), static_cast<int>(layout.width)};
  FrameHeader header;
  header.index = index;
  PixelType type = PixelType::kFloat32;
  if (layout.sample_format == SAMPLEFORMAT_IEEEFP) {
    type = layout.bits == 32 ? PixelType::kFloat32 : PixelType::kFloat64;
  } else if (layout.sample_format == SAMPLEFORMAT_UINT) {
    type = layout.bits == 8 ? PixelType::kUint8
           : layout.bits == 16 ? PixelType::kUint16 : PixelType::kUint32;
  } else if (layout.bits == 8) {
    // core has no int8; widen to int16 (exact).
    std::vector<std::int16_t> wide(raw.size());
    for (std::size_t i = 0; i < raw.size(); ++i) {
      wide[i] = static_cast<std::int8_t>(raw[i]);
    }
    return ConvertToFloat(wide.data(), wide.size() * sizeof(std::int16_t), PixelType::kInt16,
                          shape, header);
  } else {
    type = layout.bits == 16 ? PixelType::kInt16 : PixelType::kInt32;
  }
  // libtiff returns native byte order, which is little-endian on every target.
  return ConvertToFloat(raw.data(), raw.size(), type, shape, header);
}

}  // namespace

FrameStack ReadTiff(const std::string& path) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (!fs::exists(status)) throw FileError(path, "no such file");
  if (fs::is_directory(status)) throw FileError(path, "is a directory, not a file");
  const std::uintmax_t file_size = fs::file_size(path, ec);
  if (!ec && file_size == 0) throw FileError(path, "empty file (0 bytes), not a TIFF file");

  TiffMessages messages;
  TiffPtr tif = OpenTiff(path, "r", &messages);
  if (!tif) throw FileError(path, "not a readable TIFF file" + Detail(messages));

  FrameStack stack;
  stack.source = path;
  std::optional<PageLayout> first;
  std::vector<unsigned char> raw;
  int page = 0;  // directory index, counting skipped thumbnails too
  do {
    std::uint32_t subfile_type = 0;
    TIFFGetField(tif.get(), TIFFTAG_SUBFILETYPE, &subfile_type);
    if ((subfile_type & FILETYPE_REDUCEDIMAGE) == 0) {
      const PageLayout layout = ReadLayout(tif.get(), path, page);
      if (!first) {
        first = layout;
        const PixelSize size = PixelSizeFromTags(tif.get());
        stack.pixel_size_A = size.x_A;
        stack.pixel_size_y_A = size.y_A;
      } else if (!(layout == *first)) {
        throw FileError(path, "page " + std::to_string(page) + " is " + layout.Describe() +
                                  " but the first page is " + first->Describe() +
                                  " (all pages must match)");
      }
      std::uint16_t compression = COMPRESSION_NONE;
      TIFFGetFieldDefaulted(tif.get(), TIFFTAG_COMPRESSION, &compression);
      const std::uint64_t page_bytes =
          std::uint64_t{layout.width} * layout.height * (layout.bits / 8);
      if (compression == COMPRESSION_NONE && !ec && page_bytes > file_size) {
        throw FileError(path, "truncated: page " + std::to_string(page) + " is " +
                                  layout.Describe() + " (" + std::to_string(page_bytes) +
                                  " bytes), file holds " + std::to_string(file_size) + " bytes");
      }
      DecodePage(tif.get(), messages, path, page, layout, &raw);
      stack.frames.push_back(ToFrame(raw, layout, static_cast<int>(stack.frames.size())));
    }
    ++page;
  } while (TIFFReadDirectory(tif.get()));
  // TIFFReadDirectory returns 0 both at the end of the chain and on a corrupt
  // next directory; only the latter reports an error.
  if (!messages.first_error.empty()) {
    throw FileError(path, "corrupt TIFF after " + std::to_string(page) + " page(s)" +
                              Detail(messages));
  }
  if (stack.frames.empty()) throw FileError(path, "no full-resolution pages");
  return stack;
}

// --- writing -----------------------------------------------------------------

bool TiffStackWriterOptions::Check(std::string* error) const {
  for (const auto& size : {pixel_size_A, pixel_size_y_A}) {
    if (size && !Positive(*size)) {
      if (error) *error = "pixel size must be positive and finite, got " + std::to_string(*size);
      return false;
    }
  }
  if (pixel_size_y_A && !pixel_size_A) {
    if (error) *error = "pixel_size_y_A set without pixel_size_A";
    return false;
  }
  return true;
}

struct TiffStackWriter::Impl {
  std::string path;
  Options options;
  // Heap-held so the address given to libtiff's handlers stays valid.
  TiffMessages messages;
  TiffPtr tif;
  int pages = 0;
  Shape shape;
  std::vector<unsigned char> row;  // one converted scanline
};

TiffStackWriter::TiffStackWriter(const std::string& path, const Options& options)
    : impl_(std::make_unique<Impl>()) {
  std::string error;
  if (!options.Check(&error)) throw std::invalid_argument("TiffStackWriter: " + error);
  impl_->path = path;
  impl_->options = options;
  impl_->tif = OpenTiff(path, options.bigtiff ? "w8" : "w", &impl_->messages);
  if (!impl_->tif) throw FileError(path, "cannot create TIFF file" + Detail(impl_->messages));
}

TiffStackWriter::~TiffStackWriter() = default;  // TiffPtr closes
TiffStackWriter::TiffStackWriter(TiffStackWriter&&) noexcept = default;
TiffStackWriter& TiffStackWriter::operator=(TiffStackWriter&&) noexcept = default;

int TiffStackWriter::pages() const { return impl_ ? impl_->pages : 0; }
const std::string& TiffStackWriter::path() const { return impl_->path; }

void TiffStackWriter::Append(FrameView frame) {
  if (!impl_ || !impl_->tif) throw std::logic_error("TiffStackWriter::Append after Close");
  if (frame.shape().Empty()) throw std::invalid_argument("TiffStackWriter::Append: empty frame");
  Impl& d = *impl_;
  if (d.pages > 0 && frame.shape() != d.shape) {
    std::ostringstream os;
    os << "TiffStackWriter::Append: frame shape " << frame.shape() << " differs from "
       << d.shape << " of the first page";
    throw std::invalid_argument(os.str());
  }
  d.shape = frame.shape();
  TIFF* tif = d.tif.get();
  const bool is_float = d.options.format == TiffSampleFormat::kFloat32;
  const std::size_t bytes_per_sample = is_float ? 4 : 2;
  const std::uint32_t width = static_cast<std::uint32_t>(frame.cols());
  const std::uint32_t height = static_cast<std::uint32_t>(frame.rows());
  TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, width);
  TIFFSetField(tif, TIFFTAG_IMAGELENGTH, height);
  TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, static_cast<std::uint16_t>(bytes_per_sample * 8));
  TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT,
               static_cast<std::uint16_t>(is_float ? SAMPLEFORMAT_IEEEFP : SAMPLEFORMAT_UINT));
  TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, static_cast<std::uint16_t>(1));
  TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, static_cast<std::uint16_t>(PHOTOMETRIC_MINISBLACK));
  TIFFSetField(tif, TIFFTAG_PLANARCONFIG, static_cast<std::uint16_t>(PLANARCONFIG_CONTIG));
  TIFFSetField(tif, TIFFTAG_COMPRESSION, static_cast<std::uint16_t>(COMPRESSION_NONE));
  TIFFSetField(tif, TIFFTAG_SUBFILETYPE, static_cast<std::uint32_t>(FILETYPE_PAGE));
  // About 64 KiB per strip: small enough for streaming readers, few enough strips.
  const std::size_t row_bytes = std::size_t{width} * bytes_per_sample;
  const std::uint32_t rows_per_strip = static_cast<std::uint32_t>(
      std::max<std::size_t>(1, std::min<std::size_t>(height, 65536 / row_bytes)));
  TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, rows_per_strip);
  if (d.options.pixel_size_A) {
    const double x = *d.options.pixel_size_A;
    const double y = d.options.pixel_size_y_A.value_or(x);
    nlohmann::json description;
    if (d.options.pixel_size_y_A) {
      description["pixel_size_A"] = {y, x};
    } else {
      description["pixel_size_A"] = x;
    }
    TIFFSetField(tif, TIFFTAG_IMAGEDESCRIPTION, description.dump().c_str());
    const double x_res = kAngstromPerCm / x, y_res = kAngstromPerCm / y;
    // RATIONAL is two uint32; beyond that the tag would overflow.
    constexpr double kMaxRational = 4.0e9;
    if (x_res < kMaxRational && y_res < kMaxRational) {
      TIFFSetField(tif, TIFFTAG_XRESOLUTION, x_res);
      TIFFSetField(tif, TIFFTAG_YRESOLUTION, y_res);
      TIFFSetField(tif, TIFFTAG_RESOLUTIONUNIT, static_cast<std::uint16_t>(RESUNIT_CENTIMETER));
    }
  }
  d.row.resize(row_bytes);
  for (std::uint32_t r = 0; r < height; ++r) {
    const float* in = frame.row(static_cast<int>(r));
    if (is_float) {
      std::memcpy(d.row.data(), in, row_bytes);
    } else {
      for (std::uint32_t c = 0; c < width; ++c) {
        const float v = in[c];
        const float clamped = std::isnan(v) ? 0.0f : std::min(65535.0f, std::max(0.0f, v));
        const auto value = static_cast<std::uint16_t>(std::lround(clamped));
        std::memcpy(d.row.data() + c * 2, &value, 2);
      }
    }
    if (TIFFWriteScanline(tif, d.row.data(), r, 0) < 0) {
      const std::string detail = Detail(d.messages);
      d.tif.reset();
      throw FileError(d.path, "write failed at page " + std::to_string(d.pages) + detail);
    }
  }
  if (!TIFFWriteDirectory(tif)) {
    const std::string detail = Detail(d.messages);
    d.tif.reset();
    throw FileError(d.path, "write failed at page " + std::to_string(d.pages) + detail);
  }
  ++d.pages;
}

void TiffStackWriter::Close() {
  if (!impl_ || !impl_->tif) return;
  TIFF* tif = impl_->tif.release();
  // Directories are already written by Append; TIFFFlush catches I/O errors
  // that TIFFClose would swallow.
  const bool ok = TIFFFlush(tif) == 1;
  TIFFClose(tif);
  if (!ok) throw FileError(impl_->path, "flush failed" + Detail(impl_->messages));
}

void WriteTiffFloat32(const std::string& path, FrameView frame,
                      std::optional<double> pixel_size_A, const AtomicWriteOptions& atomic) {
  if (frame.shape().Empty()) throw std::invalid_argument("WriteTiffFloat32: empty frame");
  AtomicWrite(
      path,
      [&](const std::string& tmp_path) {
        TiffStackWriter::Options options;
        options.pixel_size_A = pixel_size_A;
        TiffStackWriter writer(tmp_path, options);
        writer.Append(frame);
        writer.Close();
      },
      atomic);
}

void WriteTiffStack(const std::string& path, const FrameStack& stack, TiffSampleFormat format,
                    const AtomicWriteOptions& atomic) {
  if (stack.empty()) throw std::invalid_argument("WriteTiffStack: empty stack");
  for (const Frame& frame : stack.frames) {
    if (frame.shape() != stack.shape()) {
      throw std::invalid_argument("WriteTiffStack: frames of different shapes");
    }
  }
  AtomicWrite(
      path,
      [&](const std::string& tmp_path) {
        TiffStackWriter::Options options;
        options.format = format;
        options.pixel_size_A = stack.pixel_size_A;
        options.pixel_size_y_A = stack.pixel_size_y_A;
        TiffStackWriter writer(tmp_path, options);
        for (const Frame& frame : stack.frames) writer.Append(frame);
        writer.Close();
      },
      atomic);
}

}  // namespace livealign
