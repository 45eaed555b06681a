#include "adapters/shift_matrix_image.hpp"

#include <png.h>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "tests/support/test_data.hpp"

namespace livealign {
namespace {

using Catch::Matchers::WithinAbs;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// k = 4 frames drifting by +1 px/frame in x and -0.5 px/frame in y, so
// R_ij = s_j - s_i; the diagonal is missing, (0, 3) rejected, (1, 2) snapped.
ShiftMatrix Drift() {
  ShiftMatrix data;
  data.k = 4;
  data.x.assign(16, kNaN);
  data.y.assign(16, kNaN);
  data.status.assign(16, PairStatus::kMissing);
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 4; ++j) {
      if (i == j) continue;
      data.x[i * 4 + j] = 1.0 * (j - i);
      data.y[i * 4 + j] = -0.5 * (j - i);
      data.status[i * 4 + j] = PairStatus::kInlier;
    }
  }
  data.x[0 * 4 + 3] = 40.0;  // an outlier: rejected, must not set the range
  data.status[0 * 4 + 3] = PairStatus::kRejected;
  data.status[1 * 4 + 2] = PairStatus::kSnapped;
  return data;
}

bool Reddish(Rgb c) { return c.r > c.b + 20; }
bool Dark(Rgb c) { return c.r < 100 && c.g < 100 && c.b < 100; }

// Pixels of text (dark) inside a rectangle of the figure.
int DarkPixels(const RgbImage& image, const FigureRect& r) {
  int n = 0;
  for (int y = r.y; y < r.y + r.height; ++y)
    for (int x = r.x; x < r.x + r.width; ++x) n += Dark(image.at(x, y));
  return n;
}

// Dark pixels in the rows [y0, y1) of a rectangle: where a tick label sits.
int DarkPixelsInRows(const RgbImage& image, const FigureRect& r, int y0, int y1) {
  return DarkPixels(image, FigureRect{r.x, y0, r.width, y1 - y0});
}
bool Bluish(Rgb c) { return c.b > c.r + 20; }

}  // namespace

TEST_CASE("shift matrix image has two panels, a gap and the expected colours",
          "[adapters][shiftmatrix]") {
  ShiftMatrixImageOptions options;
  options.cell_px = 10;
  options.gap_px = 4;
  const ShiftMatrixImage out = RenderShiftMatrix(Drift(), options);
  const RgbImage& image = out.image;
  REQUIRE(image.width == 2 * 40 + 4);
  REQUIRE(image.height == 40);
  CHECK(out.cell_px == 10);
  // Ranges from inliers only: max |x| = 3 (not the rejected 40), max |y| = 1.5.
  CHECK_THAT(out.range_x_px, WithinAbs(3.0, 1e-12));
  CHECK_THAT(out.range_y_px, WithinAbs(1.5, 1e-12));

  auto centre = [&](int panel, int i, int j) {
    return image.at(panel * (40 + 4) + j * 10 + 5, i * 10 + 3);
  };
  // Diagonal: missing grey in both panels.
  CHECK(centre(0, 2, 2) == kShiftMatrixMissing);
  CHECK(centre(1, 2, 2) == kShiftMatrixMissing);
  // Above the diagonal x > 0 (red) and y < 0 (blue); below, the reverse.
  CHECK(Reddish(centre(0, 0, 1)));
  CHECK(Bluish(centre(0, 1, 0)));
  CHECK(Bluish(centre(1, 0, 1)));
  CHECK(Reddish(centre(1, 1, 0)));
  // Full range is saturated, symmetric: R_03... (rejected) aside, R_30 = -3.
  CHECK(centre(0, 3, 0) == DivergingColour(-1.0));
  CHECK(centre(1, 3, 0) == DivergingColour(1.0));
  // Gap column.
  for (int y = 0; y < 40; ++y) REQUIRE(image.at(41, y) == kShiftMatrixGap);
  // Rejected (0, 3): black X through the cell's diagonal, in both panels.
  CHECK(image.at(3 * 10 + 0, 0) == kShiftMatrixRejectedMark);
  CHECK(image.at(3 * 10 + 5, 5) == kShiftMatrixRejectedMark);
  CHECK(image.at(3 * 10 + 9, 0) == kShiftMatrixRejectedMark);
  CHECK(image.at(44 + 3 * 10 + 5, 5) == kShiftMatrixRejectedMark);
  // Snapped (1, 2): green border, coloured centre.
  CHECK(image.at(2 * 10, 1 * 10 + 5) == kShiftMatrixSnappedMark);
  CHECK(image.at(2 * 10 + 5, 1 * 10) == kShiftMatrixSnappedMark);
  CHECK(image.at(2 * 10 + 9, 1 * 10 + 9) == kShiftMatrixSnappedMark);
  CHECK(Reddish(image.at(2 * 10 + 5, 1 * 10 + 5)));
}

