// A test-only feed for the web preview: starts HttpServer and publishes a
// realistic synthetic series (drift, average, frame, quality, matrices, event,
// series_end) the way the daemon does, so the page and its browser test can
// run without the daemon. Not a simulator of the physics: the shifts are a
// seeded random walk and the "average" a noisy two-vector lattice whose noise
// falls as 1/sqrt(frames).
//
//   web_feed_harness --http 127.0.0.1:0 --frames 40 --size 256 --rate 10 --truth FILE
//
// --matrices-k K publishes `matrices` of K frames (the bounded overview the
// daemon sends; K = 5000 is a long session) and answers the page's
// `matrices_window` requests for them. --timestamps 0 publishes nil timestamps (the page then plots against frame
// index). --channels HAADF,ABF publishes one average per channel (the second
// and later channels show the lattice in inverted contrast), registration
// channel (the first) last, as the daemon does. With each average goes a
// `mosaic` one frame width wider, binned to 256 px by the real codec. Prints "listening PORT" once the server is up, waits for --start-after-clients
// WebSocket clients (default 0), publishes the series, writes the last values it
// published to --truth as JSON, then serves until SIGINT/SIGTERM.

#include <msgpack.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/mosaic_preview.hpp"
#include "core/shift_matrix_view.hpp"
#include "stream/codec.hpp"
#include "stream/http_server.hpp"

