#include "stream/http_server.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <catch2/catch.hpp>
#include <msgpack.hpp>

#include <map>
#include <string>
#include <vector>

#include "stream/codec.hpp"
#include "stream/web_assets.hpp"

namespace livealign {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace websocket = boost::beast::websocket;
using tcp = boost::asio::ip::tcp;

std::string PackMap(const std::map<std::string, int>& values) {
  msgpack::sbuffer buffer;
  msgpack::pack(buffer, values);
  return std::string(buffer.data(), buffer.size());
}

http::response<http::string_body> Request(int port, http::verb method, const std::string& target) {
  asio::io_context io;
  beast::tcp_stream stream(io);
  stream.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
  http::request<http::string_body> request{method, target, 11};
  request.set(http::field::host, "127.0.0.1:" + std::to_string(port));
  http::write(stream, request);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.skip(method == http::verb::head);  // a HEAD response has no body to read
  http::read(stream, buffer, parser);
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  return parser.release();
}

// A blocking WebSocket client on the preview endpoint.
class WsClient {
 public:
  explicit WsClient(int port) : ws_(io_) {
    const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"),
                                 static_cast<unsigned short>(port));
    beast::get_lowest_layer(ws_).connect(endpoint);
    ws_.handshake("127.0.0.1:" + std::to_string(port), "/ws");
  }

  // The next message, decoded; `zone_` keeps it alive until the next call.
  msgpack::object Next() {
    beast::flat_buffer buffer;
    ws_.read(buffer);
    REQUIRE(ws_.got_binary());
    last_ = beast::buffers_to_string(buffer.data());
    handle_ = msgpack::unpack(last_.data(), last_.size());
    return handle_.get();
  }

  void Send(const std::string& bytes) {
    ws_.binary(true);
    ws_.write(asio::buffer(bytes));
  }

 private:
  asio::io_context io_;
  websocket::stream<beast::tcp_stream> ws_;
  std::string last_;
  msgpack::object_handle handle_;
};

std::string Topic(const msgpack::object& message) {
  REQUIRE(message.type == msgpack::type::ARRAY);
  REQUIRE(message.via.array.size >= 2);
  return message.via.array.ptr[0].as<std::string>();
}

std::map<std::string, int> Header(const msgpack::object& message) {
  return message.via.array.ptr[1].as<std::map<std::string, int>>();
}

TEST_CASE("options reject endpoints that are not host:port", "[stream][http]") {
  std::string error;
  HttpServerOptions options;
  CHECK(options.Check(&error));
  for (const std::string bad : {"", "8080", "127.0.0.1:", "127.0.0.1:99999", "example.com:80",
                                "127.0.0.1:80x"}) {
    CAPTURE(bad);
    options.endpoint = bad;
    CHECK_FALSE(options.Check(&error));
    CHECK_FALSE(error.empty());
  }
  options.endpoint = "[::1]:0";
  CHECK(options.Check(&error));
  options.endpoint = "127.0.0.1:0";
  options.max_queued_messages = 0;
  CHECK_FALSE(options.Check(&error));
  CHECK_THROWS_AS(HttpServer(options), std::invalid_argument);
}

