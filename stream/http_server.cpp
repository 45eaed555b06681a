#include "stream/http_server.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <msgpack.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <future>
#include <map>
#include <optional>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "stream/web_assets.hpp"

namespace livealign {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace websocket = boost::beast::websocket;
using tcp = boost::asio::ip::tcp;

// Topics whose every message matters; all others are latest-only per client.
bool IsQueuedTopic(const std::string& topic) {
  return topic == "event" || topic == "series_end";
}

// True for the `event` the daemon publishes when a `reset` abandons the
// running series (docs/protocol.md, code "reset").
bool IsResetEvent(const OutMessage& message) {
  if (message.topic != "event") return false;
  try {
    const msgpack::object_handle handle = msgpack::unpack(message.header.data(), message.header.size());
    const msgpack::object& map = handle.get();
    if (map.type != msgpack::type::MAP) return false;
    for (std::uint32_t n = 0; n < map.via.map.size; ++n) {
      const msgpack::object_kv& kv = map.via.map.ptr[n];
      if (kv.key.type == msgpack::type::STR && kv.key.as<std::string>() == "code") {
        return kv.val.type == msgpack::type::STR && kv.val.as<std::string>() == "reset";
      }
    }
  } catch (const std::exception&) {
    // Not decodable: not a reset (EncodeWebSocketMessage counts it).
  }
  return false;
}

// An encoded WebSocket payload, shared by every client it goes to.
struct Encoded {
  std::string topic;
  std::uint64_t seq = 0;  // publish order; used to skip what a snapshot already had
  std::shared_ptr<const std::string> payload;
};

bool ParseEndpoint(const std::string& endpoint, tcp::endpoint* out, std::string* error) {
  const auto colon = endpoint.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == endpoint.size()) {
    *error = "endpoint '" + endpoint + "' is not host:port";
    return false;
  }
  std::string host = endpoint.substr(0, colon);
  const std::string port_text = endpoint.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host == "localhost") host = "127.0.0.1";
  if (port_text.find_first_not_of("0123456789") != std::string::npos ||
      port_text.size() > 5) {
    *error = "endpoint '" + endpoint + "' has a bad port";
    return false;
  }
  const int port = std::stoi(port_text);
  if (port > 65535) {
    *error = "endpoint '" + endpoint + "' has a port over 65535";
    return false;
  }
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (ec) {
    *error = "endpoint '" + endpoint + "' needs an IP address or localhost as host";
    return false;
  }
  *out = tcp::endpoint(address, static_cast<unsigned short>(port));
  return true;
}

const char* ContentType(std::string_view name) {
  auto ends_with = [&](std::string_view suffix) {
    return name.size() >= suffix.size() &&
           name.substr(name.size() - suffix.size()) == suffix;
  };
  if (ends_with(".html")) return "text/html; charset=utf-8";
  if (ends_with(".js")) return "text/javascript; charset=utf-8";
  if (ends_with(".css")) return "text/css; charset=utf-8";
  return "application/octet-stream";
}

