// config/livealign.ini must state every engine default, under the command-line
// names, with the values compiled into EngineOptions.
#include <catch2/catch.hpp>

#include <boost/program_options.hpp>

#include <fstream>
#include <set>

#include "core/engine_options.hpp"
#include "tools/engine_option_binding.hpp"

namespace livealign {
namespace {

namespace po = boost::program_options;

std::string IniPath() { return std::string(LIVEALIGN_TEST_SOURCE_DIR) + "/config/livealign.ini"; }

TEST_CASE("config/livealign.ini parses and equals the compiled-in defaults", "[tools][config]") {
  EngineOptions from_file;
  po::options_description description;
  AddEngineOptions(&description, &from_file);
  std::ifstream file(IniPath());
  REQUIRE(file.good());
  po::variables_map vm;
  const po::parsed_options parsed = po::parse_config_file(file, description, false);
  po::store(parsed, vm);
  po::notify(vm);

  // Every option appears in the file.
  std::set<std::string> in_file;
  for (const auto& option : parsed.options) in_file.insert(option.string_key);
  for (const auto& option : description.options()) {
    CAPTURE(option->long_name());
    CHECK(in_file.count(option->long_name()) == 1);
  }

  const EngineOptions defaults;
  CHECK(from_file.window == defaults.window);
  CHECK(from_file.tukey_alpha == defaults.tukey_alpha);
  CHECK(from_file.weight == defaults.weight);
  CHECK(from_file.weight_sigma == defaults.weight_sigma);
  CHECK(from_file.weight_cutoff == defaults.weight_cutoff);
  CHECK(from_file.weight_low == defaults.weight_low);
  CHECK(from_file.correlation == defaults.correlation);
  CHECK(from_file.hybrid_p == defaults.hybrid_p);
  CHECK(from_file.max_shift_px == defaults.max_shift_px);
  CHECK(from_file.top_k == defaults.top_k);
  CHECK(from_file.oversample == defaults.oversample);
  CHECK(from_file.refine_candidates == defaults.refine_candidates);
  CHECK(from_file.predicted_search == defaults.predicted_search);
  CHECK(from_file.inlier_floor_px == defaults.inlier_floor_px);
  CHECK(from_file.solver_max_iterations == defaults.solver_max_iterations);
  CHECK(from_file.full_resolve_every == defaults.full_resolve_every);
  CHECK(from_file.lattice_snapping == defaults.lattice_snapping);
  CHECK(from_file.refine_against_template == defaults.refine_against_template);
  CHECK(from_file.target_resolution_A == defaults.target_resolution_A);
  CHECK(from_file.target_snr == defaults.target_snr);
  CHECK(from_file.max_frames == defaults.max_frames);
  CHECK(from_file.require_drift_settled == defaults.require_drift_settled);
  CHECK(from_file.settled_A_per_s == defaults.settled_A_per_s);
  CHECK(from_file.settled_px_per_frame == defaults.settled_px_per_frame);
  CHECK(from_file.drift_window_frames == defaults.drift_window_frames);
  CHECK(from_file.pixel_size_x_A == defaults.pixel_size_x_A);
  CHECK(from_file.pixel_size_y_A == defaults.pixel_size_y_A);
  CHECK(from_file.threads == defaults.threads);
}

}  // namespace
}  // namespace livealign
