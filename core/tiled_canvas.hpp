#pragma once
// TiledCanvas: per-pixel running sums (double) and frame counts (int) on the
// unbounded plane of frame-0 coordinates, stored as fixed-size square tiles
// that are allocated, zeroed, on first touch. Pixels of tiles never touched
// read as zero.
//
// Why tiles: ShiftedAverager's mosaic grows with the drift. One growing array
// must copy everything it holds whenever a frame's footprint leaves it (all
// sums and counts: 23-41 ms on a 2000-frame 256^2 series, against an 8 ms
// median update), while a tile, once allocated, never moves, so growth costs
// only the new tiles. The price is a row segment per tile column in the inner
// loops; with 64-pixel tiles a segment is long enough to stay vectorised.
//
// Thread-safety: const methods may run concurrently; Touch / the mutable
// visits must not run concurrently with anything else on the same object.
//
//   TiledCanvas canvas;
//   canvas.ForEachRowSegment(rect, [](int r, int c0, int c1, double* sum, int* count) {...});
//   TiledCanvas::Read(rect, canvas, nullptr, sum.data(), count.data());

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "core/average_image.hpp"

namespace livealign {

class TiledCanvas {
 public:
  using Rect = AverageImage::Rect;
  // Tile side, pixels. 64 keeps a tile (48 KiB of sums and counts) in L2
  // and a row segment 64 doubles long.
  static constexpr int kTileSize = 64;

  // The tile row (column) holding pixel row (column) v: floor(v / kTileSize).
  static int TileIndex(int v) { return v >= 0 ? v / kTileSize : -((-v + kTileSize - 1) / kTileSize); }

  TiledCanvas() = default;
  TiledCanvas(TiledCanvas&&) = default;
  TiledCanvas& operator=(TiledCanvas&&) = default;
  // A deep copy (tiles are owned).
  TiledCanvas Clone() const;

  // Calls f(row, col0, col1, sum, count) for every row segment of `rect`
  // inside one tile, allocating the tiles `rect` touches; sum and count
  // point at pixel (row, col0), contiguous up to col1. Segments come tile by
  // tile (rows ascending within a tile), not in raster order.
  template <typename F>
  void ForEachRowSegment(const Rect& rect, F&& f);

  // Allocates every tile `rect` touches. ForEachRowSegment over a reserved
  // rectangle allocates nothing, so calls on disjoint bands of whole tile
  // rows of it may run on different threads at once.
  void Reserve(const Rect& rect);

  // Writes the canvas over `rect` into rect-shaped row-major arrays (either
  // may be null): a's sums and counts, plus b's when b is not null (the sum
  // a + b in that order, so a two-layer read equals adding the two reads).
  // Zero where neither has a tile.
  static void Read(const Rect& rect, const TiledCanvas& a, const TiledCanvas* b, double* sum,
                   int* count);
  // Calls f(row, col0, col1, sum_a, count_a, sum_b, count_b) for every row
  // segment of `rect` inside one tile, with a's and b's pixels at (row, col0)
  // or null where that canvas has no tile (b null: always null). Segments
  // come tile by tile, as ForEachRowSegment's.
  template <typename F>
  static void ForEachRowSegment(const Rect& rect, const TiledCanvas& a, const TiledCanvas* b, F&& f);
  // Every pixel of `other` added into this canvas (tiles allocated as needed).
  void Add(const TiledCanvas& other);
  // Every pixel back to zero, the tiles kept: a rebuild of the sums touches
  // no fresh pages (bounds() is unchanged).
  void Zero();

  // Bounding rectangle of the allocated tiles (empty when none).
  Rect bounds() const { return bounds_; }
  std::size_t num_tiles() const { return tiles_.size(); }
  std::size_t MemoryBytes() const { return tiles_.size() * kTileBytes; }

 private:
  struct Tile {
    std::vector<double> sum = std::vector<double>(kTilePixels, 0.0);
    std::vector<int> count = std::vector<int>(kTilePixels, 0);
  };
  static constexpr std::size_t kTilePixels = static_cast<std::size_t>(kTileSize) * kTileSize;
  static constexpr std::size_t kTileBytes = kTilePixels * (sizeof(double) + sizeof(int));

  static std::uint64_t Key(int tile_row, int tile_col) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(tile_row)) << 32) |
           static_cast<std::uint32_t>(tile_col);
  }
  const Tile* Find(int tile_row, int tile_col) const;
  // Find, allocating the tile when missing (only then is the map written).
  Tile& Touch(int tile_row, int tile_col);

  std::unordered_map<std::uint64_t, std::unique_ptr<Tile>> tiles_;
  Rect bounds_;
};

template <typename F>
void TiledCanvas::ForEachRowSegment(const Rect& rect, F&& f) {
  if (rect.Empty()) return;
  const int tr0 = TileIndex(rect.row0), tr1 = TileIndex(rect.row1 - 1);
  const int tc0 = TileIndex(rect.col0), tc1 = TileIndex(rect.col1 - 1);
  for (int tr = tr0; tr <= tr1; ++tr) {
    const int top = tr * kTileSize;
    const int r0 = std::max(rect.row0, top), r1 = std::min(rect.row1, top + kTileSize);
    for (int tc = tc0; tc <= tc1; ++tc) {
      const int left = tc * kTileSize;
      const int c0 = std::max(rect.col0, left), c1 = std::min(rect.col1, left + kTileSize);
      Tile& tile = Touch(tr, tc);
      for (int r = r0; r < r1; ++r) {
        const std::size_t at = static_cast<std::size_t>(r - top) * kTileSize + (c0 - left);
        f(r, c0, c1, tile.sum.data() + at, tile.count.data() + at);
      }
    }
  }
}

template <typename F>
void TiledCanvas::ForEachRowSegment(const Rect& rect, const TiledCanvas& a, const TiledCanvas* b,
                                    F&& f) {
  if (rect.Empty()) return;
  const int tr0 = TileIndex(rect.row0), tr1 = TileIndex(rect.row1 - 1);
  const int tc0 = TileIndex(rect.col0), tc1 = TileIndex(rect.col1 - 1);
  for (int tr = tr0; tr <= tr1; ++tr) {
    const int top = tr * kTileSize;
    const int r0 = std::max(rect.row0, top), r1 = std::min(rect.row1, top + kTileSize);
    for (int tc = tc0; tc <= tc1; ++tc) {
      const int left = tc * kTileSize;
      const int c0 = std::max(rect.col0, left), c1 = std::min(rect.col1, left + kTileSize);
      const Tile* ta = a.Find(tr, tc);
      const Tile* tb = b != nullptr ? b->Find(tr, tc) : nullptr;
      for (int r = r0; r < r1; ++r) {
        const std::size_t at = static_cast<std::size_t>(r - top) * kTileSize + (c0 - left);
        f(r, c0, c1, ta != nullptr ? ta->sum.data() + at : nullptr,
          ta != nullptr ? ta->count.data() + at : nullptr, tb != nullptr ? tb->sum.data() + at : nullptr,
          tb != nullptr ? tb->count.data() + at : nullptr);
      }
    }
  }
}

}  // namespace livealign