namespace livealign {
namespace {

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

struct HarnessOptions {
  std::string endpoint = "127.0.0.1:0";
  int frames = 40;
  int size = 256;
  double rate_hz = 10;
  std::string truth_path;
  int start_after_clients = 0;
  std::string series = "sim-0001";
  double pixel_size_A = 0.5;
  bool timestamps = true;  // false: every timestamp_s is nil (and no drift rate)
  std::vector<std::string> channels;  // several detectors; empty = one unnamed channel
  int matrices_k = 0;  // > 0: `matrices` of this many frames (else of the frames so far)
  int mosaic_max_px = 256;  // the `mosaic` bound (the daemon's --mosaic-max-px)
};

// Pairs further apart than this are "not correlated", as the daemon's overlap
// gate leaves far-apart frames of a drifting series (a slow drift: at k = 5000
// 7.5 M pairs, the matrices' size where the dense message was 225 MB).
constexpr int kPairBand = 1500;

// The shift matrices of frames [0, k) as the daemon would publish them,
// built by the daemon's own view code: R_ij = s_j - s_i + a little noise that
// depends only on (i, j) (so a window agrees with the overview), a few pairs
// rejected, some snapped, pairs beyond kPairBand not correlated.
ShiftMatrixView SyntheticMatrices(ShiftMatrixViewBuilder builder, const std::vector<double>& sx,
                                  const std::vector<double>& sy, const std::vector<bool>& flagged) {
  auto wobble = [](int i, int j, int axis) {
    return 0.03 * std::sin(12.9898 * i + 78.233 * j + 37.719 * axis);
  };
  for (const auto& [first, end] : builder.LaterFrameRanges()) {
    for (int j = first; j < end; ++j) {
      for (int i = std::max(0, j - kPairBand); i < j; ++i) {
        const Shift value{sx[j] - sx[i] + wobble(i, j, 0), sy[j] - sy[i] + wobble(i, j, 1)};
        const bool rejected = flagged[i] || flagged[j] || (i * 7 + j * 3) % 29 == 0;
        const bool snapped = (i + j) % 23 == 0 && j - i > 4;
        builder.Add(i, j, rejected ? Shift{-value.y, value.x} : value,
                    rejected ? PairStatus::kRejected : snapped ? PairStatus::kSnapped : PairStatus::kInlier);
      }
    }
  }
  return builder.Finish([](int i, int j) { return j - i > kPairBand; });
}

using Packer = msgpack::packer<msgpack::sbuffer>;

std::string Str(const msgpack::sbuffer& b) { return std::string(b.data(), b.size()); }

void PackKey(Packer& p, const char* key) { p.pack(std::string(key)); }

template <typename T>
std::string Bytes(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

int Run(const HarnessOptions& o) {
  std::mt19937 rng(12345);
  std::normal_distribution<double> noise(0.0, 1.0);
  const int n_total = o.frames;
  const int s = o.size;
  const double dt = 1.0 / o.rate_hz;

  // Ground truth shifts: linear drift plus a random walk; frame 0 is (0, 0).
  // With --matrices-k the walk goes on to that many frames for the matrices.
  const int n_shifts = std::max(n_total, o.matrices_k);
  std::vector<double> sx(n_shifts), sy(n_shifts), residual(n_total);
  std::vector<bool> flagged(n_shifts, false);
  for (int i = 1; i < n_shifts; ++i) {
    sx[i] = sx[i - 1] + 0.30 + 0.15 * noise(rng);
    sy[i] = sy[i - 1] - 0.18 + 0.15 * noise(rng);
  }
  for (int i = 0; i < n_total; ++i) residual[i] = 0.02 + 0.01 * std::abs(noise(rng));
  if (n_total > 17) flagged[17] = true;

  // The frames the published matrices cover; a page's `matrices_window`
  // request is answered for them, as the daemon answers it.
  std::atomic<int> matrices_frames{0};
  HttpServerOptions server_options{o.endpoint};
  HttpServer* publish_to = nullptr;  // set before Start()
  server_options.on_client_message = [&](std::string_view bytes) {
    try {
      const ControlRequest request = DecodeControl(bytes);
      const int k = matrices_frames.load();
      if (request.cmd != "matrices_window" || !ShiftMatrixWindowError(k, request.window).empty()) {
        std::cerr << "web_feed_harness: refused page request " << request.cmd << "\n";
        return;
      }
      const ShiftMatrixView window =
          SyntheticMatrices(ShiftMatrixViewBuilder::Window(k, request.window), sx, sy, flagged);
      publish_to->Publish(EncodeMatricesWindow(SeriesId::Str(o.series), k, window));
    } catch (const std::exception& e) {
      std::cerr << "web_feed_harness: bad page request: " << e.what() << "\n";
    }
  };
  HttpServer server(std::move(server_options));
  publish_to = &server;
  server.Start();
  std::cout << "listening " << server.port() << std::endl;
  while (!g_stop && server.stats().clients < o.start_after_clients) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }

  // The clean lattice the average converges to (cycles/px).
  const double g1x = 0.125, g1y = 0.02, g2x = -0.03, g2y = 0.11;
  std::vector<float> clean(static_cast<std::size_t>(s) * s);
  for (int r = 0; r < s; ++r) {
    for (int c = 0; c < s; ++c) {
      const double phase1 = 2 * M_PI * (g1x * c + g1y * r), phase2 = 2 * M_PI * (g2x * c + g2y * r);
      clean[r * s + c] = static_cast<float>(100 + 20 * std::cos(phase1) + 20 * std::cos(phase2) +
                                            10 * std::exp(-((r - s / 3.0) * (r - s / 3.0) +
                                                            (c - s / 2.0) * (c - s / 2.0)) / 400.0));
    }
  }

  nlohmann::json truth, mosaic_truth;
  auto publish_event = [&](const std::string& level, const std::string& code,
                           const std::string& message, int frame) {
    msgpack::sbuffer b;
    Packer p(b);
    p.pack_map(frame >= 0 ? 5 : 4);
    PackKey(p, "level"); p.pack(level);
    PackKey(p, "code"); p.pack(code);
    PackKey(p, "message"); p.pack(message);
    PackKey(p, "series"); p.pack(o.series);
    if (frame >= 0) { PackKey(p, "frame"); p.pack(frame); }
    server.Publish(OutMessage{"event", Str(b), ""});
  };
  publish_event("info", "series_start", "series " + o.series + " started, " + std::to_string(s) +
                "x" + std::to_string(s) + " uint16", -1);

  const auto start = std::chrono::steady_clock::now();
  for (int n = 1; n <= n_total && !g_stop; ++n) {
    const int frame = n - 1;
    std::this_thread::sleep_until(start + std::chrono::duration<double>(frame * dt));

    // drift
    double rms = 0.03 + 0.02 * std::exp(-n / 10.0);
    double rate_x = n > 1 ? (sx[frame] - sx[0]) / (frame * dt) * o.pixel_size_A : 0;
    double rate_y = n > 1 ? (sy[frame] - sy[0]) / (frame * dt) * o.pixel_size_A : 0;
    {
      msgpack::sbuffer b;
      Packer p(b);
      p.pack_map(11);
      PackKey(p, "series"); p.pack(o.series);
      PackKey(p, "n_frames"); p.pack(n);
      PackKey(p, "frame"); p.pack(frame);
      PackKey(p, "shift_x_px"); p.pack(std::vector<double>(sx.begin(), sx.begin() + n));
      PackKey(p, "shift_y_px"); p.pack(std::vector<double>(sy.begin(), sy.begin() + n));
      PackKey(p, "residual_px"); p.pack(std::vector<double>(residual.begin(), residual.begin() + n));
      PackKey(p, "flagged"); p.pack(std::vector<bool>(flagged.begin(), flagged.begin() + n));
      PackKey(p, "timestamp_s");
      p.pack_array(n);
      for (int i = 0; i < n; ++i) {
        if (o.timestamps) p.pack(1000.0 + i * dt); else p.pack_nil();
      }
      PackKey(p, "latency_ms"); p.pack(8.0 + 2.0 * std::abs(noise(rng)));
      PackKey(p, "drift_rate_A_per_s");
      if (n > 1 && o.timestamps) { p.pack_array(2); p.pack(rate_x); p.pack(rate_y); } else { p.pack_nil(); }
      PackKey(p, "pixel_size_A"); p.pack(o.pixel_size_A);
      server.Publish(OutMessage{"drift", Str(b), ""});
    }

    // average: every 3rd frame and the last (rate-limited like the daemon)
    int max_shift = 0;
    for (int i = 0; i < n; ++i) {
      max_shift = std::max(max_shift, static_cast<int>(std::ceil(std::max(std::abs(sx[i]), std::abs(sy[i])))));
    }
    const std::size_t n_channels = std::max<std::size_t>(1, o.channels.size());
    for (std::size_t c = n_channels; c-- > 0 && (n % 3 == 0 || n == n_total || n == 1);) {
      std::vector<float> average(clean.size());
      const double sigma = 40.0 / std::sqrt(static_cast<double>(n));
      for (std::size_t i = 0; i < clean.size(); ++i) {
        const double value = c == 0 ? clean[i] : 240.0 - clean[i];
        average[i] = static_cast<float>(value + sigma * noise(rng));
      }
      msgpack::sbuffer b;
      Packer p(b);
      p.pack_map(o.channels.empty() ? 5 : 7);
      if (!o.channels.empty()) {
        PackKey(p, "channel"); p.pack(o.channels[c]);
        PackKey(p, "channels"); p.pack(o.channels);
      }
      PackKey(p, "series"); p.pack(o.series);
      PackKey(p, "n_frames"); p.pack(n);
      PackKey(p, "shape"); p.pack(std::vector<int>{s, s});
      PackKey(p, "dtype"); p.pack(std::string("float32"));
      PackKey(p, "valid");
      const int m = std::min(max_shift, s / 4);
      p.pack(std::vector<int>{m, s - m, m, s - m});
      server.Publish(OutMessage{"average", Str(b), Bytes(average)});

      // The mosaic, as the daemon binds it (the real codec): a drift of one
      // frame width to the left, frame 0's window on the right. Its counts
      // fall from n there to 1 at the far edge, and its top-left corner is
      // covered by no frame.
      AverageImage whole;
      whole.mosaic_extent = AverageImage::Rect{0, s, -s, s};
      whole.mosaic = Frame(Shape{s, 2 * s});
      whole.mosaic_counts = Frame(Shape{s, 2 * s});
      for (int r = 0; r < s; ++r) {
        for (int col = 0; col < 2 * s; ++col) {
          const int count = col >= s ? n : (r < s / 8 && col < s / 8) ? 0 : std::max(1, n * col / s);
          whole.mosaic_counts.at(r, col) = static_cast<float>(count);
          whole.mosaic.at(r, col) = count == 0 ? 0.0f : average[static_cast<std::size_t>(r) * s + col % s];
        }
      }
      whole.best_covered = AverageImage::Rect{0, s, 0, s};
      const MosaicPreview preview = MakeMosaicPreview(whole, Shape{s, s}, o.mosaic_max_px);
      server.Publish(EncodeMosaic(SeriesId::Str(o.series), n, n, preview,
                                  o.channels.empty() ? "" : o.channels[c], o.channels));
      if (c == 0) {
        std::uint64_t count_sum = 0;
        for (std::uint16_t v : preview.min_counts) count_sum += v;
        mosaic_truth = {{"bin", preview.bin}, {"rows", preview.mean.rows()}, {"cols", preview.mean.cols()},
                        {"n_frames", n}, {"count_sum", count_sum},
                        {"extent", {preview.extent.row0, preview.extent.row1, preview.extent.col0, preview.extent.col1}}};
      }
    }

    // a raw frame (uint16) every 5th frame
    if (frame % 5 == 0) {
      std::vector<std::uint16_t> raw(clean.size());
      for (std::size_t i = 0; i < clean.size(); ++i) {
        raw[i] = static_cast<std::uint16_t>(std::max(0.0, clean[i] + 40.0 * noise(rng)));
      }
      msgpack::sbuffer b;
      Packer p(b);
      p.pack_map(5);
      PackKey(p, "series"); p.pack(o.series);
      PackKey(p, "frame"); p.pack(frame);
      PackKey(p, "shape"); p.pack(std::vector<int>{s, s});
      PackKey(p, "dtype"); p.pack(std::string("uint16"));
      PackKey(p, "valid"); p.pack(std::vector<int>{0, s, 0, s});
      server.Publish(OutMessage{"frame", Str(b), Bytes(raw)});
    }

    // matrices (the pair statistics the quality message reports count the
    // frames so far, as before)
    int rejected = 0, pairs = 0;
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < n; ++j) {
        if (i == j) continue;
        ++pairs;
        if (flagged[i] || flagged[j] || (i * 7 + j * 3) % 29 == 0) ++rejected;
      }
    }
    const double rejected_fraction = pairs > 0 ? static_cast<double>(rejected) / pairs : 0.0;
    {
      const int k = o.matrices_k > 0 ? o.matrices_k : n;
      matrices_frames = k;
      const ShiftMatrixView overview =
          SyntheticMatrices(ShiftMatrixViewBuilder::Overview(k), sx, sy, flagged);
      server.Publish(EncodeMatrices(SeriesId::Str(o.series), n, overview));
    }

