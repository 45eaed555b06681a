// `livealign watch`: follows a running daemon in the terminal: one line per
// registered frame, events highlighted, a summary at the end.
#include <boost/program_options.hpp>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>

#include "stream/stream_clients.hpp"
#include "tools/command.hpp"
#include "tools/control_token.hpp"
#include "tools/engine_option_binding.hpp"

namespace po = boost::program_options;

namespace livealign {
namespace {

std::string Number(const nlohmann::json& v, int precision = 3) {
  if (!v.is_number()) return "-";
  std::ostringstream s;
  s << std::fixed << std::setprecision(precision) << v.get<double>();
  return s.str();
}

// "0.82 Å" when the Å figure is known, else "0.203 c/px"; "-" when neither.
std::string Resolution(const nlohmann::json& q, const std::string& a_key,
                       const std::string& cycles_key) {
  if (q.value(a_key, nlohmann::json()).is_number()) return Number(q[a_key], 2) + " Å";
  if (q.value(cycles_key, nlohmann::json()).is_number()) return Number(q[cycles_key]) + " c/px";
  return "-";
}

// One line of the image-quality figures of a `quality` header;
// empty when the daemon sent none.
std::string ImageQualityLine(const nlohmann::json& q) {
  if (!q.contains("good")) return "";
  std::ostringstream line;
  line << "resolution " << Resolution(q, "frc_resolution_A", "frc_resolution_cycles_per_px")
       << " (" << q.value("frc_status", "?") << "), SNR " << Number(q.value("snr", nlohmann::json()), 2)
       << ", info transfer " << Resolution(q, "info_transfer_A", "info_transfer_cycles_per_px")
       << " (one frame " << Resolution(q, "single_frame_info_transfer_A", "single_frame_info_transfer_cycles_per_px")
       << "), drift " << q.value("drift_trend", "?")
       << (q.value("drift_settled", false) ? " settled" : "") << ", good: "
       << (q.value("good", false) ? "yes" : "no") << (q.value("stop", false) ? " (stop)" : "");
  const std::string reason = q.value("reason", "");
  if (!reason.empty()) line << " - " << reason;
  return line.str();
}

int RunWatch(int argc, char** argv) {
  std::string connect = "tcp://127.0.0.1:5556", control, token_file, request;
  int frames = 0;
  bool until_series_end = false;
  double idle_timeout_s = 0;
  po::options_description options("options");
  options.add_options()
      ("help,h", "show this help")
      ("config", po::value<std::string>(), "ini file with any of these options")
      ("connect", po::value(&connect)->default_value(connect), "the daemon's --publish endpoint")
      ("control", po::value(&control), "the daemon's --control endpoint (snapshot on start)")
      ("control-token-file", po::value(&token_file),
       "file holding the daemon's control token (serve --control-token-file), sent with "
       "every control request")
      ("request", po::value(&request),
       "send this one control request to --control (status, snapshot, save, reset, "
       "shutdown), print the reply as JSON and exit: 0 when it succeeded, 1 when refused, "
       "2 without a reply")
      ("frames", po::value(&frames)->default_value(0), "stop after N drift updates (0 = never)")
      ("until-series-end", po::bool_switch(&until_series_end), "stop at the first series_end")
      ("idle-timeout-s", po::value(&idle_timeout_s)->default_value(0),
       "stop after this long without a message (0 = never)");
  po::variables_map vm;
  if (!ParseCommandLine(argc, argv, options, {}, &vm, "usage: livealign watch --connect ENDPOINT")) {
    return 0;
  }
  std::string token;
  if (!token_file.empty()) {
    const std::optional<std::string> read = ReadControlTokenFile(token_file);
    if (!read) {
      std::cerr << "livealign watch: --control-token-file " << token_file
                << ": cannot read a token (missing, unreadable or empty)" << std::endl;
      return 2;
    }
    token = *read;
  }
  if (!request.empty()) {
    if (control.empty()) {
      std::cerr << "livealign watch: --request needs --control" << std::endl;
      return 2;
    }
    ControlClient client(control, token);
    const std::optional<nlohmann::json> reply = client.Request(request, std::chrono::seconds(30));
    if (!reply) {
      std::cerr << "livealign watch: no reply from " << control << std::endl;
      return 2;
    }
    std::cout << reply->dump() << std::endl;
    return reply->value("ok", false) ? 0 : 1;
  }
  const bool tty = isatty(STDOUT_FILENO) != 0;
  auto colour = [tty](const std::string& level, const std::string& text) {
    if (!tty) return text;
    const char* code = level == "error"     ? "\033[31m"
                       : level == "warning" ? "\033[33m"
                       : level == "good"    ? "\033[32m"
                                            : "\033[36m";
    return code + text + "\033[0m";
  };

  // Only the topics shown: the large latest-only ones (average, frame,
  // matrices) would cost a copy each for nothing.
  ResultSubscriber subscriber(connect, {"drift", "quality", "event", "series_end"});
  if (!control.empty()) {
    ControlClient client(control, token);
    if (auto snap = client.Request("snapshot", std::chrono::seconds(5)); snap && (*snap)["drift"].is_object()) {
      const auto& d = (*snap)["drift"];
      std::cout << "joined series " << d["series"] << " at frame " << d["frame"] << " ("
                << d["n_frames"] << " registered)\n";
    }
  }
  std::cout << std::setw(7) << "frame" << std::setw(10) << "shift_x" << std::setw(10) << "shift_y"
            << std::setw(22) << "drift A/s (x, y)" << std::setw(12) << "latency_ms"
            << std::setw(13) << "consist_px" << std::endl;  // flushed: watch is often piped
  std::vector<double> latencies;
  std::map<std::string, int> events;
  nlohmann::json last_drift, last_quality;  // latest headers (null until seen)
  std::string last_quality_line;
  int drift_updates = 0;
  // Frames already printed in the current series: a drift message carries
  // every frame so far, so frames published before this subscriber joined
  // (PUB/SUB drops messages sent before the subscription lands) are printed
  // from the first message received, marked "joined".
  std::string current_series;
  std::size_t printed = 0;
  auto last_message = std::chrono::steady_clock::now();
  while (true) {
    auto m = subscriber.Receive(std::chrono::milliseconds(250));
    if (!m) {
      if (idle_timeout_s > 0 && std::chrono::steady_clock::now() - last_message >
                                    std::chrono::duration<double>(idle_timeout_s)) {
        break;
      }
      continue;
    }
    last_message = std::chrono::steady_clock::now();
    const nlohmann::json& h = m->header;
    if (!h.is_object()) continue;
    if (m->topic == "quality") {
      last_quality = h;
      // The figures are recomputed every --quality-interval-s and repeated in
      // between: a line only when they change.
      const std::string line = ImageQualityLine(h);
      if (!line.empty() && line != last_quality_line) {
        std::cout << colour(h.value("good", false) ? "good" : "info", "  quality: " + line) << "\n";
        last_quality_line = line;
      }
    } else if (m->topic == "drift") {
      last_drift = h;
      const std::size_t n = h["shift_x_px"].size();
      if (h["series"].dump() != current_series) {
        current_series = h["series"].dump();
        printed = 0;
      }
      const auto& indices = h["frame_indices"];
      for (std::size_t i = printed; i + 1 < n; ++i) {
        const std::string index = indices.is_array() && i < indices.size() ? indices[i].dump()
                                                                             : std::to_string(i);
        std::cout << std::setw(7) << index << std::setw(10) << Number(h["shift_x_px"][i])
                  << std::setw(10) << Number(h["shift_y_px"][i]) << std::setw(22) << "-"
                  << std::setw(12) << "joined" << std::setw(13) << "-" << "\n";
      }
      printed = std::max(printed, n);
      const auto& rate = h["drift_rate_A_per_s"];
      const std::string rate_text =
          rate.is_array() ? "(" + Number(rate[0], 2) + ", " + Number(rate[1], 2) + ")" : "-";
      std::cout << std::setw(7) << (h.value("final", false) ? "final" : h["frame"].dump())
                << std::setw(10) << (n ? Number(h["shift_x_px"][n - 1]) : "-") << std::setw(10)
                << (n ? Number(h["shift_y_px"][n - 1]) : "-") << std::setw(22) << rate_text
                << std::setw(12) << Number(h["latency_ms"], 1) << std::setw(13)
                << (last_quality.is_object() ? Number(last_quality["consistency_rms_px"]) : "-")
                << "\n";
      if (!h.value("final", false)) latencies.push_back(h["latency_ms"].get<double>());
      if (frames > 0 && ++drift_updates >= frames) break;
    } else if (m->topic == "event") {
      const std::string level = h.value("level", "info");
      ++events[h.value("code", "?")];
      std::cout << colour(level, "  [" + level + "] " + h.value("code", "?") + ": " +
                                     h.value("message", ""))
                << "\n";
    } else if (m->topic == "series_end") {
      std::cout << "series " << h["series"] << " ended (" << h.value("reason", "") << "): "
                << h["n_frames"] << " frames\n";
      for (const auto& f : h["files"]) std::cout << "  wrote " << f.get<std::string>() << "\n";
      if (until_series_end) break;
    }
    std::cout.flush();
  }
  std::cout << "\nsummary: " << latencies.size() << " drift updates";
  if (!latencies.empty()) {
    std::sort(latencies.begin(), latencies.end());
    std::cout << ", latency median " << Number(latencies[latencies.size() / 2], 1) << " ms, max "
              << Number(latencies.back(), 1) << " ms";
  }
  std::cout << "\n";
  if (last_quality.is_object()) {
    std::cout << "consistency " << Number(last_quality["consistency_rms_px"]) << " px, flagged "
              << last_quality["flagged_frames"] << ", verdict: " << last_quality.value("verdict", "")
              << "\n";
    if (const std::string line = ImageQualityLine(last_quality); !line.empty()) {
      std::cout << "image quality: " << line << "\n";
    }
  }
  for (const auto& [code, count] : events) std::cout << "event " << code << " x" << count << "\n";
  return 0;
}

const CommandRegistrar kWatch{"watch", "follow a running daemon in the terminal", &RunWatch};

}  // namespace
}  // namespace livealign
