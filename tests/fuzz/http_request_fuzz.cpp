// The web preview's HTTP request handling (stream/http_server.hpp
// ParseAndRouteHttpRequest: the server's parser limits and routing) on
// arbitrary bytes. Whatever the path, only an embedded asset may be served.
#include <cstdint>

#include "stream/http_server.hpp"
#include "stream/web_assets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace livealign;
  static const HttpServerOptions options;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const bool clients_full = size > 0 && (data[0] & 1);
  const HttpParseResult result = ParseAndRouteHttpRequest(bytes, options, clients_full);
  if (result.route.kind == HttpRoute::Kind::kAsset) {
    bool known = false;
    for (const WebAsset& asset : WebAssets()) known = known || &asset == result.route.asset;
    if (!known) __builtin_trap();
  }
  return 0;
}