TEST_CASE("shift matrix image marks small cells by filling them", "[adapters][shiftmatrix]") {
  ShiftMatrixImageOptions options;
  options.cell_px = 3;
  options.gap_px = 1;
  const RgbImage image = RenderShiftMatrix(Drift(), options).image;
  REQUIRE(image.width == 2 * 12 + 1);
  CHECK(image.at(3 * 3 + 1, 0 * 3 + 1) == kShiftMatrixRejectedMark);
  CHECK(image.at(2 * 3 + 1, 1 * 3 + 1) == kShiftMatrixSnappedMark);
}

TEST_CASE("shift matrix image picks a cell size and honours a fixed range",
          "[adapters][shiftmatrix]") {
  ShiftMatrix data = Drift();
  const ShiftMatrixImage automatic = RenderShiftMatrix(data);
  CHECK(automatic.cell_px == 32);  // 512 / 4 = 128, capped at 32
  CHECK(automatic.image.height == 4 * 32);

  ShiftMatrixImageOptions fixed;
  fixed.range_px = 6.0;
  const ShiftMatrixImage out = RenderShiftMatrix(data, fixed);
  CHECK(out.range_x_px == 6.0);
  CHECK(out.range_y_px == 6.0);
  // x = -3 at half the fixed range: half-way between white and blue.
  CHECK(out.image.at(0 * 32 + 16, 3 * 32 + 16) == DivergingColour(-0.5));
}

TEST_CASE("shift matrix image shows pairs without overlap apart from missing ones", "[adapters][shiftmatrix]") {
  ShiftMatrix data = Drift();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (std::size_t index : {std::size_t{0 * 4 + 2}, std::size_t{2 * 4 + 0}}) {
    data.status[index] = PairStatus::kNoOverlap;
    data.x[index] = data.y[index] = nan;
  }
  ShiftMatrixImageOptions options;
  options.cell_px = 10;
  const RgbImage image = RenderShiftMatrix(data, options).image;
  auto centre = [&](int panel, int i, int j) {
    return image.at(panel * (40 + options.gap_px) + j * 10 + 5, i * 10 + 3);
  };
  for (int panel : {0, 1}) {
    CHECK(centre(panel, 0, 2) == kShiftMatrixNoOverlap);
    CHECK(centre(panel, 2, 0) == kShiftMatrixNoOverlap);
    CHECK(centre(panel, 1, 1) == kShiftMatrixMissing);
  }
  CHECK_FALSE(kShiftMatrixNoOverlap == kShiftMatrixMissing);
}

TEST_CASE("shift matrix image refuses inconsistent input", "[adapters][shiftmatrix]") {
  ShiftMatrix data = Drift();
  data.x.pop_back();
  CHECK_THROWS_AS(RenderShiftMatrix(data), std::invalid_argument);
  data = Drift();
  data.status[5] = static_cast<PairStatus>(7);
  CHECK_THROWS_AS(RenderShiftMatrix(data), std::invalid_argument);
  data = Drift();
  data.k = 0;
  CHECK_THROWS_AS(RenderShiftMatrix(data), std::invalid_argument);
  ShiftMatrixImageOptions bad;
  bad.range_px = -1.0;
  CHECK_THROWS_AS(RenderShiftMatrix(Drift(), bad), std::invalid_argument);
  bad = ShiftMatrixImageOptions{};
  bad.frames_per_cell = 0;
  CHECK_THROWS_AS(RenderShiftMatrix(Drift(), bad), std::invalid_argument);
}

TEST_CASE("shift matrix figure of an overview's cells counts frames on its axes", "[adapters][shiftmatrix]") {
  // 250 cells of 20 frames (k = 5000): ticks 0, 1000, ... instead of 0, 50, ...
  const int n = 250;
  ShiftMatrix cells;
  cells.k = n;
  cells.x.assign(static_cast<std::size_t>(n) * n, 0.5);
  cells.y.assign(static_cast<std::size_t>(n) * n, -0.5);
  cells.status.assign(static_cast<std::size_t>(n) * n, PairStatus::kInlier);
  ShiftMatrixImageOptions overview;
  overview.frames_per_cell = 20;
  const ShiftMatrixFigure plain = RenderShiftMatrixFigure(cells);
  const ShiftMatrixFigure framed = RenderShiftMatrixFigure(cells, overview);
  REQUIRE(framed.image.width == plain.image.width);
  REQUIRE(framed.image.height == plain.image.height);
  CHECK(framed.matrices.image.rgb == plain.matrices.image.rgb);  // the cells are unchanged
  // Four-digit frame numbers darken more of the tick strip than two- and three-digit cell numbers.
  CHECK(DarkPixels(framed.image, framed.label_j_x) > DarkPixels(plain.image, plain.label_j_x));
}

TEST_CASE("shift matrix png is written with the rendered size", "[adapters][shiftmatrix]") {
  const std::string dir = testing::ScratchDir("shift_matrix_png");
  const ShiftMatrixFigure out = WriteShiftMatrixPng(dir + "/matrix.png", Drift());
  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  REQUIRE(png_image_begin_read_from_file(&image, (dir + "/matrix.png").c_str()) != 0);
  CHECK(static_cast<int>(image.width) == out.image.width);
  CHECK(static_cast<int>(image.height) == out.image.height);
  CHECK(PNG_IMAGE_SAMPLE_CHANNELS(image.format) == 3);
  png_image_free(&image);
}

