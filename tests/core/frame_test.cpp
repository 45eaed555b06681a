#include "core/frame.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace livealign {
namespace {

template <typename T>
Frame ConvertVector(const std::vector<T>& values, PixelType type, Shape shape) {
  return ConvertToFloat(values.data(), values.size() * sizeof(T), type, shape);
}

TEST_CASE("every wire pixel type converts to float32", "[core][frame]") {
  const Shape shape{1, 3};
  CHECK(ConvertVector<std::uint8_t>({0, 7, 255}, PixelType::kUint8, shape).at(0, 2) == 255.0f);
  CHECK(ConvertVector<std::uint16_t>({1, 2, 65535}, PixelType::kUint16, shape).at(0, 2) == 65535.0f);
  CHECK(ConvertVector<std::uint32_t>({1, 2, 100000}, PixelType::kUint32, shape).at(0, 2) == 100000.0f);
  CHECK(ConvertVector<std::int16_t>({-5, 2, 3}, PixelType::kInt16, shape).at(0, 0) == -5.0f);
  CHECK(ConvertVector<std::int32_t>({-70000, 2, 3}, PixelType::kInt32, shape).at(0, 0) == -70000.0f);
  CHECK(ConvertVector<float>({0.5f, 2, 3}, PixelType::kFloat32, shape).at(0, 0) == 0.5f);
  CHECK(ConvertVector<double>({0.25, 2, 3}, PixelType::kFloat64, shape).at(0, 0) == 0.25f);
}

TEST_CASE("pixel type names round-trip and unknown names are refused", "[core][frame]") {
  for (auto type : {PixelType::kUint8, PixelType::kUint16, PixelType::kUint32, PixelType::kInt16,
                    PixelType::kInt32, PixelType::kFloat32, PixelType::kFloat64}) {
    CAPTURE(PixelTypeName(type));
    REQUIRE(PixelTypeFromName(PixelTypeName(type)) == type);
  }
  CHECK_FALSE(PixelTypeFromName("complex64").has_value());
  CHECK_FALSE(PixelTypeFromName("").has_value());
}

TEST_CASE("a payload of the wrong size is refused", "[core][frame]") {
  std::vector<std::uint16_t> pixels(11);
  CHECK_THROWS_AS(ConvertVector(pixels, PixelType::kUint16, Shape{3, 4}), std::invalid_argument);
  CHECK_THROWS_AS(ConvertVector(pixels, PixelType::kUint16, Shape{0, 4}), std::invalid_argument);
}

TEST_CASE("non-finite pixels are counted", "[core][frame]") {
  const float inf = std::numeric_limits<float>::infinity();
  Frame frame(Shape{2, 2}, std::vector<float>{1.0f, std::nanf(""), inf, -inf});
  CHECK(CountNonFinite(frame) == 3);
  CHECK(CountNonFinite(Frame(Shape{2, 2})) == 0);
}

TEST_CASE("a frame is row-major and clones deeply", "[core][frame]") {
  Frame frame(Shape{2, 3}, std::vector<float>{0, 1, 2, 3, 4, 5});
  CHECK(frame.at(1, 0) == 3.0f);
  CHECK(frame.view().row(1)[2] == 5.0f);
  Frame copy = frame.Clone();
  copy.at(0, 0) = 42.0f;
  CHECK(frame.at(0, 0) == 0.0f);
  CHECK_THROWS_AS(Frame(Shape{2, 2}, std::vector<float>(3)), std::invalid_argument);
}

}  // namespace
}  // namespace livealign
