// `livealign fft-wisdom`: measures the FFT plans a registration of each frame
// size uses and saves them as FFTW wisdom (adapters/fft_wisdom_file.hpp), which
// every later livealign process imports (core/fft.hpp's FftPlanning).
// tools/build runs it once per build directory.
//
// The plans are found by use, not listed: a short simulated series of each
// size goes through an engine with the given engine options (as `register`
// or `serve` would run them) and through its image-quality figures, with every
// plan measured. Shapes that depend on the data (the best-covered region of a
// long drift, say) may still be met later; they are estimated, as without
// wisdom.
#include <boost/program_options.hpp>

#include <chrono>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "adapters/fft_wisdom_file.hpp"
#include "core/fft.hpp"
#include "core/frame_store.hpp"
#include "core/registration_engine.hpp"
#include "core/simulator.hpp"
#include "tools/command.hpp"
#include "tools/engine_option_binding.hpp"

namespace po = boost::program_options;

namespace livealign {
namespace {

// Enough frames for every stage to run once: pairs, a re-solve, the lattice
// estimate, the precision stage at the series end.
constexpr int kTrainingFrames = 6;

std::vector<int> ParseSizes(const std::string& text) {
  std::vector<int> sizes;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    std::size_t used = 0;
    const int size = std::stoi(item, &used);
    if (used != item.size() || size < 64) {
      throw std::invalid_argument("--sizes: '" + item + "' is not a frame size of at least 64");
    }
    sizes.push_back(size);
  }
  if (sizes.empty()) throw std::invalid_argument("--sizes: no frame size given");
  return sizes;
}

int RunFftWisdom(int argc, char** argv) {
  EngineOptions engine_options;
  std::string out, sizes_text;
  po::options_description options("options");
  options.add_options()
      ("help,h", "show this help")
      ("out", po::value(&out)->default_value(DefaultFftWisdomPath()),
       "wisdom file to write (default: fftw_wisdom beside the executable, read by every livealign run)")
      ("sizes", po::value(&sizes_text)->default_value("512,1024,2048"),
       "comma-separated square frame sizes to plan for (transforms shorter than 384 are always "
       "estimated, core/fft.cpp)")
      ("config", po::value<std::string>(), "ini file with any of these options");
  AddEngineOptions(&options, &engine_options);
  po::variables_map vm;
  if (!ParseCommandLine(argc, argv, options, {}, &vm, "usage: livealign fft-wisdom [options]")) {
    return 0;
  }
  if (out.empty()) throw std::runtime_error("--out: no path given and the executable's directory is unknown");
  std::string error;
  if (!engine_options.Check(&error)) throw std::invalid_argument(error);
  const std::vector<int> sizes = ParseSizes(sizes_text);

  MeasureFftPlans();
  for (const int size : sizes) {
    const auto start = std::chrono::steady_clock::now();
    SimulatorOptions simulator;
    simulator.shape = {size, size};
    SimulatedSeries series = Simulate(simulator, kTrainingFrames, /*seed=*/1);
    RegistrationEngine engine(engine_options, simulator.shape, std::make_shared<MemoryFrameStore>());
    for (Frame& frame : series.frames) engine.AddFrame(std::move(frame));
    engine.Finish();
    engine.ImageQuality();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cout << "planned " << size << "x" << size << " in " << seconds << " s\n";
  }
  SaveFftWisdomFile(out);
  std::cout << "wrote " << out << "\n";
  return 0;
}

const CommandRegistrar kFftWisdom{"fft-wisdom", "measure this machine's FFT plans, once per build",
                                  &RunFftWisdom};

}  // namespace
}  // namespace livealign
