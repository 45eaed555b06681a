// `livealign apply SHIFTS.csv STACK --out DIR`: averages another stack (another
// detector, an EELS/EDS map acquired alongside) with the shifts a registration
// measured: the shifts.csv of `register` or of the daemon. Same resampling
// (core/averager.hpp) and the same average files (average.tif,
// average_full.tif, average.png) as the registration itself, plus report.json.
#include <boost/program_options.hpp>

#include <iostream>

#include "adapters/csv_writer.hpp"
#include "adapters/json_report.hpp"
#include "adapters/registration_outputs.hpp"
#include "adapters/stack_reader.hpp"
#include "core/averager.hpp"
#include "tools/channel_names.hpp"
#include "tools/command.hpp"
#include "tools/engine_option_binding.hpp"

namespace po = boost::program_options;

namespace livealign {
namespace {

int RunApply(int argc, char** argv) {
  std::string shifts_path, input, out_dir, channel_names, channel;
  double pixel_size_A = 0;
  int channel_axis = -1;
  po::options_description options("options");
  options.add_options()
      ("help,h", "show this help")
      ("shifts", po::value(&shifts_path)->required(),
       "shifts.csv (frame,shift_x_px,shift_y_px,residual_px,flagged)")
      ("input", po::value(&input)->required(), "stack to average (.npy, .tif)")
      ("out", po::value(&out_dir)->required(), "output directory")
      ("pixel-size-A", po::value(&pixel_size_A)->default_value(0),
       "pixel size in Å written to the TIFFs (0 = from the file)")
      ("channel-axis", po::value(&channel_axis)->default_value(-1),
       "the .npy axis that runs over channels (as `register --channel-axis`); -1 = none")
      ("channel-names", po::value(&channel_names)->default_value(""),
       "comma-separated channel names in axis order (default ch0, ch1, ...)")
      ("channel", po::value(&channel)->default_value(""),
       "with --channel-axis: the channel averaged, by name or index (default the first)");
  po::positional_options_description positional;
  positional.add("shifts", 1).add("input", 1);
  po::variables_map vm;
  if (!ParseCommandLine(argc, argv, options, positional, &vm,
                        "usage: livealign apply SHIFTS.csv STACK --out DIR [options]")) {
    return 0;
  }
  const std::vector<ShiftCsvRow> rows = ReadShiftsCsv(shifts_path);
  std::vector<FrameStack> stacks = ReadChannelStacks(input, channel_axis);
  const ChannelSelection selection =
      SelectChannels(channel_axis < 0 ? 0 : static_cast<int>(stacks.size()), channel_names, channel);
  FrameStack& stack = stacks[selection.register_index];
  if (rows.empty()) throw std::runtime_error(shifts_path + ": no frames");
  // Row `frame` applies to frame `frame` of the stack (shifts.csv numbers the
  // frames as registered, 0, 1, 2, ...).
  ShiftedAverager averager;
  nlohmann::json frames = nlohmann::json::array();
  for (const ShiftCsvRow& row : rows) {
    if (row.frame < 0 || row.frame >= static_cast<frame_id_t>(stack.frames.size())) {
      throw std::runtime_error(shifts_path + ": frame " + std::to_string(row.frame) + " but " +
                               input + " has " + std::to_string(stack.frames.size()) + " frames");
    }
    Frame& frame = stack.frames[static_cast<std::size_t>(row.frame)];
    if (frame.pixels().empty()) {
      throw std::runtime_error(shifts_path + ": frame " + std::to_string(row.frame) + " twice");
    }
    averager.AddFrame(std::move(frame), Shift{row.shift_x_px, row.shift_y_px}, !row.flagged);
    frames.push_back(row.frame);
  }
  const AverageImage average = averager.Average();
  std::optional<double> pixel_size;
  if (pixel_size_A > 0) {
    pixel_size = pixel_size_A;
  } else {
    pixel_size = stack.pixel_size_A;
  }
  std::vector<std::string> written = WriteAverageFiles(out_dir, "average", average, pixel_size,
                                                       /*png=*/true);
  nlohmann::json report = {
      {"livealign_version", "0.1.0"},
      {"command", "apply"},
      {"shifts", shifts_path},
      {"input", input},
      {"channel", selection.names.empty() ? nlohmann::json(nullptr)
                                          : nlohmann::json(selection.names[selection.register_index])},
      {"frames", frames},
      {"num_included", average.num_included},
      {"frames_in_input", stack.frames.size()},
      {"valid", {average.valid.row0, average.valid.row1, average.valid.col0, average.valid.col1}},
      {"files", written}};
  const std::string report_path = out_dir + "/report.json";
  WriteJsonFile(report_path, report);
  written.push_back(report_path);
  std::cout << "averaged " << average.num_included << " of " << rows.size() << " frames of "
            << input << " with " << shifts_path << "\n";
  for (const auto& path : written) std::cout << "wrote " << path << "\n";
  return 0;
}

const CommandRegistrar kApply{"apply", "average another stack with a shifts.csv", &RunApply};

}  // namespace
}  // namespace livealign
