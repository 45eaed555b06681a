// WebSocket frames from a client, as the web preview reads them: Boost.Beast's
// server-side websocket stream with the server's message limit
// (HttpServerOptions::max_ws_message_bytes), fed arbitrary bytes after a valid
// upgrade, and every message it yields handed to IsSnapshotRequest as the
// server does. Beast's in-memory test stream stands in for the socket.
#include <boost/asio/io_context.hpp>
#include <boost/beast/_experimental/test/stream.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <cstdint>

#include "stream/http_server.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace beast = boost::beast;
  namespace websocket = boost::beast::websocket;
  static const livealign::HttpServerOptions options;
  boost::asio::io_context io;
  websocket::stream<beast::test::stream> ws(io);
  beast::test::stream client(io);  // takes the server's writes (the upgrade reply, pongs)
  ws.next_layer().connect(client);
  ws.next_layer().append(
      "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
  beast::error_code ec;
  ws.accept(ec);
  if (ec) __builtin_trap();  // the fixed upgrade above is valid
  ws.read_message_max(options.max_ws_message_bytes);
  ws.next_layer().append(
      beast::string_view(reinterpret_cast<const char*>(data), size));
  client.close();  // end of input after the fuzz bytes
  for (int messages = 0; messages < 64; ++messages) {
    beast::flat_buffer buffer;
    ws.read(buffer, ec);
    if (ec) break;
    if (buffer.size() > options.max_ws_message_bytes) __builtin_trap();
    (void)livealign::IsSnapshotRequest(beast::buffers_to_string(buffer.data()));
  }
  return 0;
}
