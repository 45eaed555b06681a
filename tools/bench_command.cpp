// `livealign bench --size S --frames N [options]`: feeds a simulated series to
// the engine frame by frame and measures what a live session costs: update
// time per frame against k (median and max per bucket of k, with the
// correlation and solve parts and the RSS), the FFT floor of an update (one
// frame's forward FFT plus k band-map inverse FFTs, timed in the same run) and
// the ratio to it, pairs per second, cache memory and peak RSS, plus the
// accuracy against the simulator's ground truth.
// Prints a table and one JSON line (prefix "BENCH_JSON "). `bench --live`
// measures the daemon end to end instead (tools/live_bench.hpp).
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <random>
#include <unistd.h>

#include "core/fft.hpp"

#include "adapters/journal_frame_store.hpp"
#include "adapters/npy_writer.hpp"
#include "adapters/result_json.hpp"
#include "core/registration_engine.hpp"
#include "core/shift_errors.hpp"
#include "core/simulator.hpp"
#include "tools/command.hpp"
#include "tools/engine_option_binding.hpp"
#include "tools/live_bench.hpp"

namespace po = boost::program_options;

namespace livealign {
namespace {

struct Stats {
  double median = 0, min = 0, max = 0;
};

Stats Summarise(std::vector<double> values) {
  Stats s;
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  s.min = values.front();
  s.max = values.back();
  s.median = values[values.size() / 2];
  return s;
}

double PeakRssMiB() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;  // Linux reports KiB
}

// Resident set size now, MiB (/proc/self/statm: pages).
double CurrentRssMiB() {
  std::ifstream statm("/proc/self/statm");
  long size = 0, resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return resident * static_cast<double>(sysconf(_SC_PAGESIZE)) / 1048576.0;
}

// Median time, ms, of `run` over a few repetitions (after one warm-up).
template <typename Run>
double MedianMs(Run run, int repetitions) {
  run();
  std::vector<double> ms;
  for (int r = 0; r < repetitions; ++r) {
    const auto start = std::chrono::steady_clock::now();
    run();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  return Summarise(ms).median;
}

// Accuracy of the engine's current shifts against the simulator's truth.
ShiftErrors ErrorsAgainstTruth(const std::vector<FrameState>& frames, const std::vector<Shift>& truth) {
  std::vector<Shift> estimated;
  std::vector<bool> flagged;
  for (const FrameState& f : frames) {
    estimated.push_back(f.shift);
    flagged.push_back(f.flagged);
  }
  return CompareShifts(estimated, truth, flagged);
}

// What the machine took from the process during an update, for telling a
// slow stage from a stalled one: an update whose calling thread used far
// less CPU than its serial stages' wall time was waiting, not working.
struct UpdateInterference {
  double steal_ms = 0;   // the hypervisor ran other guests (all vCPUs, /proc/stat)
  long preemptions = 0;  // involuntary context switches of this process's threads
  double thread_cpu_ms = 0;  // user + system CPU of the thread that called AddFrame
  long thread_faults = 0;    // page faults (minor + major) of that thread
};

// Cumulative steal time of all CPUs, ms (0 where /proc/stat has none).
double StealMs() {
  std::ifstream stat("/proc/stat");
  std::string cpu;
  double fields[8] = {};
  stat >> cpu;
  for (double& f : fields) stat >> f;
  if (!stat || cpu != "cpu") return 0;
  return fields[7] * 1000.0 / static_cast<double>(sysconf(_SC_CLK_TCK));
}

long Preemptions() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_nivcsw;
}

// The calling thread's CPU time (ms) and page faults so far.
struct ThreadUsage {
  double cpu_ms = 0;
  long faults = 0;
};
ThreadUsage CallingThreadUsage() {
  rusage usage{};
  getrusage(RUSAGE_THREAD, &usage);
  auto ms = [](const timeval& t) { return t.tv_sec * 1e3 + t.tv_usec * 1e-3; };
  return {ms(usage.ru_utime) + ms(usage.ru_stime), usage.ru_minflt + usage.ru_majflt};
}

// Updates listed as the slowest, with their stage breakdown.
constexpr int kSlowestUpdatesShown = 8;

// Prints the slowest updates relative to the median of their bucket of k (a
// spike is slow for its k, not slow because k is large), each with its
// stages and what it did beyond the usual (adopted a background re-solve,
// re-estimated the lattice), so a spike can be attributed to a stage.
nlohmann::json PrintSlowestUpdates(const std::vector<UpdateReport>& updates,
                                   const std::vector<double>& update_ms,
                                   const std::vector<UpdateInterference>& interference,
                                   const std::vector<int>& milestones) {
  const int n = static_cast<int>(updates.size());
  std::vector<double> bucket_median(n, 0);
  int lo = 0;
  for (int k : milestones) {
    const int begin = std::min(lo, k - 1);
    const double median = Summarise({update_ms.begin() + begin, update_ms.begin() + k}).median;
    for (int i = begin; i < k; ++i) bucket_median[i] = median;
    lo = k;
  }
  std::vector<int> order(n);
  for (int i = 0; i < n; ++i) order[i] = i;
  auto ratio = [&](int i) { return bucket_median[i] > 0 ? update_ms[i] / bucket_median[i] : 0.0; };
  const int shown = std::min(n, kSlowestUpdatesShown);
  std::partial_sort(order.begin(), order.begin() + shown, order.end(),
                    [&](int a, int b) { return ratio(a) > ratio(b); });
  std::printf("slowest updates against the median of their k bucket (ms):\n");
  std::printf("%6s %8s %7s | %7s %7s %9s %7s %7s %7s %7s | %6s %7s %7s %6s | %s\n", "k", "total", "x med", "store",
              "fft", "correlate", "solve", "lattice", "average", "refine", "steal", "preempt", "thr cpu", "faults",
              "events");
  nlohmann::json list = nlohmann::json::array();
  for (int r = 0; r < shown; ++r) {
    const int k = order[r];
    const UpdateReport& u = updates[k];
    const StageTimings& t = u.timings;
    std::string events;
    if (u.full_resolve) events += "full re-solve; ";
    if (u.background_resolve_frames > 0) {
      events += "adopted background re-solve of " + std::to_string(u.background_resolve_frames) + " frames; ";
    }
    if (u.background_resolve_running) events += "background re-solve running; ";
    if (u.lattice_estimated) events += "lattice estimate; ";
    if (u.mosaic_grown) events += "mosaic canvas grown; ";
    const UpdateInterference& x = interference[static_cast<std::size_t>(k)];
    std::printf("%6d %8.2f %7.2f | %7.2f %7.2f %9.2f %7.2f %7.2f %7.2f %7.2f | %6.0f %7ld %7.2f %6ld | %s\n", k,
                t.total_ms, ratio(k), t.store_ms, t.preprocess_ms, t.correlate_ms, t.solve_ms, t.lattice_ms,
                t.average_ms, t.refine_ms, x.steal_ms, x.preemptions, x.thread_cpu_ms, x.thread_faults,
                events.c_str());
    nlohmann::json entry = StageTimingsJson(t);
    entry.update({{"k", k}, {"to_bucket_median", ratio(k)}, {"full_resolve", u.full_resolve},
                  {"background_resolve_frames", u.background_resolve_frames},
                  {"background_resolve_running", u.background_resolve_running},
                  {"lattice_estimated", u.lattice_estimated}, {"mosaic_grown", u.mosaic_grown},
                  {"steal_ms", x.steal_ms}, {"preemptions", x.preemptions},
                  {"thread_cpu_ms", x.thread_cpu_ms}, {"thread_faults", x.thread_faults}});
    list.push_back(std::move(entry));
  }
  return list;
}

// Frame i's single-frame Cramer-Rao bound (core/simulator.hpp), the RMS of
// its two axes.
double FrameBoundPx(const Simulator& microscope, int i) {
  const ShiftPrecisionBound axes = CramerRaoBound(microscope.NoiseFreeFrame(i));
  return std::hypot(axes.sigma_x_px, axes.sigma_y_px);
}

// The single-frame bound's RMS over the series: the yardstick of the RMS
// error over all frames. Frame 0's bound alone understates it when the
// content changes along the drift path (the simulator's thickness wedge
// lowers the lattice contrast: over 3000 frames of 256^2 at 0.4 px/frame the
// columns fade to about a third). Sampled at up to 32 evenly spaced frames,
// since rendering a frame costs about as much as registering it.
struct SeriesBound {
  double rms_px = 0;
  int frames_sampled = 0;
};
// wire_indices: the simulator's index of each registered frame.
SeriesBound SeriesBoundPx(const Simulator& microscope, const std::vector<int>& wire_indices) {
  constexpr int kMaxSamples = 32;
  const int num_frames = static_cast<int>(wire_indices.size());
  const int samples = std::min(num_frames, kMaxSamples);
  if (samples == 0) return {};
  double sum_squares = 0;
  for (int s = 0; s < samples; ++s) {
    const int i = samples == 1 ? 0 : static_cast<int>(std::lround(static_cast<double>(s) * (num_frames - 1) / (samples - 1)));
    const double bound = FrameBoundPx(microscope, wire_indices[static_cast<std::size_t>(i)]);
    sum_squares += bound * bound;
  }
  return {std::sqrt(sum_squares / samples), samples};
}

// Frames that sit a lattice vector (or more) off the truth: their error,
// against the median error of all frames (the free gauge), exceeds half the
// lattice spacing. Flagged frames are not counted.
int CountHoppedFrames(const std::vector<FrameState>& frames, const std::vector<Shift>& truth,
                      double lattice_spacing_px) {
  std::vector<double> ex, ey;
  for (std::size_t k = 0; k < frames.size(); ++k) {
    if (frames[k].flagged) continue;
    ex.push_back(frames[k].shift.x - truth[k].x);
    ey.push_back(frames[k].shift.y - truth[k].y);
  }
  if (ex.empty()) return 0;
  const Shift reference{Summarise(ex).median, Summarise(ey).median};
  int hopped = 0;
  for (std::size_t k = 0; k < frames.size(); ++k) {
    if (frames[k].flagged) continue;
    if ((frames[k].shift - truth[k] - reference).Norm() > 0.5 * lattice_spacing_px) ++hopped;
  }
  return hopped;
}

int RunBench(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--live") return RunLiveBench(argc, argv);
  }
  EngineOptions engine_options;
  int size = 512, num_frames = 100, seed = 1;
  double dose = 0.2;
  double drift_px_per_frame = SimulatorOptions{}.initial_velocity_px_per_frame.Norm();
  std::string specimen = "perovskite";
  po::options_description options("options");
  options.add_options()
      ("help,h", "show this help")
      ("live", "measure the daemon end to end instead (see `bench --live --help`)")
      ("size", po::value(&size)->default_value(size), "frame size, px (square)")
      ("frames", po::value(&num_frames)->default_value(num_frames), "frames in the series")
      ("drift-px-per-frame", po::value(&drift_px_per_frame)->default_value(drift_px_per_frame, Text(drift_px_per_frame)),
       "linear drift speed, px per frame (the simulator's direction); a long series at 0.4 px/frame "
       "drifts a 256 px frame width in 640 frames")
      ("dose", po::value(&dose)->default_value(dose, Text(dose)), "mean counts per pixel")
      ("specimen", po::value(&specimen)->default_value(specimen),
       "perovskite, hexagonal or square")
      ("seed", po::value(&seed)->default_value(seed), "simulator seed")
      ("perfect-lattice", po::bool_switch(), "no non-periodic content in the specimen")
      ("jump-at", po::value<int>()->default_value(-1), "stage jump before this frame (-1 none)")
      ("jump-spacings", po::value<double>()->default_value(1.5), "stage jump size, lattice spacings")
      ("lost-fraction", po::value<double>()->default_value(0),
       "frames lost on the way (as an overloaded SUB socket loses them), in runs of --lost-run; "
       "the engine sees the gaps in the timestamps only")
      ("lost-run", po::value<int>()->default_value(8), "consecutive frames per loss")
      ("print-frames", po::bool_switch(), "list every frame's shift against the truth")
      ("save-stack", po::value<std::string>(),
       "also write the simulated frames to this .npy (e.g. to time `register` on them)")
      ("journal", po::value<std::string>(),
       "keep the frames in a frame journal at this path, as the daemon does (RAM then holds only "
       "the engine's bounded frame cache), instead of in RAM")
      ("config", po::value<std::string>(), "ini file with engine options");
  AddEngineOptions(&options, &engine_options);
  po::variables_map vm;
  if (!ParseCommandLine(argc, argv, options, {}, &vm,
                        "usage: livealign bench --size S --frames N [options]")) {
    return 0;
  }
  SimulatorOptions sim;
  sim.shape = Shape{size, size};
  sim.dose_counts_per_px = dose;
  if (!(drift_px_per_frame >= 0)) throw std::invalid_argument("--drift-px-per-frame must be >= 0");
  sim.initial_velocity_px_per_frame = SimulatorOptions::DefaultDriftAt(drift_px_per_frame);
  if (specimen == "hexagonal") sim.lattice = SpecimenLattice::kHexagonal;
  else if (specimen == "square") sim.lattice = SpecimenLattice::kSquare;
  else if (specimen != "perovskite") throw std::invalid_argument("unknown specimen " + specimen);
  sim.perfect_lattice = vm["perfect-lattice"].as<bool>();
  if (vm["jump-at"].as<int>() > 0) {
    const double jump = vm["jump-spacings"].as<double>() * sim.lattice_spacing_px;
    sim.jumps.push_back({vm["jump-at"].as<int>(), Shift{jump * 0.8, jump * 0.6}});
  }
  Simulator microscope(sim, static_cast<std::uint64_t>(seed));

