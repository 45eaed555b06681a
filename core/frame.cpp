#include "core/frame.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace livealign {

std::ostream& operator<<(std::ostream& os, const Shape& shape) {
  return os << "{rows: " << shape.rows << ", cols: " << shape.cols << "}";
}

namespace {
struct PixelTypeInfo {
  PixelType type;
  const char* name;
  std::size_t size;
};
constexpr PixelTypeInfo kPixelTypes[] = {
    {PixelType::kUint8, "uint8", 1},     {PixelType::kUint16, "uint16", 2},
    {PixelType::kUint32, "uint32", 4},   {PixelType::kInt16, "int16", 2},
    {PixelType::kInt32, "int32", 4},     {PixelType::kFloat32, "float32", 4},
    {PixelType::kFloat64, "float64", 8},
};

template <typename T>
void ConvertLittleEndian(const unsigned char* in, std::size_t n, float* out) {
  // Wire and file data are little-endian; so is every machine we build for
  // (x86-64, aarch64), so memcpy of each element is the whole conversion.
  static_assert(sizeof(T) <= 8);
  for (std::size_t i = 0; i < n; ++i) {
    T value;
    std::memcpy(&value, in + i * sizeof(T), sizeof(T));
    out[i] = static_cast<float>(value);
  }
}
}  // namespace

std::optional<PixelType> PixelTypeFromName(std::string_view name) {
  for (const auto& info : kPixelTypes) {
    if (name == info.name) return info.type;
  }
  return std::nullopt;
}

const char* PixelTypeName(PixelType type) {
  for (const auto& info : kPixelTypes) {
    if (info.type == type) return info.name;
  }
  return "unknown";
}

std::size_t PixelTypeSize(PixelType type) {
  for (const auto& info : kPixelTypes) {
    if (info.type == type) return info.size;
  }
  return 0;
}

Frame::Frame(Shape shape, FrameHeader header)
    : header_(header), pixels_(static_cast<std::size_t>(std::max<std::int64_t>(shape.Pixels(), 0)), 0.0f) {
  header_.shape = shape;
}

Frame::Frame(Shape shape, std::vector<float> pixels, FrameHeader header)
    : header_(header), pixels_(std::move(pixels)) {
  if (static_cast<std::int64_t>(pixels_.size()) != shape.Pixels()) {
    throw std::invalid_argument("Frame: pixel count does not match shape");
  }
  header_.shape = shape;
}

Frame Frame::Clone() const { return Frame(shape(), pixels_, header_); }

Frame ConvertToFloat(const void* bytes, std::size_t size_bytes, PixelType type,
                     Shape shape, FrameHeader header) {
  if (shape.Empty()) throw std::invalid_argument("ConvertToFloat: empty shape");
  const std::size_t n = static_cast<std::size_t>(shape.Pixels());
  if (size_bytes != n * PixelTypeSize(type)) {
    throw std::invalid_argument("ConvertToFloat: " + std::to_string(size_bytes) +
                                " bytes for " + std::to_string(n) + " " +
                                PixelTypeName(type) + " pixels");
  }
  Frame frame(shape, header);
  const auto* in = static_cast<const unsigned char*>(bytes);
  switch (type) {
    case PixelType::kUint8: ConvertLittleEndian<std::uint8_t>(in, n, frame.data()); break;
    case PixelType::kUint16: ConvertLittleEndian<std::uint16_t>(in, n, frame.data()); break;
    case PixelType::kUint32: ConvertLittleEndian<std::uint32_t>(in, n, frame.data()); break;
    case PixelType::kInt16: ConvertLittleEndian<std::int16_t>(in, n, frame.data()); break;
    case PixelType::kInt32: ConvertLittleEndian<std::int32_t>(in, n, frame.data()); break;
    case PixelType::kFloat32: ConvertLittleEndian<float>(in, n, frame.data()); break;
    case PixelType::kFloat64: ConvertLittleEndian<double>(in, n, frame.data()); break;
  }
  return frame;
}

std::int64_t CountNonFinite(FrameView frame) {
  std::int64_t count = 0;
  const std::int64_t n = frame.shape().Pixels();
  for (std::int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(frame.data()[i])) ++count;
  }
  return count;
}

}  // namespace livealign
