#pragma once
// Reader for NumPy .npy files holding one frame (2-D) or a series (3-D), as
// written by numpy.save. Format: numpy.org/doc/stable/reference/generated/numpy.lib.format.html
//
// Supported: format versions 1.0, 2.0 and 3.0; dtypes u1, u2, u4, i2, i4, f4,
// f8 in little-endian ('<', '|', '=') or big-endian ('>', byte-swapped on
// read); C order only; shapes (rows, cols) and (frames, rows, cols).
// Refused with a FileError: fortran_order True, any other dtype (i1, i8, f2,
// complex, structured, object), other ranks, zero-sized axes, and any
// header/data size mismatch. Sizes are checked against the file length before
// anything is allocated, so a corrupt header never causes a huge allocation.
//
// Calibration: if "<same stem>.json" exists beside the file and has
// "pixel_size_A" as a positive number (isotropic) or as [y, x], it is used.
// A null or absent key means "uncalibrated". A sidecar that is not valid JSON,
// or whose pixel_size_A has another type or a non-positive value, is a
// FileError naming the sidecar (a wrong calibration silently dropped would be
// worse than a refusal).
//
// Functions are stateless and thread-safe.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "adapters/frame_stack.hpp"
#include "core/frame.hpp"

namespace livealign {

// What an .npy header says, validated against the file length.
struct NpyHeader {
  int version_major = 0;  // 1, 2 or 3
  PixelType type = PixelType::kFloat32;
  bool big_endian = false;
  std::string descr;                 // as written, e.g. "<f4"
  std::vector<std::int64_t> dims;    // numpy shape, 2 or 3 entries
  std::size_t data_offset = 0;       // bytes before the first pixel
  std::size_t data_bytes = 0;        // product(dims) * itemsize

  int frame_count() const { return dims.size() == 3 ? static_cast<int>(dims[0]) : 1; }
  Shape frame_shape() const {
    return {static_cast<int>(dims[dims.size() - 2]), static_cast<int>(dims.back())};
  }
};

// Parses and validates the header of `path` without reading pixel data.
// Throws FileError for a missing/unreadable file, an empty or short file, bad
// magic, an unsupported version, a truncated or unparsable header, an
// unsupported dtype/order/rank, zero or absurd dimensions, or a data section
// whose length differs from what the header says.
NpyHeader ReadNpyHeader(const std::string& path);

// Reads every frame of `path` as float32, plus the sidecar calibration.
// Throws FileError as ReadNpyHeader, and when the sidecar is invalid (see
// above).
FrameStack ReadNpy(const std::string& path);

// Reads a series one frame at a time, so that a consumer can start on frame 0
// while the rest is still read: what ReadNpy returns, in pieces. Not
// synchronised (one thread reads).
class NpyFrameReader {
 public:
  // Opens `path` and reads its header and sidecar; throws FileError as ReadNpy.
  explicit NpyFrameReader(const std::string& path);
  ~NpyFrameReader();
  NpyFrameReader(NpyFrameReader&&) noexcept;
  NpyFrameReader& operator=(NpyFrameReader&&) noexcept;

  const NpyHeader& header() const;
  // The calibration and source, as a FrameStack with no frames.
  const FrameStack& calibration() const;
  // The next frame as float32, or std::nullopt after the last one. Throws
  // FileError when the file ends early.
  std::optional<Frame> Next();
  // Frame `index` as float32 (header index set), read at its offset with
  // pread: Next()'s position is unchanged, and any number of threads may call
  // this at once, also beside Next(). Throws std::out_of_range for an index
  // outside the series and FileError when the read fails or comes up short.
  Frame ReadAt(int index) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Several detectors: reads a 4-D array with a channel axis, channel_axis 1 for
// (frames, channels, rows, cols) or 0 for (channels, frames, rows, cols), and
// returns one stack per channel, in axis order, each calibrated from the
// sidecar. Throws FileError as ReadNpy, for another rank, and for a
// channel_axis other than 0 or 1.
std::vector<FrameStack> ReadNpyChannels(const std::string& path, int channel_axis);

// Pixel size from the sidecar "<stem>.json" of `npy_path`: fills
// stack->pixel_size_A (and pixel_size_y_A when [y, x] differ). Leaves them
// unset when there is no sidecar or pixel_size_A is null/absent. Throws
// FileError naming the sidecar when it is invalid.
void ReadNpySidecarPixelSize(const std::string& npy_path, FrameStack* stack);

}  // namespace livealign
