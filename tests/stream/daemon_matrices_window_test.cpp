// The `matrices_window` request through the daemon with the real
// RegistrationEngine, over TCP on 127.0.0.1: the series thread answers it
// (it owns the engine) by publishing the full-resolution window; bad requests
// are refused with a reason and counted; the web page's path
// (Daemon::SubmitPageRequest) carries out only this request.
#include "stream/daemon.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>

#include "core/simulator.hpp"
#include "stream/stream_clients.hpp"
#include "tests/stream/stream_test_util.hpp"

namespace livealign {
namespace {

using testing::kTimeout;
using Json = nlohmann::json;

std::vector<float> Floats(const Json& bin) {
  const std::vector<std::uint8_t>& bytes = bin.get_binary();
  std::vector<float> floats(bytes.size() / sizeof(float));
  std::memcpy(floats.data(), bytes.data(), floats.size() * sizeof(float));
  return floats;
}

Json Window(int i0, int j0, int n) { return Json{{"cmd", "matrices_window"}, {"i0", i0}, {"j0", j0}, {"n", n}}; }

TEST_CASE("matrices_window publishes the full-resolution window of the running series",
          "[stream][integration][matrices_window]") {
  DaemonOptions options = testing::LocalDaemonOptions("pull", "");
  Daemon daemon(options);
  daemon.Start();
  ResultSubscriber subscriber(daemon.publish_endpoint());
  ControlClient control(daemon.control_endpoint());
  REQUIRE(SyncSubscriber(subscriber, control, kTimeout));

  // No series yet.
  auto reply = control.RequestMap(Window(0, 0, 1), kTimeout);
  REQUIRE(reply);
  CHECK((*reply)["ok"] == false);
  CHECK((*reply)["code"] == "no_series");

  FrameSender sender(daemon.source_endpoint(), "push", false);
  REQUIRE(sender.WaitForPeer(kTimeout));
  SimulatorOptions sim;
  sim.shape = Shape{128, 128};
  sim.dose_counts_per_px = 2.0;
  Simulator microscope(sim, 21);
  constexpr int kFrames = 8;
  const SeriesId id = SeriesId::Str("w");
  SeriesStart start;
  start.series = id;
  start.shape = sim.shape;
  start.dtype = PixelType::kFloat32;
  start.expected_frames = 100;  // the series goes on while we ask
  sender.SendSeriesStart(start);
  for (int i = 0; i < kFrames; ++i) {
    const Frame frame = microscope.NextFrame();
    sender.SendFrame(testing::FrameHeaderFor(id, i, sim.shape), frame.data(),
                     frame.pixels().size() * sizeof(float));
  }
  // The frames are registered once their drift is out (the control request
  // would otherwise race the frames still on their way in); nothing changes
  // the engine after that, so the window shows the state of that drift.
  Json drift;
  while (drift.is_null() || drift["n_frames"] != kFrames) {
    auto m = subscriber.WaitFor("drift", kTimeout);
    REQUIRE(m);
    drift = m->header;
  }
  reply = control.RequestMap(Window(0, 0, kFrames), kTimeout);
  REQUIRE(reply);
  CAPTURE(reply->dump());
  REQUIRE((*reply)["ok"] == true);
  CHECK((*reply)["topic"] == "matrices_window");
  CHECK((*reply)["k"] == kFrames);
  const std::optional<ReceivedMessage> window = subscriber.WaitFor("matrices_window", kTimeout);
  REQUIRE(window);
  const Json& w = window->header;
  CHECK(w["series"] == "w");
  CHECK(w["k"] == kFrames);
  CHECK(w["i0"] == 0);
  CHECK(w["j0"] == 0);
  CHECK(w["block"] == 1);
  REQUIRE(w["n"] == kFrames);
  const std::vector<float> x = Floats(w["x"]), y = Floats(w["y"]);
  const std::vector<std::uint8_t>& status = w["status"].get_binary();
  REQUIRE(x.size() == static_cast<std::size_t>(kFrames * kFrames));
  REQUIRE(status.size() == x.size());
  int inliers = 0;
  for (int i = 0; i < kFrames; ++i) {
    for (int j = 0; j < kFrames; ++j) {
      CAPTURE(i, j);
      const std::size_t at = static_cast<std::size_t>(i * kFrames + j);
      CHECK(status[at] == status[static_cast<std::size_t>(j * kFrames + i)]);
      if (i == j) {
        CHECK(x[at] == 0);
        CHECK(status[at] == 0);
        continue;
      }
      if (status[at] != 1) continue;
      ++inliers;
      // Entry (i, j) reads s_j - s_i of the published shifts.
      CHECK_THAT(x[at], Catch::Matchers::WithinAbs(drift["shift_x_px"][j].get<double>() -
                                                       drift["shift_x_px"][i].get<double>(), 1.0));
      CHECK_THAT(y[at], Catch::Matchers::WithinAbs(drift["shift_y_px"][j].get<double>() -
                                                       drift["shift_y_px"][i].get<double>(), 1.0));
    }
  }
  CHECK(inliers >= kFrames * (kFrames - 1) / 2);

  // Refused, with the reason, and counted; the daemon goes on.
  const std::vector<std::pair<Json, std::string>> bad{
      {Window(0, 0, 0), "bad_window"},
      {Window(0, 0, 257), "bad_window"},
      {Window(5, 0, 4), "bad_window"},
      {Window(-1, 0, 2), "bad_window"},
      {Json{{"cmd", "matrices_window"}, {"i0", 0}, {"j0", 0}}, "missing_key"},
      {Json{{"cmd", "matrices_window"}, {"i0", "0"}, {"j0", 0}, {"n", 1}}, "bad_type"},
      {Json{{"cmd", "matrices_window"}, {"i0", 0}, {"j0", 0}, {"n", 1LL << 40}}, "bad_type"},
  };
  for (const auto& [request, code] : bad) {
    CAPTURE(request.dump());
    reply = control.RequestMap(request, kTimeout);
    REQUIRE(reply);
    CHECK((*reply)["ok"] == false);
    CHECK((*reply)["code"] == code);
    CHECK_FALSE((*reply)["error"].get<std::string>().empty());
  }

  // The page's path: a window is carried out, anything else refused.
  const std::vector<std::uint8_t> page_window = Json::to_msgpack(Window(2, 3, 4));
  daemon.SubmitPageRequest(std::string_view(reinterpret_cast<const char*>(page_window.data()), page_window.size()));
  const std::vector<std::uint8_t> page_reset = Json::to_msgpack(Json{{"cmd", "reset"}});
  daemon.SubmitPageRequest(std::string_view(reinterpret_cast<const char*>(page_reset.data()), page_reset.size()));
  daemon.SubmitPageRequest("not msgpack");
  auto from_page = subscriber.WaitFor("matrices_window", kTimeout);
  REQUIRE(from_page);
  CHECK(from_page->header["i0"] == 2);
  CHECK(from_page->header["j0"] == 3);
  CHECK(from_page->header["n"] == 4);

  reply = control.Request("status", kTimeout);
  REQUIRE(reply);
  CHECK((*reply)["state"] == "running");  // the page's reset was not carried out
  const Json& errors = (*reply)["errors_by_code"];
  CHECK(errors["no_series"] == 1);
  CHECK(errors["bad_window"] == 4);
  CHECK(errors["missing_key"] == 1);
  CHECK(errors["bad_type"] == 2);
  CHECK(errors["page_request_refused"] == 1);
  CHECK(errors["bad_msgpack"] == 1);

  daemon.Stop();
  daemon.Wait();
}

}  // namespace
}  // namespace livealign
