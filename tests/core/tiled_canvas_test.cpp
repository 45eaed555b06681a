#include "core/tiled_canvas.hpp"

#include <catch2/catch.hpp>

#include <vector>

namespace livealign {
namespace {

using Rect = TiledCanvas::Rect;
constexpr int kT = TiledCanvas::kTileSize;

// Writes value(r, c) and count 1 over rect.
void Fill(TiledCanvas* canvas, const Rect& rect, double offset) {
  canvas->ForEachRowSegment(rect, [&](int r, int c0, int c1, double* sum, int* count) {
    for (int c = c0; c < c1; ++c) {
      sum[c - c0] += offset + 1000.0 * r + c;
      count[c - c0] += 1;
    }
  });
}

TEST_CASE("a tiled canvas holds what was written at negative and positive coordinates across tiles",
          "[core][tiled_canvas]") {
  TiledCanvas canvas;
  REQUIRE(canvas.bounds().Empty());
  // Straddles tile edges in both axes, on both sides of the origin.
  const Rect written{-kT - 3, kT + 5, -2 * kT + 7, 9};
  Fill(&canvas, written, 0.5);
  REQUIRE(canvas.bounds() == (Rect{-2 * kT, 2 * kT, -2 * kT, kT}));
  REQUIRE(canvas.num_tiles() == 4u * 3u);
  REQUIRE(canvas.MemoryBytes() == canvas.num_tiles() * kT * kT * (sizeof(double) + sizeof(int)));
  // A read wider than what was written: the values inside, zeros around,
  // also where no tile exists.
  const Rect read{written.row0 - 2, written.row1 + 70, written.col0 - 90, written.col1 + 3};
  std::vector<double> sum(static_cast<std::size_t>(read.rows()) * read.cols(), -1.0);
  std::vector<int> count(sum.size(), -1);
  TiledCanvas::Read(read, canvas, nullptr, sum.data(), count.data());
  for (int r = read.row0; r < read.row1; ++r) {
    for (int c = read.col0; c < read.col1; ++c) {
      const std::size_t k = static_cast<std::size_t>(r - read.row0) * read.cols() + (c - read.col0);
      const bool inside = r >= written.row0 && r < written.row1 && c >= written.col0 && c < written.col1;
      CAPTURE(r, c);
      REQUIRE(sum[k] == (inside ? 0.5 + 1000.0 * r + c : 0.0));
      REQUIRE(count[k] == (inside ? 1 : 0));
    }
  }
}

TEST_CASE("two canvases read together, added or cloned give the same sums", "[core][tiled_canvas]") {
  TiledCanvas a, b;
  Fill(&a, Rect{-10, 50, -10, 100}, 0.25);
  Fill(&b, Rect{30, 200, 60, 130}, 0.125);  // partly in tiles a lacks
  const Rect read{-20, 210, -20, 140};
  const std::size_t n = static_cast<std::size_t>(read.rows()) * read.cols();
  std::vector<double> together(n), sum_a(n), sum_b(n), added(n);
  std::vector<int> count_together(n), count_a(n), count_b(n), count_added(n);
  TiledCanvas::Read(read, a, &b, together.data(), count_together.data());
  TiledCanvas::Read(read, a, nullptr, sum_a.data(), count_a.data());
  TiledCanvas::Read(read, b, nullptr, sum_b.data(), count_b.data());
  TiledCanvas sum = a.Clone();
  sum.Add(b);
  TiledCanvas::Read(read, sum, nullptr, added.data(), count_added.data());
  for (std::size_t k = 0; k < n; ++k) {
    REQUIRE(together[k] == sum_a[k] + sum_b[k]);
    REQUIRE(count_together[k] == count_a[k] + count_b[k]);
    REQUIRE(added[k] == together[k]);
    REQUIRE(count_added[k] == count_together[k]);
  }
  // The clone is deep: changing it leaves a as it was.
  std::vector<double> again(n);
  TiledCanvas::Read(read, a, nullptr, again.data(), nullptr);
  REQUIRE(again == sum_a);
}

TEST_CASE("zeroing a canvas keeps its tiles and clears every pixel", "[core][tiled_canvas]") {
  TiledCanvas canvas;
  const Rect written{-kT + 5, kT + 3, -4, 2 * kT};
  Fill(&canvas, written, 0.25);
  const Rect bounds = canvas.bounds();
  const std::size_t tiles = canvas.num_tiles();
  canvas.Zero();
  REQUIRE(canvas.bounds() == bounds);
  REQUIRE(canvas.num_tiles() == tiles);
  std::vector<double> sum(static_cast<std::size_t>(bounds.rows()) * bounds.cols(), -1.0);
  std::vector<int> count(sum.size(), -1);
  TiledCanvas::Read(bounds, canvas, nullptr, sum.data(), count.data());
  for (std::size_t k = 0; k < sum.size(); ++k) {
    REQUIRE(sum[k] == 0.0);
    REQUIRE(count[k] == 0);
  }
  // Written again after zeroing: exactly the new values, no new tiles.
  Fill(&canvas, written, 0.25);
  REQUIRE(canvas.num_tiles() == tiles);
  TiledCanvas fresh;
  Fill(&fresh, written, 0.25);
  std::vector<double> again(sum.size()), expected(sum.size());
  TiledCanvas::Read(bounds, canvas, nullptr, again.data(), nullptr);
  TiledCanvas::Read(bounds, fresh, nullptr, expected.data(), nullptr);
  REQUIRE(again == expected);
}

}  // namespace
}  // namespace livealign
