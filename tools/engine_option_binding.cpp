#include "tools/engine_option_binding.hpp"

#include <cstdio>
#include <fstream>
#include <iostream>
#include <stdexcept>

namespace po = boost::program_options;

namespace livealign {

std::string Text(double value) {
  // program_options prints defaults with full precision (0.29999999999999999).
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%g", value);
  return buffer;
}

void AddEngineOptions(po::options_description* description, EngineOptions* o) {
  const EngineOptions defaults;
  description->add_options()
      ("window", po::value(&o->window)->default_value(defaults.window),
       "edge window before the FFT: none, hann, tukey")
      ("tukey-alpha", po::value(&o->tukey_alpha)->default_value(defaults.tukey_alpha, Text(defaults.tukey_alpha)),
       "Tukey taper fraction (0 box .. 1 Hann)")
      ("weight", po::value(&o->weight)->default_value(defaults.weight),
       "Fourier weight: none, gaussian, lowpass, bandpass")
      ("weight-sigma", po::value(&o->weight_sigma)->default_value(defaults.weight_sigma, Text(defaults.weight_sigma)),
       "gaussian weight width, cycles/px")
      ("weight-cutoff", po::value(&o->weight_cutoff)->default_value(defaults.weight_cutoff, Text(defaults.weight_cutoff)),
       "band limit of the weight, cycles/px (Nyquist 0.5)")
      ("weight-low", po::value(&o->weight_low)->default_value(defaults.weight_low, Text(defaults.weight_low)),
       "low edge of the bandpass weight, cycles/px")
      ("correlation", po::value(&o->correlation)->default_value(defaults.correlation),
       "cc, pc or hybrid")
      ("hybrid-p", po::value(&o->hybrid_p)->default_value(defaults.hybrid_p, Text(defaults.hybrid_p)),
       "hybrid correlation exponent (1 = cc, 0 = pc)")
      ("max-shift-px", po::value(&o->max_shift_px)->default_value(defaults.max_shift_px, Text(defaults.max_shift_px)),
       "largest shift searched per axis, px (0 = quarter frame)")
      ("top-k", po::value(&o->top_k)->default_value(defaults.top_k),
       "correlation maxima kept per pair")
      ("oversample", po::value(&o->oversample)->default_value(defaults.oversample),
       "correlation map oversampling: 1 (fast) or 2 (hop-free pairs on crystals)")
      ("refine-candidates",
       po::value(&o->refine_candidates)->default_value(defaults.refine_candidates),
       "candidates refined and re-ranked per pair")
      ("predicted-search",
       po::value(&o->predicted_search)->default_value(defaults.predicted_search),
       "search pairs around the drift prediction once a lattice is known (true/false)")
      ("inlier-floor-px", po::value(&o->inlier_floor_px)->default_value(defaults.inlier_floor_px, Text(defaults.inlier_floor_px)),
       "solver residual-scale floor, px")
      ("solver-max-iterations",
       po::value(&o->solver_max_iterations)->default_value(defaults.solver_max_iterations),
       "robust solver iteration bound per update")
      ("full-resolve-every",
       po::value(&o->full_resolve_every)->default_value(defaults.full_resolve_every),
       "frames between full re-solves from scratch")
      ("lattice-snapping", po::value(&o->lattice_snapping)->default_value(defaults.lattice_snapping),
       "estimate the lattice and snap unit-cell hops (true/false)")
      ("refine-against-template",
       po::value(&o->refine_against_template)->default_value(defaults.refine_against_template),
       "precision stage against the leave-one-out average (true/false)")
      ("target-resolution-A",
       po::value(&o->target_resolution_A)->default_value(defaults.target_resolution_A, Text(defaults.target_resolution_A)),
       "stop-when-good: FRC (1/7) resolution target, Å (0 = none)")
      ("target-snr", po::value(&o->target_snr)->default_value(defaults.target_snr, Text(defaults.target_snr)),
       "stop-when-good: image SNR target of the average (0 = none)")
      ("max-frames", po::value(&o->max_frames)->default_value(defaults.max_frames),
       "stop after this many frames (0 = no limit)")
      ("require-drift-settled",
       po::value(&o->require_drift_settled)->default_value(defaults.require_drift_settled),
       "good also requires settled drift (true/false)")
      ("settled-A-per-s", po::value(&o->settled_A_per_s)->default_value(defaults.settled_A_per_s, Text(defaults.settled_A_per_s)),
       "drift counts as settled below this speed, Å/s (0: use settled-px-per-frame)")
      ("settled-px-per-frame",
       po::value(&o->settled_px_per_frame)->default_value(defaults.settled_px_per_frame, Text(defaults.settled_px_per_frame)),
       "drift counts as settled below this speed, px/frame")
      ("drift-window-frames",
       po::value(&o->drift_window_frames)->default_value(defaults.drift_window_frames),
       "frames over which drift rate and settling are judged")
      ("pixel-size-x-A", po::value(&o->pixel_size_x_A)->default_value(defaults.pixel_size_x_A, Text(defaults.pixel_size_x_A)),
       "pixel size along x, Å (0 = unknown)")
      ("pixel-size-y-A", po::value(&o->pixel_size_y_A)->default_value(defaults.pixel_size_y_A, Text(defaults.pixel_size_y_A)),
       "pixel size along y, Å (0 = unknown)")
      ("threads", po::value(&o->threads)->default_value(defaults.threads),
       "worker threads (0 = all cores)")
      ("min-overlap-fraction",
       po::value(&o->min_overlap_fraction)->default_value(defaults.min_overlap_fraction, Text(defaults.min_overlap_fraction)),
       "correlate a pair only when the frames' predicted overlap is at least this fraction of the area (0 = all pairs)")
      ("full-resolve-growth",
       po::value(&o->full_resolve_growth)->default_value(defaults.full_resolve_growth, Text(defaults.full_resolve_growth)),
       "full re-solves at geometrically growing frame counts: the next at max(k + full-resolve-every, this * k)");
}

bool ParseCommandLine(int argc, char** argv, const po::options_description& visible,
                      const po::positional_options_description& positional,
                      po::variables_map* vm, const std::string& usage) {
  po::store(po::command_line_parser(argc, argv).options(visible).positional(positional).run(), *vm);
  if (vm->count("help")) {
    std::cout << usage << "\n\n" << visible << "\n";
    return false;
  }
  if (vm->count("config")) {
    const std::string path = (*vm)["config"].as<std::string>();
    std::ifstream file(path);
    if (!file) throw std::runtime_error(path + ": cannot open config file");
    // Values already stored from the command line take precedence.
    po::store(po::parse_config_file(file, visible, /*allow_unregistered=*/false), *vm);
  }
  po::notify(*vm);
  return true;
}

void ApplyPixelSize(double pixel_size_A, EngineOptions* options) {
  if (pixel_size_A > 0) {
    options->pixel_size_x_A = pixel_size_A;
    options->pixel_size_y_A = pixel_size_A;
  }
}

}  // namespace livealign