    // quality
    std::vector<int> flagged_list;
    for (int i = 0; i < n; ++i) if (flagged[i]) flagged_list.push_back(i);
    const double frc = std::min(0.45, 0.12 + 0.01 * n);
    const bool good = rms < 0.1 && flagged_list.size() <= 1;
    const std::string reason = good ? "consistent: RMS " + std::to_string(rms).substr(0, 5) + " px"
                                    : "frame 17 has no consistent pairs";
    {
      msgpack::sbuffer b;
      Packer p(b);
      p.pack_map(12);
      PackKey(p, "series"); p.pack(o.series);
      PackKey(p, "n_frames"); p.pack(n);
      PackKey(p, "consistency_rms_px"); p.pack(rms);
      PackKey(p, "rejected_pair_fraction"); p.pack(rejected_fraction);
      PackKey(p, "flagged_frames"); p.pack(flagged_list);
      PackKey(p, "pixel_size_A"); p.pack(o.pixel_size_A);
      PackKey(p, "info_transfer_cycles_per_px"); p.pack(0.4);
      PackKey(p, "frc_resolution_cycles_per_px"); p.pack(frc);
      PackKey(p, "lattice_reciprocal");
      p.pack(std::vector<std::vector<double>>{{g1x, g1y}, {g2x, g2y}});
      PackKey(p, "snr"); p.pack(2.0 * std::sqrt(static_cast<double>(n)));
      PackKey(p, "good"); p.pack(good);
      PackKey(p, "reason"); p.pack(reason);
      server.Publish(OutMessage{"quality", Str(b), ""});
    }
    if (n == 18 && n_total > 17) publish_event("warning", "frame_flagged", "no consistent pairs", 17);

