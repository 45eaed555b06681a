#pragma once
// TIFF frame stacks (libtiff): read multi-page files, write float32 files and
// append pages to a growing stack.
//
// Reading (ReadTiff) supports: one sample per pixel; 8/16/32-bit unsigned and
// signed integers, 32/64-bit IEEE floats; strips or tiles; any compression
// libtiff was built with; either byte order. Pages flagged as reduced-resolution
// (thumbnails, SubfileType bit 0) are skipped. All remaining pages must share
// one size and sample type. Refused with FileError: RGB/multi-sample, palette,
// 1/2/4/12/24-bit or 16-bit float samples, mismatched pages, absurd sizes.
//
// Pixel size, first match wins (all from the first page):
//   1. ImageDescription that is a JSON object with "pixel_size_A" (a number or
//      [y, x]) -- what our writers put there, exact to the last digit;
//   2. an ImageJ description ("ImageJ=..." with a "unit=" line) with XResolution
//      / YResolution in pixels per unit; units understood: nm, um/micron/µm,
//      A/Å/angstrom, pm, mm, cm, m (anything else, e.g. "pixel", means none);
//   3. XResolution / YResolution with ResolutionUnit centimetre or inch. A
//      resulting pixel size above 10 µm is taken to be a display DPI (e.g. the
//      72 dpi many programs write) rather than a calibration and is ignored.
// Pixel sizes are in ångström: 1 cm = 1e8 Å, 1 inch = 2.54e8 Å.
//
// Writing: uncompressed, single-sample, MinIsBlack, float32 (IEEE) or uint16;
// when a pixel size is known, XResolution/YResolution in pixels per centimetre
// with ResolutionUnit = centimetre (omitted when 1e8/pixel_size_A does not fit
// a TIFF rational, i.e. pixel sizes below ~0.024 Å) plus the JSON
// ImageDescription {"pixel_size_A": ...} which keeps it exact.
//
// Functions are thread-safe for distinct files (libtiff state is per handle;
// messages are captured per handle, never printed).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "adapters/atomic_file.hpp"
#include "adapters/frame_stack.hpp"
#include "core/frame.hpp"

namespace livealign {

// Reads every full-resolution page of `path` as float32 frames (index = page
// number among kept pages, timestamp NaN) plus the pixel size when present.
// Throws FileError for a missing, empty, non-TIFF, corrupt or truncated file,
// an unsupported sample layout or pages of different sizes.
FrameStack ReadTiff(const std::string& path);

enum class TiffSampleFormat {
  kFloat32,  // IEEE float, values written as they are (NaN/Inf included)
  kUint16,   // rounded to nearest and clamped to [0, 65535]; NaN becomes 0
};

// Options of TiffStackWriter (declared outside the class so it can be a
// default argument).
struct TiffStackWriterOptions {
  TiffSampleFormat format = TiffSampleFormat::kFloat32;
  // Written on every page when set (see the header comment for the tags).
  std::optional<double> pixel_size_A;
  // Set only for anisotropic pixels; pixel_size_A is then x.
  std::optional<double> pixel_size_y_A;
  // BigTIFF (64-bit offsets) lifts the 4 GiB limit at the cost of
  // compatibility with older readers.
  bool bigtiff = false;

  // False (with a reason) when a pixel size is set but not positive/finite.
  bool Check(std::string* error) const;
};

// Appends pages, one per frame, to a multi-page TIFF that is complete and
// readable after every Append() returns: each page's pixel data are written
// first, then its directory, which is then linked into the chain (libtiff's
// TIFFWriteDirectory; there is no user-space buffering, so another process
// opening the file after Append() returns sees every page so far). A reader
// that opens the file *during* an Append may see a half-linked last page and
// should retry; a crash during an Append can leave garbage after the last
// complete page. Before the first Append the file holds only a TIFF header
// and is not a valid image.
//
// Classic TIFF is limited to 4 GiB; Append() throws FileError when a page would
// cross it unless Options::bigtiff is set (BigTIFF is read by tifffile, Fiji
// /Bio-Formats and libtiff >= 4.0, but not by plain ImageJ or older tools).
//
// Usage:
//   TiffStackWriter writer("out/frames.tif", {TiffSampleFormat::kFloat32, 0.092});
//   for (const Frame& f : frames) writer.Append(f);
//   writer.Close();  // or let the destructor close it
//
// Move-only; not synchronised (one thread appends).
class TiffStackWriter {
 public:
  using Options = TiffStackWriterOptions;

  // Creates or truncates `path`. Throws FileError when it cannot be created,
  // std::invalid_argument when !options.Check().
  explicit TiffStackWriter(const std::string& path, const Options& options = {});
  ~TiffStackWriter();
  TiffStackWriter(TiffStackWriter&&) noexcept;
  TiffStackWriter& operator=(TiffStackWriter&&) noexcept;
  TiffStackWriter(const TiffStackWriter&) = delete;
  TiffStackWriter& operator=(const TiffStackWriter&) = delete;

  // Writes `frame` as the next page. Throws std::invalid_argument for an empty
  // frame or one whose shape differs from the first page's, std::logic_error
  // after Close(), FileError when writing fails (disk full, 4 GiB limit).
  void Append(FrameView frame);

  // Closes the file (idempotent). Throws FileError when the final flush fails;
  // the destructor closes silently.
  void Close();

  int pages() const;
  const std::string& path() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Writes one float32 page atomically (write-then-rename; see atomic_file.hpp).
// Throws FileError on failure; the previous file at `path`, if any, is intact.
void WriteTiffFloat32(const std::string& path, FrameView frame,
                      std::optional<double> pixel_size_A = std::nullopt,
                      const AtomicWriteOptions& atomic = {});

// Writes all frames of `stack` (with its pixel size) as one multi-page TIFF,
// atomically. Throws std::invalid_argument for an empty stack or mixed shapes,
// FileError on write failure.
void WriteTiffStack(const std::string& path, const FrameStack& stack,
                    TiffSampleFormat format = TiffSampleFormat::kFloat32,
                    const AtomicWriteOptions& atomic = {});

}  // namespace livealign
