// `livealign simulate`: a simulated microscope (core/simulator.hpp) streaming a
// drifting series to the daemon over wire protocol v1, optionally writing the
// ground-truth shifts. With --feedback it closes the loop of a scan drift
// corrector: it subscribes to the daemon's drift messages and acquires each
// frame with its field of view moved to the predicted specimen position
// (predicted_shift_px, docs/protocol.md), then reports the drift left in the
// frames against the open-loop drift of the same specimen.
#include <boost/program_options.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>
#include <thread>

#include "core/simulator.hpp"
#include "stream/stream_clients.hpp"
#include "tools/command.hpp"
#include "tools/engine_option_binding.hpp"

namespace po = boost::program_options;

namespace livealign {
namespace {

double Median(std::vector<double> v) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The drift figures of a series of content positions (frame 0's field of
// view is the reference): median frame-to-frame step and largest distance
// from frame 0.
struct DriftLeft {
  double median_step_px = 0, max_px = 0, rms_px = 0;
};
DriftLeft Measure(const std::vector<Shift>& positions) {
  DriftLeft d;
  std::vector<double> steps;
  double sum_sq = 0;
  for (std::size_t i = 0; i < positions.size(); ++i) {
    d.max_px = std::max(d.max_px, positions[i].Norm());
    sum_sq += positions[i].Norm() * positions[i].Norm();
    if (i > 0) steps.push_back((positions[i] - positions[i - 1]).Norm());
  }
  d.median_step_px = Median(steps);
  d.rms_px = positions.empty() ? 0 : std::sqrt(sum_sq / static_cast<double>(positions.size()));
  return d;
}

// The daemon's prediction for `frame` from a drift message, if it has one.
std::optional<Shift> PredictionFor(const nlohmann::json& drift, int frame) {
  const auto& p = drift["predicted_shift_px"];
  if (!p.is_array() || p.size() != 2 || !p[0].is_number() || !p[1].is_number()) return std::nullopt;
  if (!drift["predicted_for_frame"].is_number_integer() || drift["predicted_for_frame"] != frame) {
    return std::nullopt;
  }
  return Shift{p[0].get<double>(), p[1].get<double>()};
}

int RunSimulate(int argc, char** argv) {
  SimulatorOptions sim;
  std::string endpoint = "tcp://127.0.0.1:5555", pattern = "pub", truth, series = "sim";
  int frames = 50, size = sim.shape.rows;
  double rate_hz = 10, wait_s = 30;
  std::uint64_t seed = 1;
  std::string bind = "auto";
  bool feedback = false, observe = false;
  std::string results_endpoint = "tcp://127.0.0.1:5556", control_endpoint = "tcp://127.0.0.1:5557";
  double feedback_timeout_s = 10;
  po::options_description options("options");
  options.add_options()
      ("help,h", "show this help")
      ("config", po::value<std::string>(), "ini file with any of these options")
      ("publish", po::value(&endpoint)->default_value(endpoint), "endpoint frames are sent to")
      ("pattern", po::value(&pattern)->default_value(pattern), "pub or push")
      ("bind", po::value(&bind)->default_value(bind),
       "true: bind the endpoint, false: connect; auto: pub binds (the daemon's SUB "
       "connects), push connects (to a daemon started with --source-bind true)")
      ("frames", po::value(&frames)->default_value(frames), "frames in the series")
      ("size", po::value(&size)->default_value(size), "frame size, px (square)")
      ("rate", po::value(&rate_hz)->default_value(rate_hz), "frames per second (0 = as fast as possible)")
      ("dose", po::value(&sim.dose_counts_per_px)->default_value(sim.dose_counts_per_px, Text(sim.dose_counts_per_px)), "mean counts per pixel")
      ("specimen", po::value<std::string>()->default_value("perovskite"), "perovskite, square or hexagonal")
      ("seed", po::value(&seed)->default_value(seed), "random seed")
      ("series", po::value(&series)->default_value(series), "series name")
      ("truth", po::value(&truth), "write the true shifts to this CSV")
      ("wait-subscribers", po::value(&wait_s)->default_value(wait_s),
       "seconds to wait for the daemon to connect/subscribe before sending")
      ("feedback", po::value(&feedback)->default_value(feedback)->implicit_value(true),
       "scan feedback: move the field of view of each frame to the daemon's predicted_shift_px "
       "(a flag; needs --results and --control)")
      ("observe", po::value(&observe)->default_value(observe)->implicit_value(true),
       "subscribe like --feedback and report the prediction error, but never move (open loop)")
      ("results", po::value(&results_endpoint)->default_value(results_endpoint),
       "the daemon's --publish endpoint (--feedback, --observe)")
      ("control", po::value(&control_endpoint)->default_value(control_endpoint),
       "the daemon's --control endpoint (--feedback, --observe: syncs the subscription)")
      ("feedback-timeout-s", po::value(&feedback_timeout_s)->default_value(feedback_timeout_s),
       "longest wait for the previous frame's drift message before acquiring the next frame");
  po::variables_map vm;
  if (!ParseCommandLine(argc, argv, options, {}, &vm,
                        "usage: livealign simulate --publish ENDPOINT --frames N --size S --rate HZ")) {
    return 0;
  }
  const std::string specimen = vm["specimen"].as<std::string>();
  sim.lattice = specimen == "square"      ? SpecimenLattice::kSquare
                : specimen == "hexagonal" ? SpecimenLattice::kHexagonal
                                          : SpecimenLattice::kPerovskite;
  sim.shape = Shape{size, size};
  sim.frame_time_s = rate_hz > 0 ? 1.0 / rate_hz : sim.frame_time_s;
  Simulator microscope(sim, seed);

  FrameSender sender(endpoint, pattern, bind == "true" || (bind == "auto" && pattern == "pub"));
  // PUB: wait for the daemon's subscription (XPUB reports it), so no frame is
  // sent into the void; PUSH: wait for the connection, then back-pressure.
  if (!sender.WaitForPeer(std::chrono::milliseconds(static_cast<long>(wait_s * 1000)))) {
    std::cerr << "livealign simulate: no receiver on " << sender.endpoint() << " after " << wait_s
              << " s\n";
    return 1;
  }
  // The drift subscription is proven live (a reset round trip) before the
  // series starts, so no drift message is missed.
  const bool subscribe = feedback || observe;
  std::unique_ptr<ResultSubscriber> results;
  if (subscribe) {
    results = std::make_unique<ResultSubscriber>(results_endpoint, std::vector<std::string>{"drift", "event"});
    ControlClient control(control_endpoint);
    if (!SyncSubscriber(*results, control, std::chrono::milliseconds(static_cast<long>(wait_s * 1000)))) {
      std::cerr << "livealign simulate: no drift subscription on " << results_endpoint << " (control "
                << control_endpoint << ") after " << wait_s << " s\n";
      return 1;
    }
  }
  const auto feedback_timeout = std::chrono::milliseconds(static_cast<long>(feedback_timeout_s * 1000));
  std::vector<Shift> offsets, content;
  std::vector<double> prediction_errors;
  int predictions_missed = 0;
  const SeriesId id = SeriesId::Str(series);
  SeriesStart start{id, sim.shape, PixelType::kFloat32, {}, {}, sim.frame_time_s, frames, {}};
  start.meta = {{"source", "livealign simulate"}, {"seed", seed}, {"dose", sim.dose_counts_per_px}};
  sender.SendSeriesStart(start);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < frames; ++i) {
    if (rate_hz > 0) std::this_thread::sleep_until(t0 + std::chrono::duration<double>(i / rate_hz));
    std::optional<Shift> predicted;
    if (subscribe && i > 0) {
      // The previous frame's drift message carries the prediction for this one.
      const auto deadline = std::chrono::steady_clock::now() + feedback_timeout;
      while (!predicted && std::chrono::steady_clock::now() < deadline) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        const std::optional<ReceivedMessage> m = results->Receive(std::max(left, std::chrono::milliseconds(1)));
        if (!m || m->topic != "drift" || m->header.value("series", "") != series) continue;
        predicted = PredictionFor(m->header, i);
        if (m->header.value("frame", -1) >= i - 1 && !predicted) break;  // no prediction yet
      }
      if (predicted) {
        prediction_errors.push_back((*predicted - microscope.TrueShift(i)).Norm());
      } else if (i > 1) {
        ++predictions_missed;  // frame 1 never has one: a line needs two frames
      }
    }
    const Shift offset = feedback && predicted ? *predicted : microscope.field_of_view_offset_px();
    microscope.set_field_of_view_offset_px(offset);
    offsets.push_back(offset);
    content.push_back(microscope.TrueShift(i) - offset);
    const Frame frame = microscope.NextFrame();
    FrameMessage header{id, i, frame.shape(), PixelType::kFloat32, frame.header().timestamp_s, nullptr, 0, {}, {}};
    if (feedback) header.scan_offset_px = offset;
    sender.SendFrame(header, frame.data(), frame.pixels().size() * sizeof(float));
  }
  sender.SendSeriesEnd(SeriesEnd{id, frames});
  if (!truth.empty()) {
    std::ofstream csv(truth);
    // The shifts the frames show (the specimen drift less the scan offset,
    // which --feedback adds as two more columns).
    csv << "frame,shift_x_px,shift_y_px" << (feedback ? ",scan_offset_x_px,scan_offset_y_px" : "") << "\n";
    for (int i = 0; i < frames; ++i) {
      const Shift s = content[static_cast<std::size_t>(i)];
      csv << i << "," << s.x << "," << s.y;
      if (feedback) csv << "," << offsets[static_cast<std::size_t>(i)].x << "," << offsets[static_cast<std::size_t>(i)].y;
      csv << "\n";
    }
    if (!csv) throw std::runtime_error(truth + ": cannot write");
  }
  std::cout << "sent " << frames << " frames of " << sim.shape << " as series " << series << "\n";
  if (subscribe) {
    std::vector<Shift> open_loop;
    for (int i = 0; i < frames; ++i) open_loop.push_back(microscope.TrueShift(i));
    const DriftLeft left = Measure(content), open = Measure(open_loop);
    std::cout << "drift in the frames " << (feedback ? "with feedback" : "(open loop)")
              << ": median step " << left.median_step_px << " px/frame, rms " << left.rms_px
              << " px, max " << left.max_px << " px; open loop: median step " << open.median_step_px
              << " px/frame, rms " << open.rms_px << " px, max " << open.max_px << " px\n";
    std::cout << "prediction: median error " << Median(prediction_errors) << " px over "
              << prediction_errors.size() << " frames (" << predictions_missed
              << " without one), against a median drift of " << open.median_step_px << " px/frame\n";
  }
  return 0;
}

const CommandRegistrar kSimulate{"simulate", "stream a simulated drifting series", &RunSimulate};

}  // namespace
}  // namespace livealign