TEST_CASE("the server serves only the embedded page files", "[stream][http]") {
  HttpServer server(HttpServerOptions{"127.0.0.1:0"});
  server.Start();
  REQUIRE(server.port() > 0);

  SECTION("GET / is the embedded index.html") {
    const WebAsset* index = FindWebAsset("index.html");
    REQUIRE(index != nullptr);
    const auto response = Request(server.port(), http::verb::get, "/");
    CHECK(response.result() == http::status::ok);
    CHECK(std::string(response[http::field::content_type]) == "text/html; charset=utf-8");
    CHECK(response.body() == std::string(reinterpret_cast<const char*>(index->data), index->size));
    CHECK(Request(server.port(), http::verb::get, "/index.html?x=1").body() == response.body());
  }
  SECTION("the msgpack library is embedded and served as JavaScript") {
    const auto response = Request(server.port(), http::verb::get, "/msgpack.min.js");
    CHECK(response.result() == http::status::ok);
    CHECK(std::string(response[http::field::content_type]) == "text/javascript; charset=utf-8");
    CHECK(response.body().find("MessagePack") != std::string::npos);
  }
  SECTION("unknown and traversal paths are 404") {
    const std::string target = GENERATE(
        as<std::string>{}, "/nope.html", "/../CMakeLists.txt", "/..%2FCMakeLists.txt",
        "/%2e%2e/%2e%2e/etc/passwd", "//etc/passwd", "/index.html/..", "/web/index.html",
        "/./index.html", "/%69ndex.html", "/ws");
    CAPTURE(target);
    const auto response = Request(server.port(), http::verb::get, target);
    CHECK(response.result() == http::status::not_found);
    CHECK(response.body() == "not found\n");
  }
  SECTION("methods other than GET and HEAD are refused") {
    CHECK(Request(server.port(), http::verb::post, "/").result() ==
          http::status::method_not_allowed);
    const auto head = Request(server.port(), http::verb::head, "/");
    CHECK(head.result() == http::status::ok);
    CHECK(std::string(head[http::field::content_length]) ==
          std::to_string(FindWebAsset("index.html")->size));
  }
  server.Stop();
  CHECK(server.stats().http_requests > 0);
}

TEST_CASE("a WebSocket client receives published messages as [topic, header, data]",
          "[stream][http]") {
  HttpServer server(HttpServerOptions{"127.0.0.1:0"});
  server.Start();
  WsClient client(server.port());

  server.Publish(OutMessage{"average", PackMap({{"series", 7}, {"n_frames", 3}}),
                            std::string("\x01\x02\x00\x04", 4)});
  const msgpack::object average = client.Next();
  CHECK(Topic(average) == "average");
  REQUIRE(average.via.array.size == 3);
  CHECK(Header(average) == std::map<std::string, int>{{"series", 7}, {"n_frames", 3}});
  const msgpack::object& data = average.via.array.ptr[2];
  REQUIRE(data.type == msgpack::type::BIN);
  CHECK(std::string(data.via.bin.ptr, data.via.bin.size) == std::string("\x01\x02\x00\x04", 4));

  server.Publish(OutMessage{"drift", PackMap({{"n_frames", 4}}), ""});
  const msgpack::object drift = client.Next();
  CHECK(Topic(drift) == "drift");
  CHECK(drift.via.array.size == 2);  // no data part
  CHECK(Header(drift).at("n_frames") == 4);

  SECTION("a header that is not one msgpack map is counted and not forwarded") {
    server.Publish(OutMessage{"drift", "\xc1", ""});  // 0xc1 is never valid msgpack
    server.Publish(OutMessage{"drift", PackMap({{"a", 1}}) + PackMap({{"b", 2}}), ""});
    server.Publish(OutMessage{"event", PackMap({{"n", 1}}), ""});
    CHECK(Topic(client.Next()) == "event");
    CHECK(server.stats().invalid_messages == 2);
  }
  SECTION("a client can ask for the snapshot again") {
    msgpack::sbuffer request;
    msgpack::pack(request, std::map<std::string, std::string>{{"cmd", "snapshot"}});
    client.Send(std::string(request.data(), request.size()));
    // Latest-only topics in publish order.
    CHECK(Topic(client.Next()) == "average");
    CHECK(Header(client.Next()).at("n_frames") == 4);
  }
  CHECK(server.stats().clients == 1);
  server.Stop();
}

