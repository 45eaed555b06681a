// `livealign register INPUT --out DIR`: registers a stack offline, feeding the
// incremental engine one frame at a time exactly as the daemon does, and writes
// the outputs (adapters/registration_outputs.hpp).
#include <boost/program_options.hpp>

#include <chrono>
#include <iomanip>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>

#include "adapters/stack_reader.hpp"
#include "adapters/registration_outputs.hpp"
#include "adapters/result_json.hpp"
#include "core/channel_averages.hpp"
#include "core/read_ahead.hpp"
#include "core/registration_engine.hpp"
#include "tools/channel_names.hpp"
#include "tools/command.hpp"
#include "tools/engine_option_binding.hpp"

namespace po = boost::program_options;

namespace livealign {
namespace {

int RunRegister(int argc, char** argv) {
  EngineOptions engine_options;
  std::string input, out_dir;
  double pixel_size_A = 0;
  int channel_axis = -1;
  std::string channel_names, register_channel;
  po::options_description options("options");
  options.add_options()
      ("help,h", "show this help")
      ("input", po::value(&input)->required(), "stack to register (.npy, .tif)")
      ("out", po::value(&out_dir)->required(), "output directory")
      ("config", po::value<std::string>(), "ini file with any of these options")
      ("pixel-size-A", po::value(&pixel_size_A)->default_value(0),
       "pixel size in Å (overrides the file's calibration; 0 = from the file)")
      ("channel-axis", po::value(&channel_axis)->default_value(-1),
       "several detectors: the .npy axis that runs over channels, 1 for (frames, channels, "
       "rows, cols), 0 for (channels, frames, rows, cols); -1 = one channel")
      ("channel-names", po::value(&channel_names)->default_value(""),
       "comma-separated channel names in axis order (default ch0, ch1, ...)")
      ("register-channel", po::value(&register_channel)->default_value(""),
       "the channel registered on, by name or index (default the first); every channel is "
       "averaged with its shifts");
  AddEngineOptions(&options, &engine_options);
  po::positional_options_description positional;
  positional.add("input", 1);
  po::variables_map vm;
  if (!ParseCommandLine(argc, argv, options, positional, &vm,
                        "usage: livealign register INPUT --out DIR [options]")) {
    return 0;
  }

  // Offline nobody watches the live shifts, and Finish() refines every frame
  // against the final average anyway: while every pair overlaps, live
  // refinement would be half of register's work for the same final shifts
  // (EngineOptions::live_refine_after_overlap_loss says when it is needed).
  // An explicit --live-refine-after-overlap-loss still wins.
  if (vm["live-refine-after-overlap-loss"].defaulted()) engine_options.live_refine_after_overlap_loss = true;
  std::string error;
  if (!engine_options.Check(&error)) throw std::invalid_argument(error);
  const auto start = std::chrono::steady_clock::now();
  // One channel is streamed from the file; with a channel axis every channel
  // is read first and the registration channel handed out from memory.
  std::vector<FrameStack> stacks;
  std::optional<StackFrameReader> reader;
  ChannelSelection channels;
  if (channel_axis < 0) {
    reader.emplace(input);
    channels = SelectChannels(0, channel_names, register_channel);
  } else {
    stacks = ReadChannelStacks(input, channel_axis);
    channels = SelectChannels(static_cast<int>(stacks.size()), channel_names, register_channel);
    reader.emplace(std::move(stacks[channels.register_index]));
  }
  if (reader->frame_count() == 0) throw std::runtime_error(input + ": no frames");
  const FrameStack& calibration = reader->calibration();
  if (pixel_size_A > 0) {
    ApplyPixelSize(pixel_size_A, &engine_options);
  } else if (calibration.pixel_size_A && engine_options.pixel_size_x_A == 0) {
    ApplyPixelSize(*calibration.pixel_size_A, &engine_options);
  }
  const double open_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();

  // One channel from a file: the frames stay in the file and are read back
  // when the averager needs them (OpenStackFrameStore), so RAM does not grow
  // with the stack; the channels of a multi-channel stack are in RAM already.
  RegistrationEngine engine(engine_options, reader->frame_shape(),
                            channel_axis < 0 ? OpenStackFrameStore(input)
                                             : std::make_shared<MemoryFrameStore>());
  // Frames k + 1 .. k + 4 are read and prepared (PrepareFrame) on a thread of
  // its own while frame k is added; a read error or a bad frame surfaces in
  // order. Four, not one or two: the reader is the slower side, and the
  // depth lets it keep going through an update's serial steps (the first
  // frame's lattice estimate, ~6 ms at 512^2) instead of waiting on them.
  ReadAhead<PreparedFrame> prepared(
      [&]() -> std::optional<PreparedFrame> {
        std::optional<Frame> frame = reader->Next();
        if (!frame) return std::nullopt;
        const int index = frame->header().index;
        try {
          return engine.PrepareFrame(std::move(*frame));
        } catch (const std::invalid_argument& e) {
          throw std::invalid_argument(input + ": frame " + std::to_string(index) + ": " + e.what());
        }
      },
      /*depth=*/4);
  // Each stage's time summed over the updates (StageTimings).
  StageTimings add_stages;
  // The other channels are averaged with the registration channel's shifts,
  // followed as they are revised, exactly as the daemon does.
  std::vector<std::string> other_names;
  for (std::size_t c = 0; c < channels.names.size(); ++c) {
    if (c != channels.register_index) other_names.push_back(channels.names[c]);
  }
  ChannelAverages others(other_names);
  for (std::size_t k = 0;; ++k) {
    std::optional<PreparedFrame> frame = prepared.Next();
    if (!frame) break;
    const RegistrationResult live = engine.AddFrame(std::move(*frame));
    add_stages += live.update.timings;
    if (other_names.empty()) continue;
    std::vector<Frame> frames;
    for (std::size_t c = 0; c < stacks.size(); ++c) {
      if (c != channels.register_index) frames.push_back(std::move(stacks[c].frames[k]));
    }
    others.AddFrames(std::move(frames), live.frames.back());
    others.Follow(live.frames, /*final=*/false);
  }
  // The shift matrix is for shift_matrix.png.
  const RegistrationResult result = engine.Finish(ResultRequest::ShiftMatrixPicture(engine.num_frames()));
  others.Follow(result.frames, /*final=*/true);
  const double register_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() -
      open_ms;

  nlohmann::json extra;
  extra["input"] = input;
  extra["timings_ms"] = {{"open", open_ms},
                         {"add_frames", add_stages.total_ms},
                         {"add_frames_stages", StageTimingsJson(add_stages)},
                         {"finish", result.update.timings.total_ms},
                         {"finish_stages", StageTimingsJson(result.update.timings)},
                         {"register_total", register_ms}};
  std::vector<std::string> channel_files;
  if (!channels.names.empty()) {
    std::vector<NamedAverage> averages;
    for (const std::string& name : channels.names) {
      averages.push_back({name, name == channels.names[channels.register_index]
                                    ? engine.Average()
                                    : others.Average(name)});
    }
    const std::optional<double> pixel_size =
        engine_options.pixel_size_x_A > 0 ? std::optional<double>(engine_options.pixel_size_x_A)
                                          : std::nullopt;
    extra["channels"] = WriteChannelAverages(out_dir, averages,
                                             channels.names[channels.register_index], pixel_size);
    channel_files = extra["channels"]["files"].get<std::vector<std::string>>();
  }
  RegistrationOutputs outputs = WriteRegistrationOutputs(out_dir, engine, result, extra);
  outputs.written.insert(outputs.written.begin(), channel_files.begin(), channel_files.end());

  const EngineQuality& q = result.quality;
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
