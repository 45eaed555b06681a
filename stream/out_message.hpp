#pragma once
// One outbound result message, as published on the daemon's PUB socket and,
// unchanged, to web preview clients: [topic, msgpack map, optional raw data].
// The map and data layouts are documented in docs/protocol.md.

#include <string>

namespace livealign {

struct OutMessage {
  std::string topic;   // "drift", "average", "quality", "event", "series_end", ...
  std::string header;  // msgpack-encoded map
  std::string data;    // raw bytes (e.g. float32 image), empty when absent
};

// Something that receives every published message (the HTTP/WebSocket preview
// server). Publish is called from the daemon's single publishing thread and
// must not block on slow clients.
class ResultSink {
 public:
  virtual ~ResultSink() = default;
  virtual void Publish(const OutMessage& message) = 0;
};

}  // namespace livealign