TEST_CASE("a late client first gets the latest message of every topic", "[stream][http]") {
  HttpServer server(HttpServerOptions{"127.0.0.1:0"});
  // Published before Start: they only become part of the snapshot.
  server.Publish(OutMessage{"drift", PackMap({{"n_frames", 1}}), ""});
  server.Start();
  server.Publish(OutMessage{"average", PackMap({{"n_frames", 1}}), std::string(16, 'a')});
  server.Publish(OutMessage{"drift", PackMap({{"n_frames", 2}}), ""});
  server.Publish(OutMessage{"quality", PackMap({{"n_frames", 2}}), ""});

  WsClient late(server.port());
  // Latest per topic, oldest first: average (1), drift (2), quality (2).
  const msgpack::object first = late.Next();
  CHECK(Topic(first) == "average");
  CHECK(first.via.array.size == 3);
  const msgpack::object second = late.Next();
  CHECK(Topic(second) == "drift");
  CHECK(Header(second).at("n_frames") == 2);
  CHECK(Topic(late.Next()) == "quality");

  // Then live messages, with nothing of the snapshot repeated.
  server.Publish(OutMessage{"drift", PackMap({{"n_frames", 3}}), ""});
  const msgpack::object live = late.Next();
  CHECK(Topic(live) == "drift");
  CHECK(Header(live).at("n_frames") == 3);

  SECTION("and after a restart of the server the snapshot is still there") {
    server.Stop();
    server.Start();
    WsClient again(server.port());
    CHECK(Topic(again.Next()) == "average");
    CHECK(Topic(again.Next()) == "quality");
    const msgpack::object drift = again.Next();
    CHECK(Header(drift).at("n_frames") == 3);
  }
  server.Stop();
  CHECK(server.stats().published == 5);
}

std::shared_ptr<const std::string> Payload(const std::string& text) {
  return std::make_shared<const std::string>(text);
}

TEST_CASE("a slow client's outbox keeps the newest of each latest-only topic",
          "[stream][http]") {
  ClientOutbox outbox(4);
  CHECK(outbox.Push("average", Payload("average 1")) == 0);
  REQUIRE(*outbox.BeginWrite() == "average 1");  // in flight: never replaced
  CHECK(outbox.BeginWrite() == nullptr);          // one write at a time
  for (int i = 2; i <= 100; ++i) {
    CHECK(outbox.Push("average", Payload("average " + std::to_string(i))) == 0);
    CHECK(outbox.Push("drift", Payload("drift " + std::to_string(i))) == 0);
  }
  CHECK(outbox.waiting() == 2);
  outbox.EndWrite();
  // Place in line is kept (average first waited first), content is the newest.
  CHECK(*outbox.BeginWrite() == "average 100");
  outbox.EndWrite();
  CHECK(*outbox.BeginWrite() == "drift 100");
  outbox.EndWrite();
  CHECK(outbox.BeginWrite() == nullptr);
  CHECK(outbox.waiting() == 0);
}

TEST_CASE("a slow client's events are queued within a bound, oldest dropped first",
          "[stream][http]") {
  ClientOutbox outbox(3);
  CHECK(outbox.Push("event", Payload("event 0")) == 0);
  REQUIRE(*outbox.BeginWrite() == "event 0");
  int dropped = 0;
  for (int i = 1; i <= 10; ++i) dropped += outbox.Push("event", Payload("event " + std::to_string(i)));
  dropped += outbox.Push("series_end", Payload("end"));
  CHECK(outbox.Push("quality", Payload("quality")) == 0);  // latest-only: not counted
  CHECK(dropped == 8);
  CHECK(outbox.waiting() == 4);
  std::vector<std::string> sent;
  outbox.EndWrite();
  while (auto payload = outbox.BeginWrite()) {
    sent.push_back(*payload);
    outbox.EndWrite();
  }
  CHECK(sent == std::vector<std::string>{"event 9", "event 10", "end", "quality"});
  CHECK_THROWS_AS(ClientOutbox(0), std::invalid_argument);
}

