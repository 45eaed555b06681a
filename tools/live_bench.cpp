#include "tools/live_bench.hpp"

#include <boost/program_options.hpp>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <future>
#include <thread>

#include "core/shift_errors.hpp"
#include "core/simulator.hpp"
#include "stream/daemon.hpp"
#include "stream/stream_clients.hpp"
#include "tools/engine_option_binding.hpp"

namespace po = boost::program_options;

namespace livealign {
namespace {

using Clock = std::chrono::steady_clock;

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const std::size_t i = std::min(v.size() - 1, static_cast<std::size_t>(p * (v.size() - 1) + 0.5));
  return v[i];
}

// Resident set now, from /proc/self/statm (resident pages); NaN if unreadable.
double RssMiB() {
  std::ifstream statm("/proc/self/statm");
  double size_pages = 0, resident_pages = 0;
  if (!(statm >> size_pages >> resident_pages)) return std::nan("");
  return resident_pages * static_cast<double>(sysconf(_SC_PAGESIZE)) / 1048576.0;
}

double PeakRssMiB() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux: KiB
}

}  // namespace

int RunLiveBench(int argc, char** argv) {
  int frames = 200, size = 512;
  double rate_hz = 10, dose = 0.3, duration_s = 0;
  std::string pattern = "pull", json_path;
  bool stalled_subscriber = false;
  double drift_px_per_frame = SimulatorOptions{}.initial_velocity_px_per_frame.Norm();
  std::uint64_t seed = 3;
  DaemonOptions daemon_options;
  po::options_description options("live benchmark options");
  options.add_options()
      ("help,h", "show this help")
      ("config", po::value<std::string>(), "ini file with any of these options")
      ("live", "accepted for `livealign bench --live`")
      ("frames", po::value(&frames)->default_value(frames), "frames in the series")
      ("duration-s", po::value(&duration_s)->default_value(0),
       "send for this long instead (frames = rate * duration); for overload runs")
      ("size", po::value(&size)->default_value(size), "frame size, px (square)")
      ("rate", po::value(&rate_hz)->default_value(rate_hz), "frames per second sent")
      ("pattern", po::value(&pattern)->default_value(pattern), "pull (PUSH->PULL) or sub (PUB->SUB)")
      ("dose", po::value(&dose)->default_value(dose, Text(dose)), "mean counts per pixel")
      ("drift-px-per-frame",
       po::value(&drift_px_per_frame)->default_value(drift_px_per_frame, Text(drift_px_per_frame)),
       "linear drift speed, px per frame (the simulator's direction), as for `bench`")
      ("seed", po::value(&seed)->default_value(seed), "simulator seed")
      ("queue-bytes", po::value(&daemon_options.queue_bytes)->default_value(daemon_options.queue_bytes),
       "daemon frame-queue bound, bytes")
      ("max-queue-wait-s",
       po::value(&daemon_options.max_queue_wait_s)->default_value(daemon_options.max_queue_wait_s),
       "daemon: no accepted frame waits longer in the queue; sub: one that waited or would wait "
       "longer is lost; pull: the sender is held back while one would (0 = bytes only)")
      ("average-interval-s",
       po::value(&daemon_options.average_interval_s)->default_value(daemon_options.average_interval_s),
       "daemon average rate limit")
      ("out", po::value(&daemon_options.out),
       "daemon output directory: the series is journaled there and its engine reads old frames "
       "back from the journal, as `serve --out` does (default: none, every frame kept in RAM)")
      ("json", po::value(&json_path), "also write the JSON line to this file")
      ("stalled-subscriber", po::bool_switch(&stalled_subscriber),
       "also connect a subscriber to every topic that never reads: the daemon's memory then shows "
       "what it keeps queued for a client that does not keep up");
  AddEngineOptions(&options, &daemon_options.engine);
  po::variables_map vm;
  if (!ParseCommandLine(argc, argv, options, {}, &vm, "usage: livealign bench --live [options]")) {
    return 0;
  }
  if (duration_s > 0) frames = std::max(1, static_cast<int>(std::lround(rate_hz * duration_s)));
  if (pattern != "pull" && pattern != "sub") {
    std::cerr << "livealign bench --live: --pattern must be pull or sub\n";
    return 2;
  }

  daemon_options.source = "tcp://127.0.0.1:*";
  daemon_options.source_bind = true;
  daemon_options.source_pattern = pattern;
  daemon_options.publish = "tcp://127.0.0.1:*";
  daemon_options.control = "tcp://127.0.0.1:*";
  daemon_options.save_interval_s = 0;
  daemon_options.log_events = false;
  Daemon daemon(daemon_options);
  daemon.Start();
  // The topics measured only: this process also hosts the daemon, and
  // decoding the averages and matrices would take CPU from it. The receive
  // backlog is bounded like any client's should be: a drift message carries
  // every frame (300 kB at k = 7000), and an unbounded backlog of them, while
  // this thread lags behind a loaded machine, would be counted in the same
  // process's RSS as the daemon's. Drift messages it missed are reported.
  constexpr int kBenchBacklogMessages = 2000;
  ResultSubscriber subscriber(daemon.publish_endpoint(), {"drift", "event", "series_end"},
                              kBenchBacklogMessages);
  // Never read: its backlog fills, then the daemon's queue for it.
  std::optional<ResultSubscriber> stalled;
  if (stalled_subscriber) stalled.emplace(daemon.publish_endpoint(), std::vector<std::string>{}, 1);
  ControlClient control(daemon.control_endpoint());
  if (!SyncSubscriber(subscriber, control, std::chrono::seconds(30))) {
    std::cerr << "livealign bench --live: subscriber never synchronised\n";
    return 1;
  }

  SimulatorOptions sim;
  sim.shape = Shape{size, size};
  sim.dose_counts_per_px = dose;
  sim.frame_time_s = 1.0 / rate_hz;
  if (!(drift_px_per_frame >= 0)) {
    std::cerr << "livealign bench --live: --drift-px-per-frame must be >= 0\n";
    return 2;
  }
  sim.initial_velocity_px_per_frame = SimulatorOptions::DefaultDriftAt(drift_px_per_frame);
  std::vector<Shift> truth(frames);
  std::atomic<bool> sender_ok{true};
  std::atomic<bool> sender_done{false};
  // The sender's socket stays open until the results are in: closing it
  // would discard what PULL back-pressure still holds in its buffers (its
  // linger is 5 s; at 2x for 60 s hundreds of frames wait there).
  std::promise<void> results_in;
  const std::shared_future<void> results_in_future = results_in.get_future().share();
  double generate_ms_max = 0;
  std::atomic<double> send_s{0};  // first to last frame sent (PULL back-pressure stretches it)
  std::thread sender_thread([&] {
    try {
      Simulator microscope(sim, seed);
      FrameSender sender(daemon.source_endpoint(), pattern == "pull" ? "push" : "pub", false);
      if (!sender.WaitForPeer(std::chrono::seconds(30))) throw std::runtime_error("no peer");
      const SeriesId id = SeriesId::Str("bench");
      SeriesStart start{id, sim.shape, PixelType::kUint16, {}, {}, sim.frame_time_s, frames, {}};
      sender.SendSeriesStart(start);
      std::vector<std::uint16_t> counts(static_cast<std::size_t>(sim.shape.Pixels()));
      const Clock::time_point t0 = Clock::now();
      for (int i = 0; i < frames; ++i) {
        const Clock::time_point g0 = Clock::now();
        const Frame frame = microscope.NextFrame();
        for (std::size_t p = 0; p < counts.size(); ++p) {
          counts[p] = static_cast<std::uint16_t>(std::lround(frame.data()[p]));
        }
        truth[i] = microscope.TrueShift(i);
        generate_ms_max = std::max(
            generate_ms_max, std::chrono::duration<double, std::milli>(Clock::now() - g0).count());
        std::this_thread::sleep_until(t0 + std::chrono::duration<double>(i / rate_hz));
        FrameMessage header{id, i, sim.shape, PixelType::kUint16, i * sim.frame_time_s, nullptr, 0, {}, {}};
        sender.SendFrame(header, counts.data(), counts.size() * sizeof(std::uint16_t));
      }
      send_s = std::chrono::duration<double>(Clock::now() - t0).count();
      sender.SendSeriesEnd(SeriesEnd{id, frames});
      sender_done = true;
      results_in_future.wait();
    } catch (const std::exception& e) {
      std::cerr << "livealign bench --live: sender: " << e.what() << "\n";
      sender_ok = false;
    }
    sender_done = true;
  });

  // k -> latency of the drift message for the k-th registered frame.
  std::map<int, double> latency_by_k;
  std::vector<double> queue_ms, engine_ms;
  std::map<std::string, int> events;
  std::vector<std::int64_t> lost_indices;
  nlohmann::json final_drift, series_end;
  // The newest live drift: what the error is measured on when no final one
  // came (an overloaded SUB can lose the sender's series_end, and then the
  // series is only finished when the daemon stops, after this loop).
  nlohmann::json latest_drift;
  // RSS sampled while the series runs: bounded means flat after the queue fills.
  std::vector<std::pair<double, double>> rss_samples;  // (s since start, MiB)
  Clock::time_point next_sample;
  const Clock::time_point start_time = Clock::now();
  // Overloaded SUB can drop the series_end itself: once the sender is done and
  // nothing arrived for this long, the series is counted from `status`.
  // Once the last frame's drift came, the quiet is the final solve and
  // precision stage over the whole series (tens of seconds at k = 7000), so
  // the wait for series_end is longer then.
  const auto quiet_limit = std::chrono::seconds(15);
  const auto finish_limit = std::chrono::seconds(600);
  bool last_frame_registered = false;
  Clock::time_point last_message = start_time;
  auto quiet = [&] { return Clock::now() - last_message > (last_frame_registered ? finish_limit : quiet_limit); };
  // The span of the live drift messages: registered frames over it is the
  // rate the daemon achieved (its sustainable rate when it was saturated).
  std::optional<Clock::time_point> first_drift;
  Clock::time_point last_drift;
  bool series_end_lost = false;
  // PULL holds the sender back, so an overloaded series takes as long as the
  // engine needs (minutes at 2x for 60 s): no time budget while messages
  // keep coming, only a stall of quiet_limit ends it. SUB ends in about the
  // sending time.
  const auto budget = std::chrono::duration<double>(frames / rate_hz * 3 + 120);
  const bool pull = pattern == "pull";
  while (series_end.is_null() && (pull || Clock::now() - start_time < budget)) {
    if (pull && quiet()) break;
    if (Clock::now() >= next_sample) {
      rss_samples.emplace_back(std::chrono::duration<double>(Clock::now() - start_time).count(),
                               RssMiB());
      next_sample = Clock::now() + std::chrono::seconds(1);
    }
    auto m = subscriber.Receive(std::chrono::milliseconds(500));
    if (!m || !m->header.is_object()) {
      if (!sender_ok) break;
      if (sender_done && quiet()) {
        series_end_lost = true;
        break;
      }
      continue;
    }
    last_message = Clock::now();
    if (m->topic == "drift") {
      if (m->header.value("final", false)) {
        final_drift = m->header;
      } else {
        const int n_frames = m->header["n_frames"].get<int>();
        latency_by_k[n_frames] = m->header["latency_ms"].get<double>();
        if (n_frames == frames) last_frame_registered = true;
        if (!first_drift) first_drift = Clock::now();
        last_drift = Clock::now();
        queue_ms.push_back(m->header.value("queue_ms", 0.0));
        engine_ms.push_back(m->header.value("engine_ms", 0.0));
        latest_drift = std::move(m->header);
      }
    } else if (m->topic == "event") {
      const std::string code = m->header.value("code", "");
      ++events[code];
      if (code == "queue_full" || code == "queue_wait") lost_indices.push_back(m->header["frame"].get<std::int64_t>());
    } else if (m->topic == "series_end") {
      series_end = m->header;
    }
  }
  results_in.set_value();
  sender_thread.join();
  const auto status = control.Request("status", std::chrono::seconds(30));
  daemon.Stop();
  daemon.Wait();
  if ((series_end.is_null() && !series_end_lost) || !status) {
    std::cerr << "livealign bench --live: the series did not complete\n";
    return 1;
  }

  std::vector<double> all;
  for (const auto& [k, ms] : latency_by_k) all.push_back(ms);
  // Latency grows with k (each frame is correlated with all earlier ones):
  // report ranges of k, the last being "at k = frames".
  const int bucket = std::max(1, frames / 4);
  struct Row {
    int k0, k1;
    double median, p90, max;
  };
  std::vector<Row> rows;
  for (int k0 = 1; k0 <= frames; k0 += bucket) {
    const int k1 = std::min(frames, k0 + bucket - 1);
    std::vector<double> v;
    for (int k = k0; k <= k1; ++k) {
      if (latency_by_k.count(k)) v.push_back(latency_by_k[k]);
    }
    rows.push_back({k0, k1, Percentile(v, 0.5), Percentile(v, 0.9), Percentile(v, 1.0)});
  }
  // The ten largest k reached (fewer than `frames` when frames were lost).
  std::vector<double> last10;
  int last_k0 = 0, last_k1 = 0;
  for (auto it = latency_by_k.rbegin(); it != latency_by_k.rend() && last10.size() < 10; ++it) {
    last10.push_back(it->second);
    if (last_k1 == 0) last_k1 = it->first;
    last_k0 = it->first;
  }
  // Accuracy of the final solve against the ground truth, as `bench` gives
  // it: the RMS after removing the mean offset (the absolute origin is a free
  // gauge; frame 0's own error would otherwise be added to every frame).
  double rms_error = std::nan("");
  const bool error_from_final = final_drift.is_object();
  const nlohmann::json& measured = error_from_final ? final_drift : latest_drift;
  if (measured.is_object() && !measured["frame_indices"].empty()) {
    const auto& idx = measured["frame_indices"];
    std::vector<Shift> estimated, expected;
    for (std::size_t j = 0; j < idx.size(); ++j) {
      estimated.push_back({measured["shift_x_px"][j].get<double>(), measured["shift_y_px"][j].get<double>()});
      expected.push_back(truth[idx[j].get<int>()]);
    }
    rms_error = CompareShifts(estimated, expected).rms_px;
  }
  const nlohmann::json& s = *status;
  const std::int64_t registered = series_end_lost ? s["n_frames"].get<std::int64_t>()
                                                 : series_end["n_frames"].get<std::int64_t>();
  const std::int64_t lost = frames - registered;

  std::cout << std::fixed << std::setprecision(1);
  std::cout << "live benchmark: " << frames << " frames of " << size << "x" << size << " uint16 at "
            << rate_hz << " frames/s, " << pattern << " over TCP 127.0.0.1\n";
  if (series_end_lost) {
    std::cout << "  series_end never arrived (dropped on the way, as SUB may): counted from status\n";
  }
  std::cout << "  frames registered " << registered << ", lost " << lost << " (missing "
            << s["frames_missing"] << ", of which lost in the queue " << s["frames_lost"] << ")\n";
  if (!lost_indices.empty()) {
    std::cout << "  lost indices:";
    // The first ones (the JSON line has them all).
    constexpr std::size_t kListed = 50;
    for (std::size_t i = 0; i < lost_indices.size() && i < kListed; ++i) std::cout << " " << lost_indices[i];
    if (lost_indices.size() > kListed) std::cout << " ... (" << lost_indices.size() << " in all)";
    std::cout << "\n";
  }
  std::cout << "  latency arrival -> drift message, ms:\n";
  std::cout << "      k range    median       p90       max\n";
  for (const Row& r : rows) {
    std::cout << "  " << std::setw(5) << r.k0 << "-" << std::setw(5) << r.k1 << std::setw(10)
              << r.median << std::setw(10) << r.p90 << std::setw(10) << r.max << "\n";
  }
  std::cout << "  " << std::setw(11) << "all" << std::setw(10) << Percentile(all, 0.5)
            << std::setw(10) << Percentile(all, 0.9) << std::setw(10) << Percentile(all, 1.0)
            << "\n";
  std::cout << "  of which: queue wait median " << Percentile(queue_ms, 0.5) << " ms (max "
            << Percentile(queue_ms, 1.0) << "), engine AddFrame median "
            << Percentile(engine_ms, 0.5) << " ms (max " << Percentile(engine_ms, 1.0) << ")\n";
  std::cout << "  latency of the last 10 frames (k = " << last_k0 << ".." << last_k1
            << "): median " << Percentile(last10, 0.5) << " ms, max " << Percentile(last10, 1.0)
            << " ms\n";
  // The wait of an accepted frame: its arrival to the engine's start
  // (queue_ms), which --max-queue-wait-s bounds (SUB by dropping, PULL by
  // holding the sender back, as well as the daemon's estimate of the wait).
  std::cout << "  longest wait of an accepted frame in the queue " << Percentile(queue_ms, 1.0)
            << " ms"
            << (daemon_options.max_queue_wait_s > 0
                    ? " (bound " + Text(daemon_options.max_queue_wait_s * 1000) + " ms" +
                          (pattern == "pull" ? ", held by back-pressure on the estimate)" : ")")
                    : std::string(" (no bound in time: bytes only)"))
            << "\n";
  std::cout << std::setprecision(3) << "  " << (error_from_final ? "final" : "latest live (no final drift came)")
            << " RMS error vs ground truth (mean offset removed): " << rms_error << " px\n"
            << std::setprecision(1);
  std::cout << "  peak RSS (whole process: simulator, daemon, subscriber; without --out the engine holds every "
               "registered frame) " << PeakRssMiB()
            << " MiB; queue high water " << s["queue_high_water_bytes"].get<double>() / 1048576.0
            << " MiB of " << s["queue_capacity_bytes"].get<double>() / 1048576.0 << " MiB\n";
  // Every frame sent and not registered must be accounted for. The daemon
  // sees each one as a gap in the indices (frames_missing) or refuses it
  // (frames_dropped); a frame lost on a full queue (SUB) is counted in
  // frames_lost and is usually a gap as well, so the two are not added. A
  // frame lost on a full queue after the last one that reached the engine is
  // no gap, so the larger of the two counts is the one that accounts.
  const std::int64_t accounted =
      std::max(s["frames_missing"].get<std::int64_t>(), s["frames_lost"].get<std::int64_t>()) +
      s["frames_dropped"].get<std::int64_t>();
  std::cout << "  lost frames accounted for: " << accounted << " of " << lost
            << (accounted == lost ? "" : "  (UNACCOUNTED)") << "; of which in the queue (full, or too long a wait) "
            << s["frames_lost"] << "\n";
  std::cout << "  sending took " << send_s.load() << " s for " << frames / rate_hz
            << " s of frames (PULL back-pressure stretches it)\n";
  // The engine's own rate: what the daemon can sustain at the end of this series.
  std::vector<double> engine_last;
  for (std::size_t i = engine_ms.size() > 10 ? engine_ms.size() - 10 : 0; i < engine_ms.size(); ++i) {
    engine_last.push_back(engine_ms[i]);
  }
  const double sustainable_hz = 1000.0 / Percentile(engine_last, 0.5);
  std::cout << "  engine-only rate at the end (1 / AddFrame ms of the last 10 frames) "
            << sustainable_hz << " frames/s; sent at " << std::setprecision(2)
            << rate_hz / sustainable_hz << "x that\n" << std::setprecision(1);
  // What the daemon achieved, everything included (journal, publishing):
  // when it was saturated (a full queue, frames lost or the sender held
  // back), this is its sustainable rate and rate / achieved the overload.
  const double drift_span_s =
      first_drift ? std::chrono::duration<double>(last_drift - *first_drift).count() : 0.0;
  const double achieved_hz =
      drift_span_s > 0 ? static_cast<double>(latency_by_k.size() - 1) / drift_span_s : std::nan("");
  std::cout << "  achieved " << achieved_hz << " registered frames/s over " << drift_span_s
            << " s of drift messages; offered " << rate_hz << " frames/s = " << std::setprecision(2)
            << rate_hz / achieved_hz << "x that" << std::setprecision(1) << "\n";
  // Accepted frames wait at most a full queue: its frames times the time per frame.
  const double frame_bytes = static_cast<double>(size) * size * sizeof(std::uint16_t);
  const double queue_frames = s["queue_capacity_bytes"].get<double>() / frame_bytes;
  std::cout << "  latency bound of a full queue: " << std::setprecision(0) << queue_frames
            << " frames x " << std::setprecision(1) << 1000.0 / achieved_hz << " ms = "
            << queue_frames * 1000.0 / achieved_hz << " ms\n";
  double rss_max = 0;
  std::cout << "  RSS over the run, MiB:";
  const std::size_t step = std::max<std::size_t>(1, rss_samples.size() / 8);
  for (std::size_t i = 0; i < rss_samples.size(); ++i) {
    rss_max = std::max(rss_max, rss_samples[i].second);
    if (i % step == 0 || i + 1 == rss_samples.size()) {
      std::cout << " " << std::setprecision(0) << rss_samples[i].first << "s:"
                << rss_samples[i].second;
    }
  }
  std::cout << std::setprecision(1) << " (max sampled " << rss_max << ")\n";
  std::cout << "  slowest simulated frame " << generate_ms_max << " ms (sender side)\n";
  const std::int64_t drift_missed = registered - static_cast<std::int64_t>(latency_by_k.size());
  std::cout << "  drift messages this bench's subscriber missed (it lagged over " << kBenchBacklogMessages
            << " messages): " << drift_missed << (stalled ? "; with a stalled subscriber connected" : "")
            << "\n";

  nlohmann::json line{{"bench", "live"},
                      {"pattern", pattern},
                      {"frames", frames},
                      {"size", size},
                      {"stalled_subscriber", stalled_subscriber},
                      {"drift_messages_missed", drift_missed},
                      {"rate_hz", rate_hz},
                      {"registered", registered},
                      {"lost", lost},
                      {"lost_indices", lost_indices},
                      {"frames_lost_in_queue", s["frames_lost"]},
                      {"frames_missing", s["frames_missing"]},
                      {"latency_ms_median", Percentile(all, 0.5)},
                      {"latency_ms_p90", Percentile(all, 0.9)},
                      {"latency_ms_max", Percentile(all, 1.0)},
                      {"latency_ms_median_last10", Percentile(last10, 0.5)},
                      {"latency_ms_max_last10", Percentile(last10, 1.0)},
                      {"queue_ms_max", Percentile(queue_ms, 1.0)},
                      {"queue_ms_median", Percentile(queue_ms, 0.5)},
                      {"engine_ms_median", Percentile(engine_ms, 0.5)},
                      {"final_rms_error_px", rms_error},
                      {"rms_error_from_final_drift", error_from_final},
                      {"peak_rss_mib", PeakRssMiB()},
                      {"rss_mib_max_sampled", rss_max},
                      {"lost_accounted", accounted},
                      {"series_end_lost", series_end_lost},
                      {"send_s", send_s.load()},
                      {"engine_only_hz_end", sustainable_hz},
                      {"achieved_hz", achieved_hz},
                      {"overload_factor", rate_hz / achieved_hz},
                      {"queue_latency_bound_ms", queue_frames * 1000.0 / achieved_hz},
                      {"queue_high_water_bytes", s["queue_high_water_bytes"]},
                      {"events", events}};
  nlohmann::json by_k = nlohmann::json::array();
  for (const Row& r : rows) {
    by_k.push_back({{"k0", r.k0}, {"k1", r.k1}, {"median", r.median}, {"p90", r.p90}, {"max", r.max}});
  }
  line["latency_by_k"] = by_k;
  std::cout << line.dump() << "\n";
  if (!json_path.empty()) std::ofstream(json_path) << line.dump() << "\n";
  return sender_ok ? 0 : 1;
}

}  // namespace livealign
