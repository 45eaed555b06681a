#pragma once
// RgbImage: an 8-bit packed RGB picture (plots, shift matrices) on its way to
// a PNG. Row-major, 3 bytes per pixel, no padding: pixel (x, y) starts at
// rgb[(y * width + x) * 3]. Owns its bytes; a plain copyable value.

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <vector>

namespace livealign {

struct Rgb {
  std::uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Rgb& o) const { return r == o.r && g == o.g && b == o.b; }
  bool operator!=(const Rgb& o) const { return !(*this == o); }
};
inline std::ostream& operator<<(std::ostream& os, const Rgb& c) {
  return os << "{r: " << int{c.r} << ", g: " << int{c.g} << ", b: " << int{c.b} << "}";
}

struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<std::uint8_t> rgb;

  RgbImage() = default;
  // Filled with `fill`. Requires: width, height >= 0.
  RgbImage(int w, int h, Rgb fill = {})
      : width(w), height(h), rgb(static_cast<std::size_t>(w) * h * 3) {
    for (std::size_t i = 0; i < rgb.size(); i += 3) {
      rgb[i] = fill.r;
      rgb[i + 1] = fill.g;
      rgb[i + 2] = fill.b;
    }
  }

  // Requires: 0 <= x < width, 0 <= y < height.
  Rgb at(int x, int y) const {
    const std::size_t i = (static_cast<std::size_t>(y) * width + x) * 3;
    return {rgb[i], rgb[i + 1], rgb[i + 2]};
  }
  void set(int x, int y, Rgb c) {
    const std::size_t i = (static_cast<std::size_t>(y) * width + x) * 3;
    rgb[i] = c.r;
    rgb[i + 1] = c.g;
    rgb[i + 2] = c.b;
  }
  // Fills the rectangle [x0, x0+w) x [y0, y0+h), clipped to the image.
  void FillRect(int x0, int y0, int w, int h, Rgb c) {
    for (int y = y0 < 0 ? 0 : y0; y < y0 + h && y < height; ++y) {
      for (int x = x0 < 0 ? 0 : x0; x < x0 + w && x < width; ++x) set(x, y, c);
    }
  }
};

}  // namespace livealign
