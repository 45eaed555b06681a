#include "core/tiled_canvas.hpp"

#include <algorithm>

namespace livealign {
namespace {

TiledCanvas::Rect Union(const TiledCanvas::Rect& a, const TiledCanvas::Rect& b) {
  if (a.Empty()) return b;
  if (b.Empty()) return a;
  return {std::min(a.row0, b.row0), std::max(a.row1, b.row1), std::min(a.col0, b.col0),
          std::max(a.col1, b.col1)};
}

}  // namespace

TiledCanvas TiledCanvas::Clone() const {
  TiledCanvas copy;
  for (const auto& [key, tile] : tiles_) copy.tiles_.emplace(key, std::make_unique<Tile>(*tile));
  copy.bounds_ = bounds_;
  return copy;
}

const TiledCanvas::Tile* TiledCanvas::Find(int tile_row, int tile_col) const {
  const auto it = tiles_.find(Key(tile_row, tile_col));
  return it == tiles_.end() ? nullptr : it->second.get();
}

TiledCanvas::Tile& TiledCanvas::Touch(int tile_row, int tile_col) {
  std::unique_ptr<Tile>& tile = tiles_[Key(tile_row, tile_col)];
  if (tile == nullptr) {
    tile = std::make_unique<Tile>();
    const Rect area{tile_row * kTileSize, (tile_row + 1) * kTileSize, tile_col * kTileSize,
                    (tile_col + 1) * kTileSize};
    bounds_ = Union(bounds_, area);
  }
  return *tile;
}

void TiledCanvas::Read(const Rect& rect, const TiledCanvas& a, const TiledCanvas* b, double* sum,
                       int* count) {
  if (rect.Empty()) return;
  const std::size_t cols = static_cast<std::size_t>(rect.cols());
  const int tr0 = TileIndex(rect.row0), tr1 = TileIndex(rect.row1 - 1);
  const int tc0 = TileIndex(rect.col0), tc1 = TileIndex(rect.col1 - 1);
  for (int tr = tr0; tr <= tr1; ++tr) {
    const int top = tr * kTileSize;
    const int r0 = std::max(rect.row0, top), r1 = std::min(rect.row1, top + kTileSize);
    for (int tc = tc0; tc <= tc1; ++tc) {
      const int left = tc * kTileSize;
      const int c0 = std::max(rect.col0, left), c1 = std::min(rect.col1, left + kTileSize);
      const int n = c1 - c0;
      const Tile* ta = a.Find(tr, tc);
      const Tile* tb = b != nullptr ? b->Find(tr, tc) : nullptr;
      for (int r = r0; r < r1; ++r) {
        const std::size_t from = static_cast<std::size_t>(r - top) * kTileSize + (c0 - left);
        const std::size_t to = static_cast<std::size_t>(r - rect.row0) * cols + (c0 - rect.col0);
        if (sum != nullptr) {
          double* out = sum + to;
          if (ta != nullptr && tb != nullptr) {
            const double* x = ta->sum.data() + from;
            const double* y = tb->sum.data() + from;
            for (int c = 0; c < n; ++c) out[c] = x[c] + y[c];
          } else if (ta != nullptr || tb != nullptr) {
            const double* x = (ta != nullptr ? ta : tb)->sum.data() + from;
            std::copy(x, x + n, out);
          } else {
            std::fill(out, out + n, 0.0);
          }
        }
        if (count != nullptr) {
          int* out = count + to;
          if (ta != nullptr && tb != nullptr) {
            const int* x = ta->count.data() + from;
            const int* y = tb->count.data() + from;
            for (int c = 0; c < n; ++c) out[c] = x[c] + y[c];
          } else if (ta != nullptr || tb != nullptr) {
            const int* x = (ta != nullptr ? ta : tb)->count.data() + from;
            std::copy(x, x + n, out);
          } else {
            std::fill(out, out + n, 0);
          }
        }
      }
    }
  }
}

void TiledCanvas::Add(const TiledCanvas& other) {
  for (const auto& [key, from] : other.tiles_) {
    const int tile_row = static_cast<int>(static_cast<std::uint32_t>(key >> 32));
    const int tile_col = static_cast<int>(static_cast<std::uint32_t>(key & 0xffffffffu));
    Tile& to = Touch(tile_row, tile_col);
    for (std::size_t k = 0; k < kTilePixels; ++k) to.sum[k] += from->sum[k];
    for (std::size_t k = 0; k < kTilePixels; ++k) to.count[k] += from->count[k];
  }
}

}  // namespace livealign
