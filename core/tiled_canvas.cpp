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
  // find before operator[]: a lookup only reads the map, so threads writing
  // disjoint reserved tiles never race on it.
  const auto found = tiles_.find(Key(tile_row, tile_col));
  if (found != tiles_.end()) return *found->second;
  std::unique_ptr<Tile>& tile = tiles_[Key(tile_row, tile_col)];
  if (tile == nullptr) {
    tile = std::make_unique<Tile>();
    const Rect area{tile_row * kTileSize, (tile_row + 1) * kTileSize, tile_col * kTileSize,
                    (tile_col + 1) * kTileSize};
    bounds_ = Union(bounds_, area);
  }
  return *tile;
}

void TiledCanvas::Reserve(const Rect& rect) {
  if (rect.Empty()) return;
  for (int tr = TileIndex(rect.row0); tr <= TileIndex(rect.row1 - 1); ++tr)
    for (int tc = TileIndex(rect.col0); tc <= TileIndex(rect.col1 - 1); ++tc) Touch(tr, tc);
}

namespace {

// out[0, n) = a + b, where a missing tile (nullptr) reads as zeros.
template <typename T>
void SumOrCopy(const T* a, const T* b, int n, T* out) {
  if (a != nullptr && b != nullptr) {
    for (int c = 0; c < n; ++c) out[c] = a[c] + b[c];
  } else if (a != nullptr || b != nullptr) {
    const T* x = a != nullptr ? a : b;
    std::copy(x, x + n, out);
  } else {
    std::fill(out, out + n, T{0});
  }
}

}  // namespace

void TiledCanvas::Read(const Rect& rect, const TiledCanvas& a, const TiledCanvas* b, double* sum,
                       int* count) {
  const std::size_t cols = static_cast<std::size_t>(rect.cols());
  ForEachRowSegment(rect, a, b,
                    [&](int r, int c0, int c1, const double* sa, const int* ca, const double* sb,
                        const int* cb) {
    const int n = c1 - c0;
    const std::size_t to = static_cast<std::size_t>(r - rect.row0) * cols + (c0 - rect.col0);
    if (sum != nullptr) SumOrCopy(sa, sb, n, sum + to);
    if (count != nullptr) SumOrCopy(ca, cb, n, count + to);
  });
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

void TiledCanvas::Zero() {
  for (auto& [key, tile] : tiles_) {
    std::fill(tile->sum.begin(), tile->sum.end(), 0.0);
    std::fill(tile->count.begin(), tile->count.end(), 0);
  }
}

}  // namespace livealign
