// `livealign register INPUT --out DIR`: registers a stack offline, feeding the
// incremental engine one frame at a time exactly as the daemon does, and writes
// the outputs (adapters/registration_outputs.hpp).
#include <boost/program_options.hpp>

#include <chrono>
#include <iomanip>
#include <iostream>

#include "adapters/stack_reader.hpp"
#include "adapters/registration_outputs.hpp"
#include "core/registration_engine.hpp"
#include "tools/command.hpp"
#include "tools/engine_option_binding.hpp"

namespace po = boost::program_options;

namespace livealign {
namespace {

int RunRegister(int argc, char** argv) {
  EngineOptions engine_options;
  std::string input, out_dir;
  double pixel_size_A = 0;
  po::options_description options("options");
  options.add_options()
      ("help,h", "show this help")
      ("input", po::value(&input)->required(), "stack to register (.npy, .tif)")
      ("out", po::value(&out_dir)->required(), "output directory")
      ("config", po::value<std::string>(), "ini file with any of these options")
      ("pixel-size-A", po::value(&pixel_size_A)->default_value(0),
       "pixel size in Å (overrides the file's calibration; 0 = from the file)");
  AddEngineOptions(&options, &engine_options);
  po::positional_options_description positional;
  positional.add("input", 1);
  po::variables_map vm;
  if (!ParseCommandLine(argc, argv, options, positional, &vm,
                        "usage: livealign register INPUT --out DIR [options]")) {
    return 0;
  }

  std::string error;
  if (!engine_options.Check(&error)) throw std::invalid_argument(error);
  const auto start = std::chrono::steady_clock::now();
  FrameStack stack = ReadFrameStack(input);
  if (stack.frames.empty()) throw std::runtime_error(input + ": no frames");
  if (pixel_size_A > 0) {
    ApplyPixelSize(pixel_size_A, &engine_options);
  } else if (stack.pixel_size_A && engine_options.pixel_size_x_A == 0) {
    ApplyPixelSize(*stack.pixel_size_A, &engine_options);
  }
  const double read_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();

  RegistrationEngine engine(engine_options, stack.frames.front().shape());
  double add_ms = 0;
  for (Frame& frame : stack.frames) add_ms += engine.AddFrame(std::move(frame)).timings.total_ms;
  const UpdateReport finish = engine.Finish();
  const double register_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() -
      read_ms;

  nlohmann::json extra;
  extra["input"] = input;
  extra["timings_ms"] = {{"read", read_ms},
                         {"add_frames", add_ms},
                         {"finish", finish.timings.total_ms},
                         {"register_total", register_ms}};
  const RegistrationOutputs outputs = WriteRegistrationOutputs(out_dir, engine, extra);

  const EngineQuality q = engine.quality();
  std::cout << std::fixed << std::setprecision(3) << "registered " << engine.num_frames()
            << " frames of " << engine.frame_shape() << " in " << register_ms << " ms\n"
            << "consistency RMS " << q.consistency_rms_px << " px, rejected pairs "
            << 100 * q.rejected_pair_fraction << " %, flagged frames " << q.flagged_frames
            << ", verdict: " << q.verdict << "\n";
  for (const auto& path : outputs.written) std::cout << "wrote " << path << "\n";
  return 0;
}

const CommandRegistrar kRegister{"register", "register a stack file offline", &RunRegister};

}  // namespace
}  // namespace livealign