TEST_CASE("a WebSocket upgrade from another origin is refused", "[stream][http]") {
  HttpServer server(HttpServerOptions{"127.0.0.1:0"});
  server.Start();
  asio::io_context io;
  websocket::stream<beast::tcp_stream> ws(io);
  beast::get_lowest_layer(ws).connect(
      tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(server.port())));
  const std::string host = "127.0.0.1:" + std::to_string(server.port());
  SECTION("a foreign page") {
    ws.set_option(websocket::stream_base::decorator([](websocket::request_type& request) {
      request.set(http::field::origin, "http://evil.example");
    }));
    beast::error_code ec;
    ws.handshake(host, "/ws", ec);
    CHECK(ec == websocket::error::upgrade_declined);
    // The refusal itself, seen as plain HTTP (Beast 1.74 does not hand the
    // declined response back from handshake).
    beast::tcp_stream stream(io);
    stream.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"),
                                 static_cast<unsigned short>(server.port())));
    http::request<http::empty_body> upgrade{http::verb::get, "/ws", 11};
    upgrade.set(http::field::host, host);
    upgrade.set(http::field::origin, "http://evil.example");
    upgrade.set(http::field::upgrade, "websocket");
    upgrade.set(http::field::connection, "upgrade");
    upgrade.set(http::field::sec_websocket_key, "dGhlIHNhbXBsZSBub25jZQ==");
    upgrade.set(http::field::sec_websocket_version, "13");
    http::write(stream, upgrade);
    beast::flat_buffer buffer;
    http::response<http::string_body> response;
    http::read(stream, buffer, response);
    CHECK(response.result() == http::status::forbidden);
  }
  SECTION("the page itself") {
    ws.set_option(websocket::stream_base::decorator([host](websocket::request_type& request) {
      request.set(http::field::origin, "http://" + host);
    }));
    beast::error_code ec;
    ws.handshake(host, "/ws", ec);
    CHECK_FALSE(ec);
  }
}

TEST_CASE("a busy port is reported with the endpoint", "[stream][http]") {
  HttpServer first(HttpServerOptions{"127.0.0.1:0"});
  first.Start();
  HttpServer second(HttpServerOptions{"127.0.0.1:" + std::to_string(first.port())});
  try {
    second.Start();
    FAIL("the second server bound a busy port");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).find(std::to_string(first.port())) != std::string::npos);
  }
}

// The `series` of a message's header map, or -1 when it has none (or nil).
int SeriesOf(const msgpack::object& message) {
  const msgpack::object& header = message.via.array.ptr[1];
  REQUIRE(header.type == msgpack::type::MAP);
  for (std::uint32_t n = 0; n < header.via.map.size; ++n) {
    const msgpack::object_kv& kv = header.via.map.ptr[n];
    if (kv.key.as<std::string>() == "series" && kv.val.type == msgpack::type::POSITIVE_INTEGER) {
      return kv.val.as<int>();
    }
  }
  return -1;
}

// The string value of `key` in a message's header map, or "" when absent.
std::string StringOf(const msgpack::object& message, const std::string& key) {
  const msgpack::object& header = message.via.array.ptr[1];
  if (header.type != msgpack::type::MAP) return "";
  for (std::uint32_t n = 0; n < header.via.map.size; ++n) {
    const msgpack::object_kv& kv = header.via.map.ptr[n];
    if (kv.key.as<std::string>() == key && kv.val.type == msgpack::type::STR) {
      return kv.val.as<std::string>();
    }
  }
  return "";
}

TEST_CASE("after a reset neither a new page nor a snapshot shows the abandoned series",
          "[stream][http]") {
  HttpServer server(HttpServerOptions{"127.0.0.1:0"});
  server.Start();
  WsClient open_page(server.port());  // a page open during the series
  constexpr int kAbandoned = 7, kNext = 8;
  for (const char* topic : {"drift", "quality", "average", "matrices", "frame"}) {
    server.Publish(OutMessage{topic, PackMap({{"series", kAbandoned}, {"n_frames", 5}}), ""});
  }
  // What the daemon publishes on `reset` (stream/daemon.cpp).
  Event abandoned;
  abandoned.level = "warning";
  abandoned.code = "series_reset";
  abandoned.message = "series abandoned by a reset request";
  abandoned.series = SeriesId::Int(kAbandoned);
  server.Publish(EncodeEvent(abandoned));
  Event reset;
  reset.level = "info";
  reset.code = "reset";
  reset.message = "daemon reset";
  server.Publish(EncodeEvent(reset));
  // A marker after the reset: a latest-only topic of the next series.
  server.Publish(OutMessage{"quality", PackMap({{"series", kNext}, {"n_frames", 1}}), ""});

  // Everything a client receives up to (and including) the marker.
  auto until_marker = [&](WsClient& client) {
    std::vector<std::pair<std::string, int>> seen;
    for (;;) {
      const msgpack::object message = client.Next();
      seen.emplace_back(Topic(message), SeriesOf(message));
      if (seen.back() == std::make_pair(std::string("quality"), kNext)) return seen;
      REQUIRE(seen.size() < 50);
    }
  };

  // The page that was open is told: the reset reaches it (and it clears itself).
  bool reset_seen = false;
  for (int n = 0; n < 50 && !reset_seen; ++n) reset_seen = StringOf(open_page.Next(), "code") == "reset";
  CHECK(reset_seen);

  // A page opened after the reset: its connect snapshot, then a snapshot it
  // asks for, hold the reset and the next series only. (Everything of the
  // abandoned series was published before it connected, so any of it here
  // came from a snapshot.)
  WsClient fresh(server.port());
  const auto on_connect = until_marker(fresh);
  for (const auto& [topic, series] : on_connect) {
    CAPTURE(topic);
    CHECK(series != kAbandoned);
  }
  CHECK(on_connect.front().first == "event");  // the reset itself, so the page clears
  msgpack::sbuffer request;
  msgpack::pack(request, std::map<std::string, std::string>{{"cmd", "snapshot"}});
  fresh.Send(std::string(request.data(), request.size()));
  const auto asked = until_marker(fresh);
  for (const auto& [topic, series] : asked) {
    CAPTURE(topic);
    CHECK(series != kAbandoned);
  }
  server.Stop();
}

