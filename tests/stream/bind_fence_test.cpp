#include "stream/bind_fence.hpp"

#include <catch2/catch.hpp>

namespace livealign {
namespace {

TEST_CASE("loopback and local transports are not remote", "[stream][fence]") {
  const std::string endpoint =
      GENERATE(as<std::string>{}, "tcp://127.0.0.1:5556", "tcp://127.0.0.1:*",
               "tcp://127.3.4.5:1", "tcp://localhost:5557", "tcp://[::1]:5557",
               "ipc:///tmp/livealign.sock", "inproc://results");
  CAPTURE(endpoint);
  CHECK(WhyZmqBindIsRemote(endpoint).empty());
}

TEST_CASE("wildcards, other addresses, names and network transports are remote",
          "[stream][fence]") {
  const std::string endpoint =
      GENERATE(as<std::string>{}, "tcp://0.0.0.0:5556", "tcp://*:5556", "tcp://[::]:5556",
               "tcp://192.168.1.10:5556", "tcp://eth0:5556", "tcp://example.org:1",
               "udp://127.0.0.1:5556", "pgm://eth0;239.192.1.1:5555", "tcp://127.0.0.1",
               "127.0.0.1:5556");
  CAPTURE(endpoint);
  CHECK_FALSE(WhyZmqBindIsRemote(endpoint).empty());
}

TEST_CASE("the web preview's host:port is checked the same way", "[stream][fence]") {
  CHECK(WhyHttpBindIsRemote("127.0.0.1:8080").empty());
  CHECK(WhyHttpBindIsRemote("localhost:0").empty());
  CHECK(WhyHttpBindIsRemote("[::1]:8080").empty());
  CHECK(WhyHttpBindIsRemote("0.0.0.0:8080") == "'0.0.0.0' binds every interface");
  CHECK_FALSE(WhyHttpBindIsRemote("10.0.0.1:8080").empty());
}

TEST_CASE("RemoteBinds lists every exposed endpoint with its option", "[stream][fence]") {
  DaemonOptions o;  // loopback defaults; the source is connected, not bound
  o.source = "tcp://10.0.0.5:5555";
  CHECK(RemoteBinds(o, "127.0.0.1:8080").empty());
  CHECK(RemoteBinds(o, "").empty());

  o.source_bind = true;
  o.publish = "tcp://0.0.0.0:5556";
  const std::vector<RemoteBind> remote = RemoteBinds(o, "0.0.0.0:8080");
  REQUIRE(remote.size() == 3);
  CHECK(remote[0].option == "--source");
  CHECK(remote[0].endpoint == "tcp://10.0.0.5:5555");
  CHECK(remote[1].option == "--publish");
  CHECK(remote[1].reason == "'0.0.0.0' binds every interface");
  CHECK(remote[2].option == "--http");
}

}  // namespace
}  // namespace livealign
