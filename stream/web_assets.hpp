#pragma once
// The files of the web preview (stream/web/), compiled into the binary by
// stream/embed_web_assets.cmake. Lookup is by exact file name against this fixed
// table, so no part of a request path can reach the file system.

#include <cstddef>
#include <string_view>
#include <vector>

namespace livealign {

struct WebAsset {
  const char* name;            // file name, e.g. "index.html"
  const unsigned char* data;   // file bytes
  std::size_t size;            // bytes, without the trailing NUL
};

const std::vector<WebAsset>& WebAssets();

// nullptr when no asset has that name.
inline const WebAsset* FindWebAsset(std::string_view name) {
  for (const auto& asset : WebAssets()) {
    if (name == asset.name) return &asset;
  }
  return nullptr;
}

}  // namespace livealign