TEST_CASE("routing never maps a request path beyond the embedded table", "[stream][http]") {
  const HttpServerOptions options;
  SECTION("traversal and encoded paths are 404, parsed from raw bytes") {
    const std::string target = GENERATE(
        as<std::string>{}, "/../CMakeLists.txt", "/..%2F..%2Fetc%2Fpasswd", "/%2e%2e/index.html",
        "/..\\..\\etc\\passwd", "/index.html%00", "/index.html/", "/./index.html", "//index.html",
        "/%69ndex.html", "/stream/web/index.html", "/../../../../../../etc/passwd",
        "http://127.0.0.1/etc/passwd", "*", "/ws");
    CAPTURE(target);
    const std::string raw = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    const HttpParseResult parsed = ParseAndRouteHttpRequest(raw, options, false);
    if (!parsed.error.empty()) {
      SUCCEED("refused by the parser: " + parsed.error);
    } else {
      REQUIRE(parsed.complete);
      CHECK(parsed.route.kind == HttpRoute::Kind::kRefusal);
      CHECK(parsed.route.status == 404);
      CHECK(parsed.route.asset == nullptr);
    }
  }
  SECTION("only exact names of the table are served") {
    const HttpParseResult index =
        ParseAndRouteHttpRequest("GET /?v=2 HTTP/1.1\r\nHost: x\r\n\r\n", options, false);
    REQUIRE(index.route.kind == HttpRoute::Kind::kAsset);
    CHECK(std::string(index.route.asset->name) == "index.html");
    for (const WebAsset& asset : WebAssets()) {
      HttpRequestView view;
      view.method = "HEAD";
      const std::string target = std::string("/") + asset.name;
      view.target = target;
      CHECK(RouteHttpRequest(view, false).asset == &asset);
    }
  }
  SECTION("an incomplete request is not routed, an oversized header is refused") {
    CHECK_FALSE(ParseAndRouteHttpRequest("GET / HTTP/1.1\r\nHost:", options, false).complete);
    const std::string big = "GET / HTTP/1.1\r\nX: " + std::string(options.max_request_bytes, 'a') +
                            "\r\n\r\n";
    CHECK_FALSE(ParseAndRouteHttpRequest(big, options, false).error.empty());
  }
  SECTION("upgrades: only /ws, same origin, within max_clients") {
    HttpRequestView view;
    view.method = "GET";
    view.target = "/ws";
    view.websocket_upgrade = true;
    view.host = "127.0.0.1:8080";
    CHECK(RouteHttpRequest(view, false).kind == HttpRoute::Kind::kWebSocket);
    CHECK(RouteHttpRequest(view, true).status == 503);
    view.has_origin = true;
    view.origin = "http://127.0.0.1:8080";
    CHECK(RouteHttpRequest(view, false).kind == HttpRoute::Kind::kWebSocket);
    view.origin = "http://evil.example";
    CHECK(RouteHttpRequest(view, false).status == 403);
    view.target = "/ws/../index.html";
    CHECK(RouteHttpRequest(view, false).status == 404);
  }
}

