#pragma once
// The live web preview server: HTTP for the page compiled into the binary
// (stream/web_assets.hpp) and a WebSocket at /ws that forwards every published
// result message to the browser.
//
// Framing on the WebSocket (one binary WebSocket message per OutMessage):
//   msgpack array [topic (str), header (the OutMessage's msgpack map, spliced
//   in unchanged), data (bin)]; the third element is present only when the
//   message has a data part. So the browser sees exactly what a ZeroMQ
//   subscriber sees, in one self-describing msgpack object.
//
// Delivery per client: for `event` and `series_end` every message is queued
// (at most Options::max_queued_messages; the oldest is dropped and counted
// when a client falls further behind). Every other topic (drift, average,
// frame, quality, matrices, spectrum, ...) is latest-only: a slow client gets
// the newest message of that topic (of each channel, for `average`), never a
// backlog. On connect a client first
// receives the latest message of every topic seen so far (the snapshot for a
// page opened mid-series), and it can ask for that snapshot again by sending
// the msgpack map {cmd: "snapshot"}.
//
// HTTP: GET/HEAD of "/" serves index.html, "/<name>" serves the embedded asset
// of exactly that name; every other path is 404 and no request path ever
// reaches the file system. Other methods get 405.
//
// Threading: one io_context thread does all socket I/O; it never computes.
// Publish may be called from any thread (the daemon calls it from its single
// publishing thread); it encodes the message, takes one short lock and posts
// to the I/O thread, so it never waits for a client. Start/Stop/port/stats
// are called from the owning thread; Stop must not be called from the I/O
// thread. The destructor stops the server.
//
//   HttpServer server(HttpServerOptions{"127.0.0.1:0"});
//   server.Start();                     // throws when the endpoint cannot be bound
//   std::cout << server.port();         // the bound port
//   daemon.AddSink(&server);            // Publish() for every outbound message
//   ...
//   server.Stop();

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "stream/out_message.hpp"
#include "stream/web_assets.hpp"

namespace livealign {

struct HttpServerOptions {
  // "host:port" with an IP-literal host ("[::1]:8080" for IPv6) or
  // "localhost"; port 0 lets the OS choose (read it back with port()).
  // Loopback by default: the preview has no authentication.
  std::string endpoint = "127.0.0.1:8080";
  // Per client, the bound on queued `event`/`series_end` messages; beyond it
  // the oldest is dropped (and counted). Latest-only topics need no bound.
  int max_queued_messages = 256;
  // Simultaneous WebSocket clients; further upgrade requests get 503.
  int max_clients = 32;
  // Requests larger than this (headers + body) are refused; the server only
  // serves GETs, so this just stops a client from making it buffer much.
  std::size_t max_request_bytes = 16 * 1024;
  // Simultaneous plain HTTP connections (not counting WebSocket clients);
  // further connections are closed at once and counted.
  int max_connections = 64;
  // Largest message a WebSocket client may send (it sends {cmd: "snapshot"}
  // and small requests); a larger one closes its connection.
  std::size_t max_ws_message_bytes = 4096;
  // Called on the I/O thread with every other message a client sends (not
  // {cmd: "snapshot"}, which the server answers itself); must not block.
  // `serve` passes the page's requests (`matrices_window`) to the daemon.
  std::function<void(std::string_view)> on_client_message = nullptr;