// True when `header` is exactly one msgpack map (nothing before or after).
bool IsOneMsgpackMap(const std::string& header) {
  try {
    std::size_t offset = 0;
    const msgpack::object_handle handle = msgpack::unpack(header.data(), header.size(), offset);
    return offset == header.size() && handle.get().type == msgpack::type::MAP;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

bool IsSnapshotRequest(std::string_view bytes) {
  try {
    // Limits: a client's array/map header must not size an allocation (an
    // array32 of 2^32 elements asked for 128 GiB; found by
    // tests/fuzz/websocket_frame_fuzz.cpp).
    const msgpack::unpack_limit limit(/*array=*/16, /*map=*/16, /*str=*/256, /*bin=*/256,
                                      /*ext=*/256, /*depth=*/4);
    const msgpack::object_handle handle =
        msgpack::unpack(bytes.data(), bytes.size(), nullptr, nullptr, limit);
    const msgpack::object& root = handle.get();
    if (root.type != msgpack::type::MAP) return false;
    for (std::uint32_t i = 0; i < root.via.map.size; ++i) {
      const auto& kv = root.via.map.ptr[i];
      if (kv.key.type == msgpack::type::STR && kv.key.as<std::string>() == "cmd" &&
          kv.val.type == msgpack::type::STR && kv.val.as<std::string>() == "snapshot") {
        return true;
      }
    }
  } catch (const std::exception&) {
  }
  return false;
}

HttpRoute RouteHttpRequest(const HttpRequestView& request, bool clients_full) {
  auto refuse = [](int status, std::string text) {
    HttpRoute route;
    route.status = status;
    route.text = std::move(text);
    return route;
  };
  const std::string_view path = request.target.substr(0, request.target.find('?'));
  if (request.websocket_upgrade) {
    if (path != "/ws") return refuse(404, "not found\n");
    // The browser sends Origin on WebSocket upgrades; a page from another site
    // must not read the preview. Clients without Origin (tools) are allowed.
    if (request.has_origin) {
      const auto scheme_end = request.origin.find("://");
      if (scheme_end == std::string_view::npos ||
          request.origin.substr(scheme_end + 3) != request.host) {
        return refuse(403, "cross-origin WebSocket refused\n");
      }
    }
    if (clients_full) return refuse(503, "too many clients\n");
    HttpRoute route;
    route.kind = HttpRoute::Kind::kWebSocket;
    route.status = 101;
    return route;
  }
  if (request.method != "GET" && request.method != "HEAD") return refuse(405, "only GET\n");
  // Exact-name lookup in the compiled-in table; nothing reaches the file system.
  const WebAsset* asset = nullptr;
  if (!path.empty() && path[0] == '/') {
    asset = FindWebAsset(path == "/" ? std::string_view("index.html") : path.substr(1));
  }
  if (asset == nullptr) return refuse(404, "not found\n");
  HttpRoute route;
  route.kind = HttpRoute::Kind::kAsset;
  route.status = 200;
  route.asset = asset;
  return route;
}

namespace {

// What a latest-only message replaces: its topic, and for the `average` of a
// several-detector series its channel too, so a client gets the newest
// average of every channel (docs/protocol.md, "Channels").
std::string LatestKey(const OutMessage& message) {
  if (message.topic != "average") return message.topic;
  try {
    const msgpack::object_handle handle = msgpack::unpack(message.header.data(), message.header.size());
    const msgpack::object& map = handle.get();
    if (map.type != msgpack::type::MAP) return message.topic;
    for (std::uint32_t i = 0; i < map.via.map.size; ++i) {
      const msgpack::object_kv& kv = map.via.map.ptr[i];
      if (kv.key.type == msgpack::type::STR && kv.val.type == msgpack::type::STR &&
          std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) == "channel") {
        return message.topic + "/" + std::string(kv.val.via.str.ptr, kv.val.via.str.size);
      }
    }
  } catch (const std::exception&) {
  }
  return message.topic;
}

HttpRequestView ViewOf(const http::request<http::string_body>& request) {
  HttpRequestView view;
  view.method = std::string_view(request.method_string().data(), request.method_string().size());
  view.target = std::string_view(request.target().data(), request.target().size());
  view.websocket_upgrade = websocket::is_upgrade(request);
  const auto origin = request.find(http::field::origin);
  view.has_origin = origin != request.end();
  if (view.has_origin) view.origin = std::string_view(origin->value().data(), origin->value().size());
  const auto host = request.find(http::field::host);
  if (host != request.end()) view.host = std::string_view(host->value().data(), host->value().size());
  return view;
}

void ApplyLimits(const HttpServerOptions& options, http::request_parser<http::string_body>* parser) {
  parser->header_limit(static_cast<std::uint32_t>(options.max_request_bytes));
  parser->body_limit(options.max_request_bytes);
}

}  // namespace

HttpParseResult ParseAndRouteHttpRequest(std::string_view bytes, const HttpServerOptions& options,
                                         bool clients_full) {
  HttpParseResult result;
  http::request_parser<http::string_body> parser;
  ApplyLimits(options, &parser);
  beast::error_code ec;
  std::size_t used = 0;
  while (used < bytes.size() && !parser.is_done()) {
    const std::size_t n = parser.put(asio::buffer(bytes.data() + used, bytes.size() - used), ec);
    if (ec == http::error::need_more) {
      ec = {};
      break;
    }
    if (ec) {
      result.error = ec.message();
      return result;
    }
    if (n == 0) break;
    used += n;
  }
  if (!parser.is_done()) return result;
  result.complete = true;
  const http::request<http::string_body> request = parser.release();
  result.route = RouteHttpRequest(ViewOf(request), clients_full);
  return result;
}

std::string EncodeWebSocketMessage(const OutMessage& message) {
  if (!IsOneMsgpackMap(message.header)) {
    throw std::invalid_argument("message header of topic '" + message.topic +
                                "' is not one msgpack map");
  }
  msgpack::sbuffer buffer(message.header.size() + message.data.size() + message.topic.size() + 16);
  msgpack::packer<msgpack::sbuffer> packer(buffer);
  const bool has_data = !message.data.empty();
  packer.pack_array(has_data ? 3 : 2);
  packer.pack(message.topic);
  // The header is already a valid msgpack object: splice its bytes.
  buffer.write(message.header.data(), message.header.size());
  if (has_data) {
    packer.pack_bin(static_cast<std::uint32_t>(message.data.size()));
    packer.pack_bin_body(message.data.data(), static_cast<std::uint32_t>(message.data.size()));
  }
  return std::string(buffer.data(), buffer.size());
}

ClientOutbox::ClientOutbox(int max_queued) : max_queued_(max_queued) {
  if (max_queued < 1) throw std::invalid_argument("ClientOutbox: max_queued must be at least 1");
}

int ClientOutbox::Push(const std::string& topic, std::shared_ptr<const std::string> payload) {
  const std::size_t first_waiting = writing_ ? 1 : 0;
  if (!IsQueuedTopic(topic)) {
    for (std::size_t i = first_waiting; i < entries_.size(); ++i) {
      if (entries_[i].topic == topic) {
        entries_[i].payload = std::move(payload);
        return 0;
      }
    }
    entries_.push_back(Entry{topic, std::move(payload)});
    return 0;
  }
  entries_.push_back(Entry{topic, std::move(payload)});
  std::size_t queued = 0;
  for (std::size_t i = first_waiting; i < entries_.size(); ++i) {
    queued += IsQueuedTopic(entries_[i].topic) ? 1 : 0;
  }
  if (queued <= static_cast<std::size_t>(max_queued_)) return 0;
  for (std::size_t i = first_waiting; i < entries_.size(); ++i) {
    if (IsQueuedTopic(entries_[i].topic)) {
      entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(i));
      return 1;
    }
  }
  return 0;
}