TEST_CASE("shift matrix figure: panels unchanged, labelled axes, a colour scale in px",
          "[adapters][shiftmatrix]") {
  ShiftMatrixImageOptions options;
  options.cell_px = 24;  // k = 4: 96 px panels
  const ShiftMatrixFigure f = RenderShiftMatrixFigure(Drift(), options);
  const RgbImage& image = f.image;
  const auto inside = [&](const FigureRect& r) {
    return r.x >= 0 && r.y >= 0 && r.width > 0 && r.height > 0 && r.x + r.width <= image.width &&
           r.y + r.height <= image.height;
  };
  for (const FigureRect* r : {&f.panel_x, &f.panel_y, &f.bar_x, &f.bar_y, &f.bar_labels_x, &f.bar_labels_y,
                              &f.title_x, &f.title_y, &f.label_j_x, &f.label_j_y, &f.label_i_x,
                              &f.label_i_y, &f.legend}) {
    REQUIRE(inside(*r));
  }
  // The cells are the panel rendering, pixel for pixel.
  REQUIRE(f.panel_x.width == 96);
  for (int y = 0; y < 96; ++y) {
    for (int x = 0; x < 96; ++x) {
      REQUIRE(image.at(f.panel_x.x + x, f.panel_x.y + y) == f.matrices.image.at(x, y));
      REQUIRE(image.at(f.panel_y.x + x, f.panel_y.y + y) == f.matrices.image.at(96 + options.gap_px + x, y));
    }
  }
  // Text where the labels belong: titles, "frame j" with column ticks,
  // "frame i" with row ticks, the bar's values and the legend.
  for (const FigureRect* r : {&f.title_x, &f.title_y, &f.label_j_x, &f.label_j_y, &f.label_i_x,
                              &f.label_i_y, &f.legend}) {
    CHECK(DarkPixels(image, *r) > 30);
  }
  // The colour bar runs from +range (red, top) through white to -range (blue).
  const int bar_mid_x = f.bar_x.x + f.bar_x.width / 2;
  CHECK(image.at(bar_mid_x, f.bar_x.y + 1) == DivergingColour(1.0 - 2.0 / (f.bar_x.height - 1)));
  CHECK(Reddish(image.at(bar_mid_x, f.bar_x.y + 2)));
  CHECK(Bluish(image.at(bar_mid_x, f.bar_x.y + f.bar_x.height - 3)));
  const Rgb middle = image.at(bar_mid_x, f.bar_x.y + f.bar_x.height / 2);
  CHECK((middle.r > 230 && middle.g > 230 && middle.b > 230));
  // Its three values sit at the top, the middle and the bottom of the bar.
  const FigureRect& labels = f.bar_labels_x;
  CHECK(DarkPixelsInRows(image, labels, labels.y, labels.y + 14) > 10);
  CHECK(DarkPixelsInRows(image, labels, labels.y + labels.height / 2 - 7, labels.y + labels.height / 2 + 7) > 10);
  CHECK(DarkPixelsInRows(image, labels, labels.y + labels.height - 14, labels.y + labels.height) > 10);
  CHECK(DarkPixelsInRows(image, labels, labels.y + 20, labels.y + labels.height / 2 - 12) == 0);
  // Margins outside the labels stay paper-white: text is not smeared around.
  CHECK(image.at(image.width - 1, 0) == (Rgb{255, 255, 255}));
}

TEST_CASE("shift matrix figure stays labelled for one frame and for many", "[adapters][shiftmatrix]") {
  for (int k : {1, 150}) {
    CAPTURE(k);
    ShiftMatrix data;
    data.k = k;
    data.x.assign(static_cast<std::size_t>(k) * k, 0.5);
    data.y.assign(static_cast<std::size_t>(k) * k, -0.5);
    data.status.assign(static_cast<std::size_t>(k) * k, PairStatus::kInlier);
    const ShiftMatrixFigure f = RenderShiftMatrixFigure(data);
    CHECK(f.image.height >= f.bar_x.y + f.bar_x.height);
    CHECK(DarkPixels(f.image, f.label_j_x) > 30);
    CHECK(DarkPixels(f.image, f.bar_labels_y) > 30);
  }
}

TEST_CASE("diverging colour map is white at zero and symmetric", "[adapters][shiftmatrix]") {
  const Rgb white = DivergingColour(0.0);
  CHECK(white.r > 240);
  CHECK(white.g > 240);
  CHECK(white.b > 240);
  CHECK(Bluish(DivergingColour(-1.0)));
  CHECK(Reddish(DivergingColour(1.0)));
  CHECK(DivergingColour(5.0) == DivergingColour(1.0));  // clamped
  CHECK(DivergingColour(kNaN) == kShiftMatrixMissing);
}

}  // namespace livealign
