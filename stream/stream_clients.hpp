#pragma once
// The three client ends of wire protocol v1 (docs/protocol.md), used by
// `livealign simulate`, `replay`, `watch`, the live benchmark and the tests:
//   FrameSender       sends series_start / frame / series_end (PUB or PUSH)
//   ResultSubscriber  receives [topic, map, data] from the daemon's PUB
//   ControlClient     sends {cmd: ...} to the daemon's REP
// Each owns one ZMQ socket (and its own context) and is used from one thread.
// Receive calls take a timeout and return std::nullopt when it passes.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "stream/codec.hpp"

namespace livealign {

class FrameSender {
 public:
  // pattern "pub" (an XPUB socket, so subscriptions can be waited for) or
  // "push" (back-pressure: sends wait while the daemon is behind). Binds when
  // `bind`, else connects. Throws zmq::error_t when the endpoint is unusable.
  FrameSender(const std::string& endpoint, const std::string& pattern, bool bind);
  ~FrameSender();
  FrameSender(const FrameSender&) = delete;
  FrameSender& operator=(const FrameSender&) = delete;

  // The endpoint bound (port resolved) or connected.
  const std::string& endpoint() const { return endpoint_; }

  // PUB: waits until a subscriber has subscribed (ZMQ's XPUB delivers the
  // subscription itself, so this is real synchronisation, not a guess).
  // PUSH: waits until a peer is connected. False on timeout.
  bool WaitForPeer(std::chrono::milliseconds timeout);

  void SendSeriesStart(const SeriesStart& start);
  // `header.payload` is ignored; `pixels` must hold rows*cols*itemsize bytes.
  void SendFrame(const FrameMessage& header, const void* pixels, std::size_t bytes);
  void SendSeriesEnd(const SeriesEnd& end);
  // Any multipart message as it is (tests send malformed ones).
  void SendRaw(const std::vector<std::string>& parts);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string endpoint_;
};

// One outbound message of the daemon, decoded.
struct ReceivedMessage {
  std::string topic;
  nlohmann::json header;
  std::string data;
};

class ResultSubscriber {
 public:
  // Subscribes to every topic, or to those given. `backlog_messages`: the
  // receive high-water mark, the messages held for a reader that lags before
  // ZeroMQ drops newer ones (large by default: tests read after the fact).
  explicit ResultSubscriber(const std::string& endpoint,
                            const std::vector<std::string>& topics = {},
                            int backlog_messages = 100000);
  ~ResultSubscriber();
  ResultSubscriber(const ResultSubscriber&) = delete;
  ResultSubscriber& operator=(const ResultSubscriber&) = delete;

  // The next message, or nullopt after `timeout`. Messages whose header is not
  // msgpack come back with a null header.
  std::optional<ReceivedMessage> Receive(std::chrono::milliseconds timeout);

  // The next message with this topic (and, for events, this code when given);
  // others are skipped. nullopt after `timeout` in all.
  std::optional<ReceivedMessage> WaitFor(const std::string& topic,
                                         std::chrono::milliseconds timeout,
                                         const std::string& event_code = "");

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class ControlClient {
 public:
  // `token`: sent with every request when not empty (a daemon with
  // control_token_required refuses save/reset/shutdown without it).
  explicit ControlClient(const std::string& endpoint, std::string token = "");
  ~ControlClient();
  ControlClient(const ControlClient&) = delete;
  ControlClient& operator=(const ControlClient&) = delete;

  // Sends {cmd[, token]} and returns the decoded reply, or nullopt after `timeout`
  // (the socket is then recreated so the client stays usable).
  std::optional<nlohmann::json> Request(const std::string& cmd,
                                        std::chrono::milliseconds timeout);
  // The same for a request with more fields ({cmd: "matrices_window", i0, j0, n}).
  std::optional<nlohmann::json> RequestMap(nlohmann::json map, std::chrono::milliseconds timeout);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Blocks until `subscriber` provably receives the daemon's messages: sends
// `reset` requests through `control` until the `reset` event arrives. Use it
// only before a series starts (reset abandons a running series). False on
// timeout.
bool SyncSubscriber(ResultSubscriber& subscriber, ControlClient& control,
                    std::chrono::milliseconds timeout);

}  // namespace livealign