std::shared_ptr<const std::string> ClientOutbox::BeginWrite() {
  if (writing_ || entries_.empty()) return nullptr;
  writing_ = true;
  return entries_.front().payload;
}

void ClientOutbox::EndWrite() {
  if (!writing_) return;
  writing_ = false;
  entries_.pop_front();
}

std::size_t ClientOutbox::waiting() const { return entries_.size() - (writing_ ? 1 : 0); }

bool HttpServerOptions::Check(std::string* error) const {
  tcp::endpoint parsed;
  if (!ParseEndpoint(endpoint, &parsed, error)) return false;
  if (max_queued_messages < 1) {
    *error = "max_queued_messages must be at least 1";
    return false;
  }
  if (max_clients < 1) {
    *error = "max_clients must be at least 1";
    return false;
  }
  if (max_connections < 1) {
    *error = "max_connections must be at least 1";
    return false;
  }
  if (max_ws_message_bytes < 64) {
    *error = "max_ws_message_bytes must be at least 64";
    return false;
  }
  if (max_request_bytes < 1024) {
    *error = "max_request_bytes must be at least 1024";
    return false;
  }
  return true;
}

// ---------------------------------------------------------------------------

namespace {

class WsSession;

// The server's state, shared with its sessions (HttpServer::Impl is this).
struct ServerCore {
  explicit ServerCore(HttpServerOptions opts) : options(std::move(opts)) {}

  const HttpServerOptions options;
  // Connected WebSocket clients. Declared before `io` so that sessions
  // destroyed with io's pending handlers can still decrement it.
  std::atomic<int> clients{0};
  std::atomic<int> http_connections{0};  // live HttpSessions
  // Owned by the I/O thread while running: the context, the acceptor and the
  // session registry below are touched only from handlers on that thread
  // (and from Start/Stop when the thread is not running).
  asio::io_context io{1};
  std::unique_ptr<tcp::acceptor> acceptor;
  std::vector<std::weak_ptr<WsSession>> sessions;
  std::thread thread;
  std::unique_ptr<asio::executor_work_guard<asio::io_context::executor_type>> work;
  int bound_port = 0;