    truth = {{"series", o.series},
             {"n_frames", n},
             {"last_shift_x_px", sx[frame]},
             {"last_shift_y_px", sy[frame]},
             {"consistency_rms_px", rms},
             {"rejected_pair_fraction", rejected_fraction},
             {"flagged_frames", flagged_list.size()},
             {"good", good},
             {"reason", reason},
             {"pixel_size_A", o.pixel_size_A},
             {"drift_rate_A_per_s", {rate_x, rate_y}}};
  }
  {
    msgpack::sbuffer b;
    Packer p(b);
    p.pack_map(2);
    PackKey(p, "series"); p.pack(o.series);
    PackKey(p, "n_frames"); p.pack(n_total);
    server.Publish(OutMessage{"series_end", Str(b), ""});
  }
  if (!o.truth_path.empty()) {
    truth["mosaic"] = mosaic_truth;
    std::ofstream(o.truth_path) << truth.dump(2) << "\n";
  }
  std::cout << "published " << n_total << std::endl;
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  server.Stop();
  return 0;
}

}  // namespace
}  // namespace livealign

int main(int argc, char** argv) {
  livealign::HarnessOptions o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    if (key == "--http") o.endpoint = value;
    else if (key == "--frames") o.frames = std::stoi(value);
    else if (key == "--size") o.size = std::stoi(value);
    else if (key == "--rate") o.rate_hz = std::stod(value);
    else if (key == "--truth") o.truth_path = value;
    else if (key == "--start-after-clients") o.start_after_clients = std::stoi(value);
    else if (key == "--series") o.series = value;
    else if (key == "--timestamps") o.timestamps = value != "0";
    else if (key == "--matrices-k") o.matrices_k = std::stoi(value);
    else if (key == "--channels") {
      std::stringstream names(value);
      for (std::string name; std::getline(names, name, ',');) o.channels.push_back(name);
    }
    else {
      std::cerr << "web_feed_harness: unknown option " << key << "\n";
      return 2;
    }
  }
  if (o.frames < 1 || o.size < 16 || o.rate_hz <= 0) {
    std::cerr << "web_feed_harness: need --frames >= 1, --size >= 16, --rate > 0\n";
    return 2;
  }
  std::signal(SIGINT, livealign::OnSignal);
  std::signal(SIGTERM, livealign::OnSignal);
  try {
    return livealign::Run(o);
  } catch (const std::exception& e) {
    std::cerr << "web_feed_harness: " << e.what() << "\n";
    return 1;
  }
}