  // The frame store: the daemon's journal, or every frame in RAM.
  std::shared_ptr<FrameStore> store;
  if (vm.count("journal")) {
    JournalSeries series;
    series.series = "bench";
    series.shape = sim.shape;
    store = JournalFrameStore::Create(vm["journal"].as<std::string>(), series, {});
  } else {
    store = std::make_shared<MemoryFrameStore>();
  }
  RegistrationEngine engine(engine_options, sim.shape, store);
  // The single-frame Cramer-Rao bound (core/simulator.hpp) of frame 0, as the
  // RMS of the two axes; the yardstick is its RMS over the series (below).
  const double crb_px = FrameBoundPx(microscope, 0);
  std::vector<double> update_ms(num_frames), correlate_ms(num_frames), solve_ms(num_frames),
      refine_ms(num_frames), average_ms(num_frames), rss_mib(num_frames);
  std::vector<int> pairs_per_frame(num_frames);
  std::vector<UpdateReport> updates(num_frames);  // every update, for the slowest-updates list
  std::vector<UpdateInterference> interference(num_frames);
  std::vector<Shift> truth(num_frames);
  std::vector<Frame> saved;
  const bool save_stack = vm.count("save-stack") > 0;
  long total_pairs = 0;
  int full_resolves = 0, background_resolves = 0, last_background_frames = 0;
  double total_correlate_ms = 0;
  RegistrationResult live;
  // Losses: a run of lost_run frames starts with the probability that makes
  // lost_fraction of all frames lost (fixed seed: the same gaps every run).
  const double lost_fraction = vm["lost-fraction"].as<double>();
  const int lost_run = std::max(1, vm["lost-run"].as<int>());
  if (!(lost_fraction >= 0 && lost_fraction < 1)) throw std::invalid_argument("--lost-fraction must be in [0, 1)");
  std::mt19937_64 loss_rng(static_cast<std::uint64_t>(seed) + 1000);
  const double run_start_probability = lost_fraction / (lost_run * (1 - lost_fraction) + lost_fraction);
  int lost_left = 0, frames_lost = 0;
  std::vector<int> wire_of(num_frames);  // the simulator's index of engine frame k
  for (int k = 0, wire = 0; k < num_frames; ++wire) {
    Frame frame = microscope.NextFrame();  // simulation is not timed
    if (k > 0 && lost_left == 0 && std::uniform_real_distribution<double>(0, 1)(loss_rng) < run_start_probability) {
      lost_left = lost_run;
    }
    if (lost_left > 0) {
      --lost_left;
      ++frames_lost;
      continue;
    }
    frame.mutable_header().index = k;
    truth[k] = microscope.TrueShift(wire);
    wire_of[k] = wire;
    if (save_stack) saved.push_back(frame.Clone());
    const double steal_before = StealMs();
    const long preemptions_before = Preemptions();
    const ThreadUsage thread_before = CallingThreadUsage();
    live = engine.AddFrame(std::move(frame));
    const ThreadUsage thread_after = CallingThreadUsage();
    interference[k] = {StealMs() - steal_before, Preemptions() - preemptions_before,
                       thread_after.cpu_ms - thread_before.cpu_ms, thread_after.faults - thread_before.faults};
    const UpdateReport& report = live.update;
    updates[k] = report;
    update_ms[k] = report.timings.total_ms;
    correlate_ms[k] = report.timings.correlate_ms;
    solve_ms[k] = report.timings.solve_ms;
    refine_ms[k] = report.timings.refine_ms;
    average_ms[k] = report.timings.average_ms + report.timings.preprocess_ms;
    total_pairs += report.timings.pairs;
    pairs_per_frame[k] = report.timings.pairs;
    full_resolves += report.full_resolve ? 1 : 0;
    if (report.background_resolve_frames > 0) {
      ++background_resolves;
      last_background_frames = report.background_resolve_frames;
    }
    rss_mib[k] = CurrentRssMiB();
    total_correlate_ms += report.timings.correlate_ms;
    ++k;
  }
  if (frames_lost > 0) {
    std::printf("frames lost on the way: %d of %d sent (runs of %d)\n", frames_lost, num_frames + frames_lost,
                lost_run);
  }
  const double live_peak_rss_mib = PeakRssMiB();
  if (save_stack) WriteNpy(vm["save-stack"].as<std::string>(), saved);
  const ShiftErrors live_errors = ErrorsAgainstTruth(live.frames, truth);
  // Wrong pair elements (> 0.35 lattice spacings from the truth): the highest
  // correlation peak before the solver, and the value the solution used.
  // (The pair list holds all k^2/2 pairs: not asked for in long series, where
  // it would dominate the memory.)
  constexpr int kMaxFramesForPairStatistics = 1000;
  // The engine's series end is measured without the pair list, which only
  // this benchmark's statistics ask for (the daemon and register do not).
  const RegistrationResult result = engine.Finish(ResultRequest{});
  const double finish_peak_rss_mib = PeakRssMiB();
  const UpdateReport& finish = result.update;
  const ShiftErrors final_errors = ErrorsAgainstTruth(result.frames, truth);
  const EngineQuality& quality = result.quality;
  int pairs = 0, brightest_wrong = 0, inliers = 0, used_wrong = 0, no_overlap = 0;
  ResultRequest pairs_request;
  pairs_request.pairs = num_frames <= kMaxFramesForPairStatistics;
  const RegistrationResult with_pairs = engine.Snapshot(pairs_request);
  static const std::vector<PairRecord> kNoPairs;
  const std::vector<PairRecord>& records = with_pairs.pairs ? *with_pairs.pairs : kNoPairs;
  for (const PairRecord& p : records) {
    if (p.status == PairStatus::kNoOverlap) {
      ++no_overlap;
      continue;
    }
    const Shift true_j_from_i = truth[p.j] - truth[p.i];
    const double tolerance = 0.35 * sim.lattice_spacing_px;
    ++pairs;
    if (!p.has_peak || (p.brightest_j_from_i - true_j_from_i).Norm() > tolerance) ++brightest_wrong;
    if (p.inlier()) {
      ++inliers;
      if ((p.used_j_from_i - true_j_from_i).Norm() > tolerance) ++used_wrong;
    }
  }
  const double brightest_wrong_fraction = pairs ? double(brightest_wrong) / pairs : 0;
  const double used_wrong_fraction = inliers ? double(used_wrong) / inliers : 0;
  if (vm["print-frames"].as<bool>()) {
    std::printf("%6s %10s %10s %10s %10s %8s %s\n", "frame", "x px", "y px", "true x", "true y",
                "resid", "flag");
    for (int k = 0; k < num_frames; ++k) {
      const FrameState& f = result.frames[k];
      std::printf("%6d %10.3f %10.3f %10.3f %10.3f %8.3f %s\n", k, f.shift.x, f.shift.y,
                  truth[k].x, truth[k].y, f.residual_px, f.flagged ? "F" : "");
    }
    std::printf("lattice %s a (%.2f, %.2f) b (%.2f, %.2f); verdict: %s\n",
                quality.lattice.found ? "found" : "not found", quality.lattice.a_px.x,
                quality.lattice.a_px.y, quality.lattice.b_px.x, quality.lattice.b_px.y,
                quality.verdict.c_str());
    std::printf("lattice offsets: frames moved %d, decided by coarse stage %d, stage jumps %d (%d unobservable)\n",
                quality.frames_moved_by_lattice_offset, quality.frames_decided_by_coarse,
                quality.stage_jumps, quality.stage_jumps_unobservable);
  }