  // Guards latest, next_seq and stats: written by Publish (any thread) and read
  // by the I/O thread when a client connects or asks for a snapshot.
  mutable std::mutex mutex;
  std::map<std::string, Encoded> latest;
  std::uint64_t next_seq = 1;
  HttpServerStats stats;
  bool running = false;

  // The latest message of every topic, in publish order, and the sequence
  // number up to which they cover everything.
  std::vector<Encoded> Snapshot(std::uint64_t* covered_seq) {
    std::lock_guard<std::mutex> lock(mutex);
    std::vector<Encoded> out;
    for (const auto& [topic, encoded] : latest) out.push_back(encoded);
    std::sort(out.begin(), out.end(),
              [](const Encoded& a, const Encoded& b) { return a.seq < b.seq; });
    *covered_seq = next_seq - 1;
    return out;
  }

  void CountDropped(std::uint64_t n) {
    std::lock_guard<std::mutex> lock(mutex);
    stats.dropped_messages += n;
  }

  void CountRequest() {
    std::lock_guard<std::mutex> lock(mutex);
    ++stats.http_requests;
  }

  int LiveSessions();  // prunes expired entries; I/O thread only

  void Accept();
  void Distribute(const Encoded& encoded);  // I/O thread
};

// One WebSocket client. Lives as long as a pending handler holds it; the
// registry holds only weak pointers. A session can outlive the I/O thread (its
// handlers are destroyed with `io`); its destructor then touches only
// `clients`, which outlives `io`. All members are used on the I/O thread only.
class WsSession : public std::enable_shared_from_this<WsSession> {
 public:
  WsSession(ServerCore* server, tcp::socket&& socket)
      : server_(server), ws_(std::move(socket)), outbox_(server->options.max_queued_messages) {}

  ~WsSession() {
    if (counted_) --server_->clients;
  }

  void Run(http::request<http::string_body> request) {
    request_ = std::move(request);
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.read_message_max(server_->options.max_ws_message_bytes);
    ws_.binary(true);
    ws_.async_accept(request_, [self = shared_from_this()](beast::error_code ec) {
      if (ec) return;
      ++self->server_->clients;
      self->counted_ = true;
      self->SendSnapshot(/*with_queued_topics=*/true);
      self->Read();
    });
  }

  // Queues one message per the delivery rules in http_server.hpp.
  void Enqueue(const Encoded& encoded) {
    if (!open_ || encoded.seq <= snapshot_seq_) return;
    const int dropped = outbox_.Push(encoded.topic, encoded.payload);
    if (dropped > 0) server_->CountDropped(static_cast<std::uint64_t>(dropped));
    Write();
  }

  void Close() {
    if (!open_) return;
    open_ = false;
    beast::error_code ignored;
    beast::get_lowest_layer(ws_).socket().shutdown(tcp::socket::shutdown_both, ignored);
    beast::get_lowest_layer(ws_).socket().close(ignored);
  }

  bool open() const { return open_; }

 private:
  // On connect, everything; on a client's request, the latest-only topics
  // (re-sending the last event would show it twice).
  void SendSnapshot(bool with_queued_topics) {
    open_ = true;
    std::uint64_t covered = 0;
    const std::vector<Encoded> snapshot = server_->Snapshot(&covered);
    snapshot_seq_ = 0;
    for (const auto& e : snapshot) {
      if (with_queued_topics || !IsQueuedTopic(e.topic)) Enqueue(e);
    }
    // Anything up to `covered` that is still posted for distribution is
    // already in the snapshot.
    snapshot_seq_ = covered;
  }