TEST_CASE("a snapshot request is recognised without trusting its sizes", "[stream][http]") {
  msgpack::sbuffer request;
  msgpack::pack(request, std::map<std::string, std::string>{{"cmd", "snapshot"}});
  CHECK(IsSnapshotRequest(std::string_view(request.data(), request.size())));
  // An array32 header claiming 2^32 - 1 elements (found by websocket_frame_fuzz).
  CHECK_FALSE(IsSnapshotRequest(std::string_view("\xdd\xff\xff\xff\xff", 5)));
  CHECK_FALSE(IsSnapshotRequest(std::string_view("\xdf\xff\xff\xff\xff", 5)));
}

TEST_CASE("a request header over max_request_bytes gets 431 and the connection closes",
          "[stream][http]") {
  HttpServer server(HttpServerOptions{"127.0.0.1:0"});
  server.Start();
  asio::io_context io;
  beast::tcp_stream stream(io);
  stream.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"),
                               static_cast<unsigned short>(server.port())));
  const std::string request = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " +
                              std::string(HttpServerOptions().max_request_bytes, 'a') + "\r\n\r\n";
  beast::error_code ec;
  asio::write(stream, asio::buffer(request), ec);  // may fail once the server closes
  beast::flat_buffer buffer;
  http::response<http::string_body> response;
  http::read(stream, buffer, response, ec);
  REQUIRE_FALSE(ec);
  CHECK(response.result() == http::status::request_header_fields_too_large);
  CHECK(response.need_eof());
}

// The status of a HEAD / request on an open connection (the body is skipped).
http::status HeadStatus(beast::tcp_stream& stream) {
  http::request<http::string_body> request{http::verb::head, "/", 11};
  request.set(http::field::host, "127.0.0.1");
  http::write(stream, request);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.skip(true);
  http::read(stream, buffer, parser);
  return parser.get().result();
}

TEST_CASE("plain HTTP connections beyond max_connections are closed at once", "[stream][http]") {
  HttpServerOptions options{"127.0.0.1:0"};
  options.max_connections = 2;
  HttpServer server(options);
  server.Start();
  const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"),
                               static_cast<unsigned short>(server.port()));
  asio::io_context io;
  // Two idle connections take both places; a request on the first proves the
  // server has accepted it.
  beast::tcp_stream first(io), second(io), third(io);
  first.connect(endpoint);
  CHECK(HeadStatus(first) == http::status::ok);
  second.connect(endpoint);
  third.connect(endpoint);  // the kernel accepts; the server then closes it
  char byte = 0;
  beast::error_code ec;
  third.socket().read_some(asio::buffer(&byte, 1), ec);
  CHECK(ec == asio::error::eof);
  // The refusal is counted once the I/O thread handled the third accept,
  // which happened before the close that ended the read above.
  CHECK(server.stats().refused_connections >= 1);
  // While the first connection still works.
  CHECK(HeadStatus(first) == http::status::ok);
}

TEST_CASE("a WebSocket message over max_ws_message_bytes closes that client", "[stream][http]") {
  HttpServerOptions options{"127.0.0.1:0"};
  options.max_ws_message_bytes = 1024;
  HttpServer server(options);
  server.Start();
  WsClient small(server.port());
  WsClient big(server.port());
  server.Publish(OutMessage{"drift", PackMap({{"n_frames", 1}}), ""});
  CHECK(Topic(small.Next()) == "drift");
  CHECK(Topic(big.Next()) == "drift");
  big.Send(std::string(1025, 'x'));
  CHECK_THROWS(big.Next());  // the server closed it (code "message too big")
  // The other client is unaffected.
  server.Publish(OutMessage{"drift", PackMap({{"n_frames", 2}}), ""});
  CHECK(Header(small.Next()).at("n_frames") == 2);
}

}  // namespace
}  // namespace livealign
