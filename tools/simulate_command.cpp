// `livealign simulate`: a simulated microscope (core/simulator.hpp) streaming a
// drifting series to the daemon over wire protocol v1, optionally writing the
// ground-truth shifts.
#include <boost/program_options.hpp>

#include <chrono>
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

int RunSimulate(int argc, char** argv) {
  SimulatorOptions sim;
  std::string endpoint = "tcp://127.0.0.1:5555", pattern = "pub", truth, series = "sim";
  int frames = 50, size = sim.shape.rows;
  double rate_hz = 10, wait_s = 30;
  std::uint64_t seed = 1;
  std::string bind = "auto";
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
       "seconds to wait for the daemon to connect/subscribe before sending");
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
  const SeriesId id = SeriesId::Str(series);
  SeriesStart start{id, sim.shape, PixelType::kFloat32, {}, {}, sim.frame_time_s, frames, {}};
  start.meta = {{"source", "livealign simulate"}, {"seed", seed}, {"dose", sim.dose_counts_per_px}};
  sender.SendSeriesStart(start);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < frames; ++i) {
    if (rate_hz > 0) std::this_thread::sleep_until(t0 + std::chrono::duration<double>(i / rate_hz));
    const Frame frame = microscope.NextFrame();
    FrameMessage header{id, i, frame.shape(), PixelType::kFloat32, frame.header().timestamp_s, nullptr, 0, {}};
    sender.SendFrame(header, frame.data(), frame.pixels().size() * sizeof(float));
  }
  sender.SendSeriesEnd(SeriesEnd{id, frames});
  if (!truth.empty()) {
    std::ofstream csv(truth);
    csv << "frame,shift_x_px,shift_y_px\n";
    for (int i = 0; i < frames; ++i) {
      const Shift s = microscope.TrueShift(i);
      csv << i << "," << s.x << "," << s.y << "\n";
    }
    if (!csv) throw std::runtime_error(truth + ": cannot write");
  }
  std::cout << "sent " << frames << " frames of " << sim.shape << " as series " << series << "\n";
  return 0;
}

const CommandRegistrar kSimulate{"simulate", "stream a simulated drifting series", &RunSimulate};

}  // namespace
}  // namespace livealign