  void Read() {
    ws_.async_read(in_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) {
        self->open_ = false;
        return;
      }
      const std::string bytes = beast::buffers_to_string(self->in_.data());
      self->in_.consume(self->in_.size());
      if (IsSnapshotRequest(bytes)) {
        self->SendSnapshot(/*with_queued_topics=*/false);
      } else if (self->server_->options.on_client_message) {
        self->server_->options.on_client_message(bytes);
      }
      self->Read();
    });
  }

  void Write() {
    if (!open_) return;
    auto payload = outbox_.BeginWrite();
    if (!payload) return;
    ws_.async_write(asio::buffer(*payload),
                    [self = shared_from_this(), payload](beast::error_code ec, std::size_t) {
                      self->outbox_.EndWrite();
                      if (ec) {
                        self->Close();
                        return;
                      }
                      self->Write();
                    });
  }

  ServerCore* server_;
  http::request<http::string_body> request_;  // the upgrade request, alive during accept
  websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer in_;
  ClientOutbox outbox_;
  bool open_ = false;
  bool counted_ = false;  // in server_->clients
  std::uint64_t snapshot_seq_ = 0;
};

// One HTTP connection: serves assets, or hands the socket to a WsSession.
// Counted in server->http_connections while it lives.
class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(ServerCore* server, tcp::socket&& socket)
      : server_(server), stream_(std::move(socket)) {
    ++server_->http_connections;
  }
  ~HttpSession() { --server_->http_connections; }

  void Read() {
    parser_.emplace();
    ApplyLimits(server_->options, &*parser_);
    stream_.expires_after(std::chrono::seconds(30));
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       self->OnRead(ec);
                     });
  }

 private:
  void OnRead(beast::error_code ec) {
    if (ec == http::error::header_limit || ec == http::error::body_limit) {
      // Say why, then close: the rest of the request is not read.
      http::request<http::string_body> unread{http::verb::get, "/", 11};
      unread.keep_alive(false);
      return Reply(Plain(unread, ec == http::error::header_limit
                                     ? http::status::request_header_fields_too_large
                                     : http::status::payload_too_large,
                         "request too large\n"));
    }
    if (ec) {
      beast::error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
      return;
    }
    server_->CountRequest();
    http::request<http::string_body> request = parser_->release();
    const bool clients_full = websocket::is_upgrade(request) &&
                              server_->LiveSessions() >= server_->options.max_clients;
    const HttpRoute route = RouteHttpRequest(ViewOf(request), clients_full);

    if (route.kind == HttpRoute::Kind::kWebSocket) {
      stream_.expires_never();
      auto session = std::make_shared<WsSession>(server_, stream_.release_socket());
      server_->sessions.push_back(session);
      session->Run(std::move(request));
      return;
    }
    if (route.kind == HttpRoute::Kind::kRefusal) {
      auto response = Plain(request, static_cast<http::status>(route.status), route.text);
      if (route.status == 405) response.set(http::field::allow, "GET, HEAD");
      return Reply(std::move(response));
    }
    const WebAsset* asset = route.asset;
    http::response<http::string_body> response{http::status::ok, request.version()};
    response.set(http::field::server, "livealign");
    response.set(http::field::content_type, ContentType(asset->name));
    // The page changes with the binary: always revalidate rather than cache.
    response.set(http::field::cache_control, "no-cache");
    response.set("X-Content-Type-Options", "nosniff");
    response.set("Content-Security-Policy",
                 "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: blob:; "
                 "frame-ancestors 'none'");
    response.keep_alive(request.keep_alive());
    if (request.method() == http::verb::head) {
      response.content_length(asset->size);
    } else {
      response.body().assign(reinterpret_cast<const char*>(asset->data), asset->size);
      response.prepare_payload();
    }
    Reply(std::move(response));
  }

  static http::response<http::string_body> Plain(const http::request<http::string_body>& request,
                                                 http::status status, std::string text) {
    http::response<http::string_body> response{status, request.version()};
    response.set(http::field::server, "livealign");
    response.set(http::field::content_type, "text/plain; charset=utf-8");
    response.set(http::field::cache_control, "no-store");
    response.keep_alive(request.keep_alive());
    response.body() = std::move(text);
    response.prepare_payload();
    return response;
  }

  void Reply(http::response<http::string_body>&& response) {
    auto owned = std::make_shared<http::response<http::string_body>>(std::move(response));
    http::async_write(stream_, *owned,
                      [self = shared_from_this(), owned](beast::error_code ec, std::size_t) {
                        if (ec) return;
                        if (owned->need_eof()) {
                          beast::error_code ignored;
                          self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
                          return;
                        }
                        self->Read();
                      });
  }

  ServerCore* server_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
};

