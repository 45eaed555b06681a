// A test-only ZeroMQ client for the browser test of the live preview: subscribes
// to the daemon's PUB socket like any other client, follows one series to its
// end, then asks the control socket for `status`, and writes
//   {"drift": <last drift map>, "quality": <last quality map>,
//    "series_end": <map>, "status": <status reply>}
// as JSON, so the test can check that the page shows what ZeroMQ subscribers got.
//
//   web_daemon_probe --publish tcp://127.0.0.1:P --control tcp://127.0.0.1:C --json FILE
//
// Prints "subscribed" once its subscription is in place (ZeroMQ's SUB connects
// asynchronously, so the first messages can still be missed; it only needs the
// last ones). Exits 0 after writing FILE, 1 when no series ends within
// --timeout-s (default 120) or the status request fails.

#include <chrono>
#include <fstream>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "stream/stream_clients.hpp"

int main(int argc, char** argv) {
  std::string publish, control, json_path;
  double timeout_s = 120;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    if (key == "--publish") publish = value;
    else if (key == "--control") control = value;
    else if (key == "--json") json_path = value;
    else if (key == "--timeout-s") timeout_s = std::stod(value);
    else {
      std::cerr << "web_daemon_probe: unknown option " << key << "\n";
      return 2;
    }
  }
  if (publish.empty() || control.empty() || json_path.empty()) {
    std::cerr << "usage: web_daemon_probe --publish EP --control EP --json FILE\n";
    return 2;
  }
  try {
    livealign::ResultSubscriber subscriber(publish);
    std::cout << "subscribed" << std::endl;
    nlohmann::json out;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    // Follow until series_end, then take what comes right after it (the daemon
    // may publish its final drift/quality around the end).
    bool ended = false;
    while (std::chrono::steady_clock::now() < deadline) {
      auto message = subscriber.Receive(std::chrono::milliseconds(ended ? 500 : 1000));
      if (!message) {
        if (ended) break;
        continue;
      }
      if (message->topic == "drift" || message->topic == "quality") {
        out[message->topic] = message->header;
      } else if (message->topic == "mosaic") {
        // The header and the sums of its two images (counts alone would be
        // megabytes of JSON).
        nlohmann::json header = message->header;
        double count_sum = 0;
        const std::vector<std::uint8_t>& counts = header["counts"].get_binary();
        for (std::size_t i = 0; i + 1 < counts.size(); i += 2) count_sum += counts[i] | (counts[i + 1] << 8);
        header.erase("counts");
        header["count_sum"] = count_sum;
        out["mosaic"] = header;
      } else if (message->topic == "series_end") {
        out["series_end"] = message->header;
        ended = true;
      }
    }
    if (!ended) {
      std::cerr << "web_daemon_probe: no series_end within " << timeout_s << " s\n";
      return 1;
    }
    livealign::ControlClient client(control);
    auto status = client.Request("status", std::chrono::milliseconds(5000));
    if (!status) {
      std::cerr << "web_daemon_probe: no status reply from " << control << "\n";
      return 1;
    }
    out["status"] = *status;
    std::ofstream(json_path) << out.dump(2) << "\n";
    std::cout << "wrote " << json_path << std::endl;
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "web_daemon_probe: " << e.what() << "\n";
    return 1;
  }
}
