// The exposure fence of `livealign serve` (tools/serve_command.cpp), on the real
// binary: remote binds need --allow-remote, and then save/reset/shutdown need
// the token of --control-token-file.
#include <catch2/catch.hpp>
#include <zmq.hpp>

#include <signal.h>

#include <algorithm>
#include <fstream>
#include <regex>

#include <nlohmann/json.hpp>

#include "stream/codec.hpp"
#include "tests/support/child_process.hpp"
#include "tests/support/test_data.hpp"

namespace livealign {
namespace {

using testing::ChildProcess;
using Json = nlohmann::json;
constexpr std::chrono::seconds kTimeout{60};  // generous: loaded 2-core machines

std::vector<std::string> LocalServe() {
  return {testing::LivealignBinary(), "serve", "--source", "tcp://127.0.0.1:*", "--source-bind",
          "true", "--source-pattern", "pull", "--publish", "tcp://127.0.0.1:*", "--control",
          "tcp://127.0.0.1:*", "--http", "", "--threads", "1"};
}

// `args` with each "--option value" of `more` replacing the same option's
// value, or appended (a flag followed by another option is appended alone).
std::vector<std::string> With(std::vector<std::string> args,
                              const std::vector<std::string>& more) {
  for (std::size_t i = 0; i < more.size(); ++i) {
    const bool has_value = i + 1 < more.size() && more[i + 1].rfind("--", 0) != 0;
    const auto it = std::find(args.begin(), args.end(), more[i]);
    if (has_value && it != args.end()) {
      *(it + 1) = more[++i];
    } else {
      args.push_back(more[i]);
      if (has_value) args.push_back(more[++i]);
    }
  }
  return args;
}

// The control endpoint serve printed.
std::string ControlOf(ChildProcess* serve) {
  const auto groups = serve->WaitForLine(std::regex("control on (\\S+)"), kTimeout);
  REQUIRE(groups);
  return (*groups)[0];
}

Json Control(const std::string& endpoint, const Json& request) {
  zmq::context_t context;
  zmq::socket_t req(context, zmq::socket_type::req);
  req.set(zmq::sockopt::linger, 0);
  req.set(zmq::sockopt::rcvtimeo, 60000);
  req.connect(endpoint);
  const std::vector<std::uint8_t> bytes = Json::to_msgpack(request);
  req.send(zmq::buffer(bytes.data(), bytes.size()), zmq::send_flags::none);
  zmq::message_t reply;
  REQUIRE(req.recv(reply, zmq::recv_flags::none));
  return MsgpackToJson(std::string_view(reply.data<char>(), reply.size()));
}

TEST_CASE("serve refuses a non-loopback bind without --allow-remote", "[tools][fence]") {
  const std::vector<std::string> remote = GENERATE(
      std::vector<std::string>{"--publish", "tcp://0.0.0.0:*"},
      std::vector<std::string>{"--control", "tcp://*:*"},
      std::vector<std::string>{"--source", "tcp://0.0.0.0:*"},
      std::vector<std::string>{"--http", "0.0.0.0:0"});
  CAPTURE(remote);
  ChildProcess serve(With(LocalServe(), remote));
  const int code = serve.Wait();
  const std::string said = serve.ReadAll(std::chrono::seconds(10));
  INFO(said);
  CHECK(code != 0);
  CHECK(said.find("refusing to bind " + remote[0] + " " + remote[1]) != std::string::npos);
  CHECK(said.find("--allow-remote") != std::string::npos);
  CHECK(said.find("results on") == std::string::npos);  // nothing was bound
}

TEST_CASE("with --allow-remote, state changes need the token file's token", "[tools][fence]") {
  const std::string dir = testing::ScratchDir("serve_fence");
  const std::string token_file = dir + "/token";
  std::ofstream(token_file) << "t0ken-from-file\n";

  SECTION("an unreadable token file is refused at start") {
    ChildProcess serve(With(LocalServe(), {"--allow-remote", "--control-token-file",
                                           dir + "/missing"}));
    CHECK(serve.Wait() != 0);
    CHECK(serve.ReadAll(std::chrono::seconds(10)).find("cannot read a token") !=
          std::string::npos);
  }
  SECTION("the token is required, status stays open") {
    ChildProcess serve(With(LocalServe(), {"--publish", "tcp://0.0.0.0:*", "--allow-remote",
                                           "--control-token-file", token_file}));
    const std::string control = ControlOf(&serve);
    CHECK(Control(control, {{"cmd", "status"}})["ok"] == true);
    const Json refused = Control(control, {{"cmd", "shutdown"}});
    CHECK(refused["ok"] == false);
    CHECK(refused["code"] == "unauthorized");
    CHECK(Control(control, {{"cmd", "reset"}, {"token", "t0ken-from-file\n"}})["ok"] == false);
    CHECK(Control(control, {{"cmd", "reset"}, {"token", "t0ken-from-file"}})["ok"] == true);
    CHECK(Control(control, {{"cmd", "shutdown"}, {"token", "t0ken-from-file"}})["ok"] == true);
    CHECK(serve.Wait() == 0);
  }
  SECTION("without a token file nothing may change state") {
    ChildProcess serve(With(LocalServe(), {"--allow-remote"}));
    const std::string control = ControlOf(&serve);
    const Json refused = Control(control, {{"cmd", "shutdown"}, {"token", ""}});
    CHECK(refused["ok"] == false);
    CHECK(refused["error"].get<std::string>().find("--control-token-file") != std::string::npos);
    serve.Signal(SIGTERM);
    CHECK(serve.Wait() == 0);
  }
}

TEST_CASE("watch --control-token-file sends the token of a daemon started with --allow-remote",
          "[tools][fence]") {
  const std::string dir = testing::ScratchDir("watch_token");
  const std::string token_file = dir + "/token";
  const std::string wrong_file = dir + "/wrong";
  std::ofstream(token_file) << "w4tch-token\n";
  std::ofstream(wrong_file) << "not-it\n";
  ChildProcess serve(With(LocalServe(), {"--publish", "tcp://0.0.0.0:*", "--allow-remote",
                                         "--control-token-file", token_file}));
  const std::string control = ControlOf(&serve);
  // The reply watch prints for one request, and its exit code.
  auto watch = [&](const std::vector<std::string>& more) {
    std::vector<std::string> args{testing::LivealignBinary(), "watch", "--control", control};
    args.insert(args.end(), more.begin(), more.end());
    ChildProcess child(args, /*capture_stdout=*/true);
    const int code = child.Wait();
    const std::string said = child.ReadAll(std::chrono::seconds(10));
    INFO(said);
    const std::size_t brace = said.find('{');
    Json reply = brace == std::string::npos ? Json()
                                            : Json::parse(said.substr(brace), nullptr, false);
    return std::make_pair(code, reply);
  };
  const auto [no_token_code, no_token] = watch({"--request", "reset"});
  CHECK(no_token_code == 1);
  CHECK(no_token["code"] == "unauthorized");
  const auto [wrong_code, wrong] = watch({"--request", "reset", "--control-token-file", wrong_file});
  CHECK(wrong_code == 1);
  CHECK(wrong["error"].get<std::string>().find("wrong token") != std::string::npos);
  const auto [reset_code, reset] =
      watch({"--request", "reset", "--control-token-file", token_file});
  CHECK(reset_code == 0);
  CHECK(reset["ok"] == true);
  const auto [missing_code, missing] =
      watch({"--request", "status", "--control-token-file", dir + "/missing"});
  CHECK(missing_code == 2);
  const auto [stop_code, stop] =
      watch({"--request", "shutdown", "--control-token-file", token_file});
  CHECK(stop_code == 0);
  CHECK(stop["stopping"] == true);
  CHECK(serve.Wait() == 0);
}

}  // namespace
}  // namespace livealign