  // FFT floor of an update at k: one forward FFT of the frame plus k inverse
  // FFTs of a pair's band-limited map (what correlating all k pairs would
  // need at the least), timed now on this machine.
  RealFft2d frame_fft(sim.shape);
  RealFft2d map_fft(engine.correlation_map_shape());
  std::fill(frame_fft.real(), frame_fft.real() + sim.shape.Pixels(), 1.0f);
  const double forward_ms = MedianMs([&] { frame_fft.Forward(); }, 9);
  const double inverse_ms = MedianMs(
      [&] {
        std::fill(map_fft.spectrum(), map_fft.spectrum() + map_fft.spectrum_size(), cfloat(1.0f, 0.0f));
        map_fft.Inverse();
      },
      25);
  auto fft_floor_ms = [&](int k) { return forward_ms + k * inverse_ms; };

  // Per-frame update time against k, per bucket of frames (previous
  // milestone, k].
  std::vector<int> milestones;
  for (int k : {1, 10, 25, 50, 100, 200, 400, 600, 800, 1000, 1500, 2000, 2500, 3000, 4000, 5000}) {
    if (k <= num_frames) milestones.push_back(k);
  }
  if (milestones.empty() || milestones.back() != num_frames) milestones.push_back(num_frames);
  std::printf("livealign bench: %d frames of %dx%d, dose %.3g counts/px, %s, drift %.3g px/frame, threads %d\n",
              num_frames, size, size, dose, specimen.c_str(), drift_px_per_frame, engine_options.threads);
  std::printf("FFT floor: forward %dx%d %.3f ms + k x inverse %dx%d %.4f ms (FFT plans: %s)\n", size, size,
              forward_ms, engine.correlation_map_shape().rows, engine.correlation_map_shape().cols, inverse_ms,
              FftPlanningName(CurrentFftPlanning()));
  std::printf("%6s %6s %9s %9s %7s | %9s %9s %9s %9s %9s %7s | %8s %9s %7s\n", "k", "frames", "median", "max",
              "max/med", "correlate", "corr max", "solve", "solve max", "fft+avg", "pairs", "RSS MiB",
              "floor ms", "ratio");
  nlohmann::json per_k = nlohmann::json::array();
  int lo = 0;
  for (int k : milestones) {
    const int begin = std::min(lo, k - 1);
    auto stats = [&](const std::vector<double>& v) { return Summarise({v.begin() + begin, v.begin() + k}); };
    const Stats s = stats(update_ms);
    const Stats c = stats(correlate_ms);
    const Stats so = stats(solve_ms);
    const Stats av = stats(average_ms);
    std::vector<double> pair_counts(pairs_per_frame.begin() + begin, pairs_per_frame.begin() + k);
    const double pairs_median = Summarise(pair_counts).median;
    const double floor_ms = fft_floor_ms(k);
    const double spike_ratio = s.median > 0 ? s.max / s.median : 0;
    std::printf("%6d %6d %9.2f %9.2f %7.2f | %9.2f %9.2f %9.2f %9.2f %9.2f %7.0f | %8.1f %9.2f %7.1f\n", k,
                k - begin, s.median, s.max, spike_ratio, c.median, c.max, so.median, so.max, av.median,
                pairs_median, rss_mib[k - 1], floor_ms, s.median / floor_ms);
    per_k.push_back({{"k", k}, {"frames", k - begin}, {"median_ms", s.median}, {"min_ms", s.min},
                     {"max_ms", s.max}, {"max_to_median", spike_ratio}, {"correlate_median_ms", c.median}, {"correlate_max_ms", c.max}, {"solve_median_ms", so.median},
                     {"solve_max_ms", so.max}, {"pairs_median", pairs_median}, {"rss_mib", rss_mib[k - 1]},
                     {"fft_floor_ms", floor_ms}, {"ratio_to_fft_floor", s.median / floor_ms}});
    lo = k;
  }
  const nlohmann::json slowest = PrintSlowestUpdates(updates, update_ms, interference, milestones);
  const double pairs_per_s = total_correlate_ms > 0 ? total_pairs / (total_correlate_ms / 1000) : 0;
  const double cache_mib = engine.cache_bytes() / 1048576.0;
  const double frames_mib = engine.frame_bytes() / 1048576.0;
  std::printf("full re-solves: %d synchronous, %d applied from the background (the last over %d frames)\n",
              full_resolves, background_resolves, last_background_frames);
  std::printf("finish: lattice %.1f ms, solve %.1f ms, average %.1f ms, precision stage %.1f ms\n",
              finish.timings.lattice_ms, finish.timings.solve_ms, finish.timings.average_ms,
              finish.timings.refine_ms);
  std::printf("pairs per second %.0f; finish %.1f ms; cache %.1f MiB; frames %.1f MiB; store in RAM %.1f MiB; "
              "precision spectra %.1f MiB; peak RSS "
              "%.1f MiB through Finish (%.1f MiB before it; %.1f MiB with this benchmark's pair statistics)\n",
              pairs_per_s, finish.timings.total_ms, cache_mib, frames_mib, engine.store_bytes() / 1048576.0,
              engine.precision_spectra_bytes() / 1048576.0,
              finish_peak_rss_mib, live_peak_rss_mib, PeakRssMiB());
  std::printf("accuracy vs truth (mean offset removed): live RMS %.4f px (max %.4f), final RMS %.4f px (max %.4f)\n",
              live_errors.rms_px, live_errors.max_px, final_errors.rms_px, final_errors.max_px);
  const SeriesBound series_crb = SeriesBoundPx(microscope, wire_of);
  std::printf("single-frame Cramer-Rao bound %.4f px at frame 0, %.4f px RMS over the series (%d frames "
              "sampled): live %.2fx, final %.2fx of the series bound\n",
              crb_px, series_crb.rms_px, series_crb.frames_sampled, live_errors.rms_px / series_crb.rms_px,
              final_errors.rms_px / series_crb.rms_px);
  const int live_hops = CountHoppedFrames(live.frames, truth, sim.lattice_spacing_px);
  const int final_hops = CountHoppedFrames(result.frames, truth, sim.lattice_spacing_px);
  std::printf("frames off the truth by more than half a lattice spacing (hops): live %d, final %d\n", live_hops,
              final_hops);
  if (records.empty() && num_frames > kMaxFramesForPairStatistics) {
    std::printf("wrong pair elements: not evaluated above %d frames\n", kMaxFramesForPairStatistics);
  } else {
    std::printf("wrong pair elements (> 0.35 lattice spacings): highest peak %.1f %% of %d correlated pairs "
                "(%d more without overlap), used by the solution %.1f %% of %d inlier pairs\n",
                100 * brightest_wrong_fraction, pairs, no_overlap, 100 * used_wrong_fraction, inliers);
  }
  std::printf("verdict: %s\n", quality.verdict.c_str());
  const ImageQualityReport image = engine.ImageQuality();
  auto show = [](const std::optional<double>& f_cycles, const std::optional<double>& a) {
    char text[64];
    if (!f_cycles) return std::string("none");
    if (a) std::snprintf(text, sizeof text, "%.4f cycles/px = %.2f Å", *f_cycles, *a);
    else std::snprintf(text, sizeof text, "%.4f cycles/px", *f_cycles);
    return std::string(text);
  };
  std::printf("image quality: FRC(1/7) resolution %s [%s], SNR %.2f; information transfer: "
              "average %s, single frame %s; drift %s%s; good %s (%s)\n",
              show(image.resolution_cycles_per_px, image.resolution_A).c_str(),
              image.frc_status.c_str(), image.snr,
              show(image.info_transfer_cycles_per_px, image.info_transfer_A).c_str(),
              show(image.single_frame_info_transfer_cycles_per_px, image.single_frame_info_transfer_A).c_str(),
              image.drift_trend.c_str(), image.drift_settled ? ", settled" : "",
              image.good ? "true" : "false", image.reason.c_str());
  std::printf("consistency RMS %.4f px, rejected pairs %.2f %%, flagged frames %d\n",
              quality.consistency_rms_px, 100 * quality.rejected_pair_fraction,
              quality.flagged_frames);
  const nlohmann::json line = {
      {"size", size}, {"frames", num_frames}, {"dose", dose}, {"specimen", specimen},
      {"update_ms_by_k", per_k}, {"slowest_updates", slowest}, {"pairs_per_s", pairs_per_s},
      {"finish_ms", finish.timings.total_ms}, {"cache_mib", cache_mib},
      {"frames_mib", frames_mib}, {"peak_rss_mib", PeakRssMiB()},
      {"live_peak_rss_mib", live_peak_rss_mib}, {"finish_peak_rss_mib", finish_peak_rss_mib}, {"full_resolves", full_resolves},
      {"background_resolves", background_resolves}, {"drift_px_per_frame", drift_px_per_frame},
      {"fft_forward_ms", forward_ms}, {"fft_map_inverse_ms", inverse_ms},
      {"fft_planning", FftPlanningName(CurrentFftPlanning())},
      {"live_rms_error_px", live_errors.rms_px}, {"final_rms_error_px", final_errors.rms_px},
      {"final_max_error_px", final_errors.max_px},
      {"live_max_error_px", live_errors.max_px}, {"crb_px", crb_px}, {"crb_series_px", series_crb.rms_px},
      {"live_hopped_frames", live_hops}, {"final_hopped_frames", final_hops},
      {"store_mib", engine.store_bytes() / 1048576.0},
      {"precision_spectra_mib", engine.precision_spectra_bytes() / 1048576.0},
      {"consistency_rms_px", quality.consistency_rms_px},
      {"flagged_frames", quality.flagged_frames},
      {"brightest_peak_wrong_fraction", brightest_wrong_fraction},
      {"solution_pairs_wrong_fraction", used_wrong_fraction},
      {"valid", quality.valid},
      {"lattice_offset_observable", quality.lattice_offset_observable},
      {"image_quality", {{"resolution_cycles_per_px", image.resolution_cycles_per_px.value_or(0)},
                         {"resolution_A", image.resolution_A.value_or(0)},
                         {"snr", image.snr},
                         {"info_transfer_A", image.info_transfer_A.value_or(0)},
                         {"single_frame_info_transfer_A", image.single_frame_info_transfer_A.value_or(0)},
                         {"good", image.good}}}};
  std::cout << "BENCH_JSON " << line.dump() << "\n";
  return 0;
}

const CommandRegistrar kBench{"bench", "measure per-frame cost, memory and accuracy", &RunBench};

}  // namespace
}  // namespace livealign
