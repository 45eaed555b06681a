#pragma once
// Frame value types: the shape, the per-frame header, an owning float32 frame
// and a non-owning view of one.
//
// Pixels are float32, row-major and contiguous: element (row, col) is at
// data[row * cols + col]. x is the column and y the row everywhere in livealign.
// Frame owns its pixels and is move-only (copy explicitly with Clone()); FrameView
// is a copyable pointer + shape, like leveldb::Slice, and is what core functions
// take. A FrameView must not outlive the storage it points into.
// Neither type is synchronised; share a const Frame between threads freely.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace livealign {

using frame_id_t = std::int64_t;
constexpr frame_id_t kInvalidFrameId = -1;

// Image size in pixels. Never a std::pair: rows and cols are easy to swap.
struct Shape {
  int rows = 0;
  int cols = 0;

  std::int64_t Pixels() const { return std::int64_t{rows} * cols; }
  bool Empty() const { return rows <= 0 || cols <= 0; }
  bool operator==(const Shape& other) const {
    return rows == other.rows && cols == other.cols;
  }
  bool operator!=(const Shape& other) const { return !(*this == other); }
};
std::ostream& operator<<(std::ostream& os, const Shape& shape);

// Pixel types accepted on input (files and the wire); all become float32.
enum class PixelType { kUint8, kUint16, kUint32, kInt16, kInt32, kFloat32, kFloat64 };

// "uint16" -> kUint16 etc.; std::nullopt for an unknown name.
std::optional<PixelType> PixelTypeFromName(std::string_view name);
const char* PixelTypeName(PixelType type);
std::size_t PixelTypeSize(PixelType type);

// Per-frame metadata, kept apart from the pixels (as stempy separates Header
// from Block).
struct FrameHeader {
  frame_id_t index = kInvalidFrameId;  // 0-based position in its series
  double timestamp_s = std::nan("");    // acquisition time; NaN when unknown
  Shape shape;
};

class FrameView {
 public:
  FrameView() = default;
  // Requires: data holds shape.Pixels() floats and outlives this view.
  FrameView(const float* data, Shape shape) : data_(data), shape_(shape) {}

  const float* data() const { return data_; }
  Shape shape() const { return shape_; }
  int rows() const { return shape_.rows; }
  int cols() const { return shape_.cols; }
  float at(int row, int col) const {
    return data_[static_cast<std::size_t>(row) * shape_.cols + col];
  }
  const float* row(int r) const {
    return data_ + static_cast<std::size_t>(r) * shape_.cols;
  }

 private:
  const float* data_ = nullptr;
  Shape shape_;
};

class Frame {
 public:
  Frame() = default;
  // A zero-filled frame of the given shape.
  explicit Frame(Shape shape, FrameHeader header = {});
  // Takes ownership of pixels. Throws std::invalid_argument when
  // pixels.size() != shape.Pixels().
  Frame(Shape shape, std::vector<float> pixels, FrameHeader header = {});

  Frame(const Frame&) = delete;
  Frame& operator=(const Frame&) = delete;
  Frame(Frame&&) noexcept = default;
  Frame& operator=(Frame&&) noexcept = default;

  Frame Clone() const;

  FrameView view() const { return FrameView(pixels_.data(), header_.shape); }
  operator FrameView() const { return view(); }  // NOLINT: a view is cheap

  const FrameHeader& header() const { return header_; }
  FrameHeader& mutable_header() { return header_; }
  Shape shape() const { return header_.shape; }
  int rows() const { return header_.shape.rows; }
  int cols() const { return header_.shape.cols; }
  float* data() { return pixels_.data(); }
  const float* data() const { return pixels_.data(); }
  float& at(int row, int col) {
    return pixels_[static_cast<std::size_t>(row) * cols() + col];
  }
  float at(int row, int col) const {
    return pixels_[static_cast<std::size_t>(row) * cols() + col];
  }
  const std::vector<float>& pixels() const { return pixels_; }

 private:
  FrameHeader header_;
  std::vector<float> pixels_;
};

// Converts raw little-endian pixels of `type` to a float32 frame.
// Throws std::invalid_argument when size_bytes != shape.Pixels() * PixelTypeSize(type)
// or the shape is empty. NaN/Inf in float input are copied as they are; use
// CountNonFinite() to refuse them.
Frame ConvertToFloat(const void* bytes, std::size_t size_bytes, PixelType type,
                     Shape shape, FrameHeader header = {});

// Number of NaN or Inf pixels.
std::int64_t CountNonFinite(FrameView frame);

}  // namespace livealign