  bool Check(std::string* error) const;
};

// Counters since Start(); a consistent snapshot taken under a lock.
struct HttpServerStats {
  int clients = 0;                        // WebSocket clients connected now
  std::uint64_t published = 0;            // messages given to Publish
  std::uint64_t invalid_messages = 0;     // refused: header not one msgpack map
  std::uint64_t dropped_messages = 0;     // queued messages dropped for slow clients
  std::uint64_t http_requests = 0;
  std::uint64_t refused_connections = 0;  // over max_connections
};

class HttpServer : public ResultSink {
 public:
  // Throws std::invalid_argument when options.Check() fails.
  explicit HttpServer(HttpServerOptions options);
  ~HttpServer() override;
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts the I/O thread. Throws std::runtime_error (with the
  // endpoint and the system's reason) when the endpoint cannot be bound, and
  // std::logic_error when already started.
  void Start();

  // Closes every connection and joins the I/O thread. Idempotent. The latest
  // messages are kept, so a later Start() serves the same snapshot.
  void Stop();

  // The bound TCP port (useful with port 0); 0 before Start().
  int port() const;

  // Forwards the message to every connected client (see delivery above) and
  // remembers it as the latest of its topic. Never blocks on clients. A message
  // whose header is not exactly one msgpack map is counted in
  // stats().invalid_messages and not forwarded. Works before Start() too (the
  // message then only becomes part of the snapshot).
  void Publish(const OutMessage& message) override;

  HttpServerStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One client's send queue, implementing the delivery rules above; public so
// the policy is tested without timing. Holds at most one message per
// latest-only topic plus max_queued messages of the queued topics, plus the
// one being written. Not synchronised (the I/O thread owns each outbox).
class ClientOutbox {
 public:
  // Requires: max_queued >= 1.
  explicit ClientOutbox(int max_queued);

  // Adds an encoded message. A latest-only topic replaces its waiting message
  // (keeping its place in line); a queued topic is appended, and when more than
  // max_queued are waiting the oldest waiting one is dropped. Returns how many
  // messages were dropped (0 or 1). The message being written is never touched.
  int Push(const std::string& topic, std::shared_ptr<const std::string> payload);

  // The next payload to send, now marked in flight; nullptr when nothing waits
  // or a write is already in flight.
  std::shared_ptr<const std::string> BeginWrite();
  // The in-flight write finished (successfully or not): forget it.
  void EndWrite();

  bool writing() const { return writing_; }
  // Waiting messages, not counting the one in flight.
  std::size_t waiting() const;

 private:
  struct Entry {
    std::string topic;
    std::shared_ptr<const std::string> payload;
  };
  int max_queued_;
  std::deque<Entry> entries_;  // front is in flight while writing_
  bool writing_ = false;
};

// The server's answer to one HTTP request, decided without sockets (the
// rules under "HTTP" above), so routing is tested and fuzzed directly.
struct HttpRoute {
  enum class Kind { kAsset, kWebSocket, kRefusal };
  Kind kind = Kind::kRefusal;
  int status = 404;                        // HTTP status of the reply
  std::string text;                        // body of a refusal
  const WebAsset* asset = nullptr;  // for kAsset
};

// The parts of a request that routing looks at.
struct HttpRequestView {
  std::string_view method;  // "GET", ...
  std::string_view target;  // as sent, e.g. "/index.html?x=1"
  bool websocket_upgrade = false;
  bool has_origin = false;
  std::string_view origin;
  std::string_view host;
};

// `clients_full`: max_clients WebSocket clients are connected already.
HttpRoute RouteHttpRequest(const HttpRequestView& request, bool clients_full);

// Parses raw bytes as one HTTP request with the server's limits
// (max_request_bytes) and routes it. For tests and fuzzing: the server parses
// with the same parser settings. `complete` is false when the bytes end
// before the request does; `error` names the parse error ("" if none; then
// `route` holds the answer).
struct HttpParseResult {
  bool complete = false;
  std::string error;
  HttpRoute route;
};
HttpParseResult ParseAndRouteHttpRequest(std::string_view bytes, const HttpServerOptions& options,
                                         bool clients_full);

// True when a client's WebSocket message is the map {cmd: "snapshot"}.
bool IsSnapshotRequest(std::string_view bytes);

// The WebSocket payload for one message (the framing described above); public
// so tests and other transports frame messages the same way. Throws
// std::invalid_argument when message.header is not exactly one msgpack map.
std::string EncodeWebSocketMessage(const OutMessage& message);

}  // namespace livealign