int ServerCore::LiveSessions() {
  sessions.erase(std::remove_if(sessions.begin(), sessions.end(),
                                [](const std::weak_ptr<WsSession>& w) {
                                  auto s = w.lock();
                                  return !s;
                                }),
                 sessions.end());
  return static_cast<int>(sessions.size());
}

void ServerCore::Accept() {
  acceptor->async_accept([this](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor->is_open()) return;
    if (!ec && http_connections.load() >= options.max_connections) {
      // Counted before the close, so a client that sees the close also sees
      // the count.
      {
        std::lock_guard<std::mutex> lock(mutex);
        ++stats.refused_connections;
      }
      beast::error_code ignored;
      socket.close(ignored);
    } else if (!ec) {
      std::make_shared<HttpSession>(this, std::move(socket))->Read();
    }
    Accept();
  });
}

void ServerCore::Distribute(const Encoded& encoded) {
  for (const auto& weak : sessions) {
    if (auto session = weak.lock()) session->Enqueue(encoded);
  }
}

}  // namespace

struct HttpServer::Impl : ServerCore {
  using ServerCore::ServerCore;
};

// ---------------------------------------------------------------------------

HttpServer::HttpServer(HttpServerOptions options) {
  std::string error;
  if (!options.Check(&error)) throw std::invalid_argument("HttpServerOptions: " + error);
  impl_ = std::make_unique<Impl>(std::move(options));
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Start() {
  if (impl_->thread.joinable()) throw std::logic_error("HttpServer already started");
  tcp::endpoint endpoint;
  std::string error;
  ParseEndpoint(impl_->options.endpoint, &endpoint, &error);  // checked in the constructor
  try {
    impl_->io.restart();
    impl_->acceptor = std::make_unique<tcp::acceptor>(impl_->io);
    impl_->acceptor->open(endpoint.protocol());
    impl_->acceptor->set_option(asio::socket_base::reuse_address(true));
    impl_->acceptor->bind(endpoint);
    impl_->acceptor->listen(asio::socket_base::max_listen_connections);
  } catch (const boost::system::system_error& e) {
    impl_->acceptor.reset();
    throw std::runtime_error("cannot serve the web preview on " + impl_->options.endpoint + ": " +
                             e.code().message());
  }
  impl_->bound_port = impl_->acceptor->local_endpoint().port();
  impl_->work = std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(
      impl_->io.get_executor());
  impl_->Accept();
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->running = true;
  }
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

void HttpServer::Stop() {
  if (!impl_ || !impl_->thread.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->running = false;
  }
  // Close everything on the I/O thread (its objects are not thread-safe),
  // wait for that, then let run() return.
  std::promise<void> closed;
  asio::post(impl_->io, [this, &closed] {
    beast::error_code ignored;
    impl_->acceptor->close(ignored);
    for (const auto& weak : impl_->sessions) {
      if (auto session = weak.lock()) session->Close();
    }
    impl_->sessions.clear();
    closed.set_value();
  });
  closed.get_future().wait();
  impl_->work.reset();
  impl_->io.stop();
  impl_->thread.join();
  impl_->acceptor.reset();
}

int HttpServer::port() const { return impl_->bound_port; }

void HttpServer::Publish(const OutMessage& message) {
  Encoded encoded;
  encoded.topic = LatestKey(message);
  try {
    encoded.payload = std::make_shared<const std::string>(EncodeWebSocketMessage(message));
  } catch (const std::invalid_argument&) {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    ++impl_->stats.invalid_messages;
    return;
  }
  const bool reset = IsResetEvent(message);
  std::lock_guard<std::mutex> lock(impl_->mutex);
  ++impl_->stats.published;
  encoded.seq = impl_->next_seq++;
  // A reset abandons the series: a page opened (or a snapshot asked for) after
  // it must not show that series, only the reset itself.
  if (reset) impl_->latest.clear();
  impl_->latest[encoded.topic] = encoded;
  if (impl_->running) {
    asio::post(impl_->io, [impl = impl_.get(), encoded] { impl->Distribute(encoded); });
  }
}

HttpServerStats HttpServer::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  HttpServerStats stats = impl_->stats;
  stats.clients = impl_->clients.load();
  return stats;
}

}  // namespace livealign
