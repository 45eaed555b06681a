// `livealign replay INPUT`: streams a stack file (.npy or .tif) to the daemon
// as one series, at a chosen frame rate.
#include <boost/program_options.hpp>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <thread>

#include "adapters/stack_reader.hpp"
#include "stream/stream_clients.hpp"
#include "tools/command.hpp"
#include "tools/engine_option_binding.hpp"

namespace po = boost::program_options;

namespace livealign {
namespace {

int RunReplay(int argc, char** argv) {
  std::string input, endpoint = "tcp://127.0.0.1:5555", pattern = "pub", bind = "auto", series;
  double rate_hz = 10, wait_s = 30, pixel_size_A = 0;
  po::options_description options("options");
  options.add_options()
      ("help,h", "show this help")
      ("config", po::value<std::string>(), "ini file with any of these options")
      ("input", po::value(&input)->required(), "stack to stream (.npy, .tif)")
      ("publish", po::value(&endpoint)->default_value(endpoint), "endpoint frames are sent to")
      ("pattern", po::value(&pattern)->default_value(pattern), "pub or push")
      ("bind", po::value(&bind)->default_value(bind), "true, false or auto (pub binds, push connects)")
      ("rate", po::value(&rate_hz)->default_value(rate_hz), "frames per second (0 = as fast as possible)")
      ("series", po::value(&series), "series name (default: the file's stem)")
      ("pixel-size-A", po::value(&pixel_size_A)->default_value(0), "pixel size, Å (0 = from the file)")
      ("wait-subscribers", po::value(&wait_s)->default_value(wait_s),
       "seconds to wait for the daemon to connect/subscribe before sending");
  po::positional_options_description positional;
  positional.add("input", 1);
  po::variables_map vm;
  if (!ParseCommandLine(argc, argv, options, positional, &vm,
                        "usage: livealign replay INPUT --publish ENDPOINT --rate HZ")) {
    return 0;
  }
  FrameStack stack = ReadFrameStack(input);
  if (stack.empty()) throw std::runtime_error(input + ": no frames");
  if (series.empty()) series = std::filesystem::path(input).stem().string();

  FrameSender sender(endpoint, pattern, bind == "true" || (bind == "auto" && pattern == "pub"));
  if (!sender.WaitForPeer(std::chrono::milliseconds(static_cast<long>(wait_s * 1000)))) {
    std::cerr << "livealign replay: no receiver on " << sender.endpoint() << "\n";
    return 1;
  }
  const SeriesId id = SeriesId::Str(series);
  SeriesStart start;
  start.series = id;
  start.shape = stack.shape();
  start.dtype = PixelType::kFloat32;
  if (pixel_size_A > 0) {
    start.pixel_size_x_A = start.pixel_size_y_A = pixel_size_A;
  } else if (stack.pixel_size_A) {
    start.pixel_size_x_A = *stack.pixel_size_A;
    start.pixel_size_y_A = stack.pixel_size_y_A ? *stack.pixel_size_y_A : *stack.pixel_size_A;
  }
  if (rate_hz > 0) start.frame_time_s = 1.0 / rate_hz;
  start.expected_frames = static_cast<std::int64_t>(stack.size());
  start.meta = {{"source", "livealign replay"}, {"input", input}};
  sender.SendSeriesStart(start);
  const auto t0 = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < stack.size(); ++i) {
    if (rate_hz > 0) std::this_thread::sleep_until(t0 + std::chrono::duration<double>(i / rate_hz));
    const Frame& frame = stack.frames[i];
    FrameMessage header;
    header.series = id;
    header.index = static_cast<frame_id_t>(i);
    header.shape = frame.shape();
    header.dtype = PixelType::kFloat32;
    if (rate_hz > 0) header.timestamp_s = static_cast<double>(i) / rate_hz;
    sender.SendFrame(header, frame.data(), frame.pixels().size() * sizeof(float));
  }
  sender.SendSeriesEnd(SeriesEnd{id, static_cast<std::int64_t>(stack.size())});
  std::cout << "sent " << stack.size() << " frames of " << stack.shape() << " from " << input
            << " as series " << series << "\n";
  return 0;
}

const CommandRegistrar kReplay{"replay", "stream a stack file to the daemon", &RunReplay};

}  // namespace
}  // namespace livealign
