// End-to-end tests of `livealign register`: the real binary on real files.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "adapters/csv_writer.hpp"
#include "adapters/json_report.hpp"
#include "adapters/npy_reader.hpp"
#include "adapters/npy_writer.hpp"
#include "adapters/tiff_io.hpp"
#include "core/simulator.hpp"
#include "tests/support/run_livealign.hpp"
#include "tests/support/test_data.hpp"

namespace livealign {
namespace {

namespace fs = std::filesystem;

// `livealign register ARGS`.
testing::CommandResult Run(const std::string& args, const std::string& log_dir) {
  return testing::RunLivealign("register " + args, log_dir);
}

double StdDev(FrameView f) {
  double sum = 0, sum2 = 0;
  const auto n = f.shape().Pixels();
  for (std::int64_t i = 0; i < n; ++i) {
    sum += f.data()[i];
    sum2 += double(f.data()[i]) * f.data()[i];
  }
  const double mean = sum / n;
  return std::sqrt(std::max(0.0, sum2 / n - mean * mean));
}

TEST_CASE("register writes every output and recovers a simulated drift", "[tools][register]") {
  const std::string dir = testing::ScratchDir("register_simulated");
  SimulatorOptions sim;
  sim.shape = Shape{256, 256};
  sim.dose_counts_per_px = 0.5;
  const SimulatedSeries series = Simulate(sim, 20, 21);
  WriteNpy(dir + "/stack.npy", series.frames);

  const testing::CommandResult run =
      Run(dir + "/stack.npy --out " + dir + "/out --pixel-size-A 0.244", dir);
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  for (const char* name : {"average.tif", "average_full.tif", "average_mosaic.tif",
                           "average_mosaic_counts.tif", "average.png", "shifts.csv",
                           "shift_matrix.png", "report.json"}) {
    CAPTURE(name);
    CHECK(fs::exists(dir + "/out/" + name));
  }
  std::ifstream csv(dir + "/out/shifts.csv");
  std::string header;
  std::getline(csv, header);
  CHECK(header == "frame,shift_x_px,shift_y_px,residual_px,flagged");

  const std::vector<ShiftCsvRow> rows = ReadShiftsCsv(dir + "/out/shifts.csv");
  REQUIRE(rows.size() == 20);
  CHECK(rows[0].shift_x_px == 0.0);
  CHECK(rows[0].shift_y_px == 0.0);
  double worst = 0;
  for (int k = 0; k < 20; ++k) {
    worst = std::max(worst, std::hypot(rows[k].shift_x_px - series.true_shifts[k].x,
                                       rows[k].shift_y_px - series.true_shifts[k].y));
    CHECK_FALSE(rows[k].flagged);
  }
  CAPTURE(worst);
  CHECK(worst < 0.1);

  const nlohmann::json report = ReadJsonFile(dir + "/out/report.json");
  CHECK(report["quality"]["valid"].get<bool>());
  CHECK(report["parameters"]["pixel_size_x_A"].get<double>() == 0.244);
  CHECK(report["timings_ms"].contains("register_total"));
  // `frames` holds the drift message's per-frame columns (docs/protocol.md);
  // shifts.csv rounds to 1e-4 px.
  const nlohmann::json& frames = report["frames"];
  for (const char* column : {"timestamp_s", "shift_x_px", "shift_y_px", "residual_px", "flagged"}) {
    CAPTURE(column);
    REQUIRE(frames[column].size() == rows.size());
  }
  for (std::size_t k = 0; k < rows.size(); ++k) {
    CHECK_THAT(frames["shift_x_px"][k].get<double>(), Catch::Matchers::WithinAbs(rows[k].shift_x_px, 5e-5));
    CHECK_THAT(frames["shift_y_px"][k].get<double>(), Catch::Matchers::WithinAbs(rows[k].shift_y_px, 5e-5));
  }
  const FrameStack average = ReadTiff(dir + "/out/average.tif");
  REQUIRE(average.frames.size() == 1);
  REQUIRE(average.pixel_size_A.has_value());
  CHECK(std::abs(*average.pixel_size_A - 0.244) < 1e-6);
}

// Pearson correlation of two equally long pixel lists.
double Correlation(const std::vector<double>& a, const std::vector<double>& b) {
  double ma = 0, mb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) ma += a[i], mb += b[i];
  ma /= a.size(), mb /= b.size();
  double ab = 0, aa = 0, bb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    ab += (a[i] - ma) * (b[i] - mb), aa += (a[i] - ma) * (a[i] - ma), bb += (b[i] - mb) * (b[i] - mb);
  }
  return ab / std::sqrt(aa * bb);
}

TEST_CASE("register writes the mosaic when the drift carries the view beyond the frame",
          "[tools][register]") {
  // 50 frames of 96^2 drifting 2.5 px a frame in x: the last frame lies
  // wholly beyond frame 0's window, so no pixel is covered by every frame
  // (no average.tif) and only the mosaic shows the whole field.
  const std::string dir = testing::ScratchDir("register_mosaic");
  SimulatorOptions sim;
  sim.shape = Shape{96, 96};
  sim.dose_counts_per_px = 2.0;
  sim.initial_velocity_px_per_frame = Shift{2.5, -0.6};
  sim.random_acceleration_px = 0.0;
  const int n = 50;
  const SimulatedSeries series = Simulate(sim, n, 5);
  WriteNpy(dir + "/stack.npy", series.frames);
  const testing::CommandResult run = Run(dir + "/stack.npy --out " + dir + "/out", dir);
  INFO(run.output);
  REQUIRE(run.exit_code == 0);

  const nlohmann::json report = ReadJsonFile(dir + "/out/report.json");
  const nlohmann::json& geometry = report["average"];
  INFO(geometry.dump());
  CHECK(geometry["valid"].is_null());
  CHECK_FALSE(fs::exists(dir + "/out/average.tif"));
  CHECK(geometry["window"] == nlohmann::json::array({0, 96, 0, 96}));
  REQUIRE(geometry["mosaic"].is_array());
  const int row0 = geometry["mosaic"][0], row1 = geometry["mosaic"][1];
  const int col0 = geometry["mosaic"][2], col1 = geometry["mosaic"][3];
  const std::vector<ShiftCsvRow> rows = ReadShiftsCsv(dir + "/out/shifts.csv");
  REQUIRE(rows.size() == static_cast<std::size_t>(n));
  // The extent spans every footprint: frame i's pixel (r, c) is frame-0
  // pixel (r - shift_y, c - shift_x), less the resampling kernel's margin.
  CHECK(col1 - col0 >= 96 + std::abs(rows.back().shift_x_px) - 3);
  CHECK(col0 <= -rows.back().shift_x_px + 3);
  CHECK(col1 == 96);
  const Frame mosaic = std::move(ReadTiff(dir + "/out/average_mosaic.tif").frames.at(0));
  const Frame counts = std::move(ReadTiff(dir + "/out/average_mosaic_counts.tif").frames.at(0));
  REQUIRE(mosaic.shape() == (Shape{row1 - row0, col1 - col0}));
  REQUIRE(counts.shape() == mosaic.shape());
  float most = 0;
  for (std::int64_t i = 0; i < counts.shape().Pixels(); ++i) {
    const float c = counts.data()[i];
    REQUIRE(c >= 0);
    REQUIRE(c <= n);
    if (c == 0) REQUIRE(mosaic.data()[i] == 0);
    most = std::max(most, c);
  }
  CHECK(most > 5);

  // Inside frame 0's window the mosaic is average_full.tif, pixel for pixel.
  const Frame full = std::move(ReadTiff(dir + "/out/average_full.tif").frames.at(0));
  REQUIRE(full.shape() == sim.shape);
  double worst = 0;
  for (int r = 0; r < 96; ++r)
    for (int c = 0; c < 96; ++c)
      worst = std::max(worst, double(std::abs(full.at(r, c) - mosaic.at(r - row0, c - col0))));
  CHECK(worst < 1e-5);

  // Beyond it, the mosaic shows what the last frame saw: the frame correlates
  // with the mosaic where the shifts put it, and not half a lattice period
  // (8 px) away.
  const Frame& last = series.frames.back();
  auto correlation_at = [&](int dx) {
    std::vector<double> a, b;
    for (int r = 8; r < 88; ++r)
      for (int c = 8; c < 88; ++c) {
        const int mr = static_cast<int>(std::lround(r - rows.back().shift_y_px)) - row0;
        const int mc = static_cast<int>(std::lround(c - rows.back().shift_x_px)) - col0 + dx;
        if (mr < 0 || mc < 0 || mr >= mosaic.rows() || mc >= mosaic.cols()) continue;
        a.push_back(last.at(r, c));
        b.push_back(mosaic.at(mr, mc));
      }
    return Correlation(a, b);
  };
  CHECK(88 - rows.back().shift_x_px <= 0);  // the compared region lies left of frame 0's window
  const double aligned = correlation_at(0), misaligned = correlation_at(8);
  CAPTURE(aligned, misaligned);
  CHECK(aligned > 0.4);  // 0.55 here: a single frame at 2 counts/px is noisy
  CHECK(aligned > misaligned + 0.3);
}

TEST_CASE("register reports a corrupt or missing input in one line and exits non-zero",
          "[tools][register]") {
  const std::string dir = testing::ScratchDir("register_corrupt");
  {
    std::ofstream out(dir + "/bad.npy", std::ios::binary);
    out << "\x93NUMPY\x01\x00garbage";
  }
  testing::CommandResult run = Run(dir + "/bad.npy --out " + dir + "/out", dir);
  CHECK(run.exit_code != 0);
  CHECK(run.output.find("bad.npy") != std::string::npos);
  CHECK_FALSE(fs::exists(dir + "/out/report.json"));

  run = Run(dir + "/missing.tif --out " + dir + "/out", dir);
  CHECK(run.exit_code != 0);
  CHECK(run.output.find("missing.tif") != std::string::npos);

  run = Run(dir + "/bad.npy --out " + dir + "/out --weight sinc", dir);
  CHECK(run.exit_code != 0);
  CHECK(run.output.find("weight") != std::string::npos);

  // Found while streaming (frames are read and prepared ahead of the engine):
  // a frame with NaN pixels after four good ones.
  SimulatorOptions sim;
  sim.shape = Shape{64, 64};
  std::vector<Frame> frames = Simulate(sim, 6, 3).frames;
  frames[4].at(10, 20) = std::nanf("");
  WriteNpy(dir + "/nan.npy", frames);
  run = Run(dir + "/nan.npy --out " + dir + "/out", dir);
  CHECK(run.exit_code != 0);
  CHECK(run.output.find("nan.npy: frame 4: ") != std::string::npos);
  CHECK(run.output.find("NaN") != std::string::npos);
  CHECK_FALSE(fs::exists(dir + "/out/report.json"));
}

TEST_CASE("the real drifting SrTiO3 series registers consistently", "[tools][register][real]") {
  const auto path = testing::SharedDataFile("hsdemos_sto_abf_movie_5f.npy");
  if (!path) {
    WARN("skipped: ../shared/data/npy/hsdemos_sto_abf_movie_5f.npy is absent");
    return;
  }
  const std::string dir = testing::ScratchDir("register_real");
  const testing::CommandResult run = Run(*path + " --out " + dir, dir);
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  const nlohmann::json report = ReadJsonFile(dir + "/report.json");
  const auto& quality = report["quality"];
  CHECK(quality["valid"].get<bool>());
  CHECK(quality["flagged_frames"].get<int>() == 0);
  CHECK(quality["consistency_rms_px"].get<double>() < 0.3);
  // The lattice period in the data's README is 29.6 px (SrTiO3 d110 at 0.092 Å/px).
  REQUIRE(quality["lattice"].is_object());  // null when no lattice was found
  const double a = std::hypot(quality["lattice"]["a_px"][0].get<double>(),
                              quality["lattice"]["a_px"][1].get<double>());
  CHECK(std::abs(a - 29.6) < 0.6);
  // Pixel size from the sidecar json: 0.0920 Å.
  CHECK(std::abs(report["parameters"]["pixel_size_x_A"].get<double>() - 0.0920) < 1e-3);

  // Aligned frames average to a sharper lattice than the plain mean of the
  // drifting frames, compared on the same central region.
  const FrameStack stack = ReadNpy(*path);
  const FrameStack full = ReadTiff(dir + "/average_full.tif");
  Frame plain(stack.shape());
  for (const Frame& f : stack.frames)
    for (std::int64_t i = 0; i < plain.shape().Pixels(); ++i) plain.data()[i] += f.data()[i] / 5.0f;
  // Central 256x256 region, smoothed by a 5x5 box so that shot noise does not
  // dominate the contrast (the lattice period, 29.6 px, survives).
  auto centre = [](FrameView f) {
    Frame crop(Shape{256, 256});
    for (int r = 0; r < 256; ++r)
      for (int c = 0; c < 256; ++c) {
        float sum = 0;
        for (int dr = -2; dr <= 2; ++dr)
          for (int dc = -2; dc <= 2; ++dc) sum += f.at(r + 128 + dr, c + 128 + dc);
        crop.at(r, c) = sum / 25.0f;
      }
    return crop;
  };
  const double aligned = StdDev(centre(full.frames[0]));
  const double unaligned = StdDev(centre(plain));
  CAPTURE(aligned, unaligned);
  // Measured: 1.17x; the README's informational phase-correlation shifts give 1.09x.
  CHECK(aligned > 1.1 * unaligned);
}

// A float32 .npy of shape (frames, channels, rows, cols) from per-channel frames.
void WriteChannelNpy(const std::string& path, const std::vector<std::vector<Frame>>& channels) {
  const Shape shape = channels[0][0].shape();
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (" +
                     std::to_string(channels[0].size()) + ", " + std::to_string(channels.size()) +
                     ", " + std::to_string(shape.rows) + ", " + std::to_string(shape.cols) + "), }";
  dict.append((64 - (10 + dict.size() + 1) % 64) % 64, ' ');
  dict += '\n';
  std::ofstream out(path, std::ios::binary);
  out.write("\x93NUMPY\x01\x00", 8);
  const char len[2] = {static_cast<char>(dict.size() & 0xff), static_cast<char>(dict.size() >> 8)};
  out.write(len, 2);
  out.write(dict.data(), static_cast<std::streamsize>(dict.size()));
  for (std::size_t f = 0; f < channels[0].size(); ++f) {
    for (const auto& channel : channels) {
      out.write(reinterpret_cast<const char*>(channel[f].data()),
                static_cast<std::streamsize>(channel[f].pixels().size() * sizeof(float)));
    }
  }
}

TEST_CASE("register --channel-axis averages every channel with the registered channel's shifts",
          "[tools][register][channels]") {
  const std::string dir = testing::ScratchDir("register_channels");
  SimulatorOptions sim;
  sim.shape = Shape{128, 128};
  sim.dose_counts_per_px = 2.0;
  const SimulatedSeries series = Simulate(sim, 12, 8);
  std::vector<std::vector<Frame>> channels(2);
  for (const Frame& f : series.frames) {
    channels[0].push_back(f.Clone());
    Frame inverted = f.Clone();
    for (std::size_t p = 0; p < inverted.pixels().size(); ++p) {
      inverted.data()[p] = 10.0f - inverted.data()[p];
    }
    channels[1].push_back(std::move(inverted));
  }
  WriteChannelNpy(dir + "/two.npy", channels);
  const testing::CommandResult run = Run(dir + "/two.npy --out " + dir + "/out --channel-axis 1 "
                            "--channel-names HAADF,INV --register-channel HAADF", dir);
  INFO(run.output);
  REQUIRE(run.exit_code == 0);
  const Frame registered = std::move(ReadTiff(dir + "/out/average.tif").frames[0]);
  const Frame haadf = std::move(ReadTiff(dir + "/out/average_HAADF.tif").frames[0]);
  const Frame inverted = std::move(ReadTiff(dir + "/out/average_INV.tif").frames[0]);
  REQUIRE(haadf.shape() == registered.shape());
  REQUIRE(inverted.shape() == registered.shape());
  double worst_copy = 0, worst_inverted = 0;
  for (std::size_t p = 0; p < registered.pixels().size(); ++p) {
    worst_copy = std::max(worst_copy, double(std::fabs(haadf.data()[p] - registered.data()[p])));
    worst_inverted = std::max(worst_inverted,
                              double(std::fabs(inverted.data()[p] - (10.0f - registered.data()[p]))));
  }
  CHECK(worst_copy == 0);
  // The registration channel's average may lag its final shifts by the
  // averager's re-resampling tolerance (0.01 px); the other channels' are
  // exact, so the two agree to a small fraction of the ~10-count values.
  CHECK(worst_inverted < 0.05);
  // `apply` of shifts.csv to the same channel reproduces it.
  const std::string apply = testing::LivealignBinary() + " apply " + dir + "/out/shifts.csv " + dir +
                            "/two.npy --channel-axis 1 --channel-names HAADF,INV --channel INV --out " +
                            dir + "/applied > " + dir + "/apply_output.txt 2>&1";
  REQUIRE(std::system(apply.c_str()) == 0);
  const Frame applied = std::move(ReadTiff(dir + "/applied/average_full.tif").frames[0]);
  const Frame inverted_full = std::move(ReadTiff(dir + "/out/average_INV_full.tif").frames[0]);
  REQUIRE(applied.shape() == inverted_full.shape());
  double worst_applied = 0;
  for (std::size_t p = 0; p < applied.pixels().size(); ++p) {
    worst_applied = std::max(worst_applied, double(std::fabs(applied.data()[p] - inverted_full.data()[p])));
  }
  CHECK(worst_applied < 1e-3);
  CHECK(fs::exists(dir + "/out/average_INV_full.tif"));
  const auto report = nlohmann::json::parse(std::ifstream(dir + "/out/report.json"));
  CHECK(report["channels"]["names"] == nlohmann::json({"HAADF", "INV"}));
  CHECK(report["channels"]["register_channel"] == "HAADF");
  // Registered on the inverted channel instead: the same shifts, within noise.
  const testing::CommandResult by_index = Run(dir + "/two.npy --out " + dir + "/out1 --channel-axis 1 "
                                 "--register-channel 1", dir);
  REQUIRE(by_index.exit_code == 0);
  const auto rows_haadf = ReadShiftsCsv(dir + "/out/shifts.csv");
  const auto rows_inv = ReadShiftsCsv(dir + "/out1/shifts.csv");
  REQUIRE(rows_haadf.size() == rows_inv.size());
  for (std::size_t i = 0; i < rows_haadf.size(); ++i) {
    CHECK(std::fabs(rows_haadf[i].shift_x_px - rows_inv[i].shift_x_px) < 0.1);
    CHECK(std::fabs(rows_haadf[i].shift_y_px - rows_inv[i].shift_y_px) < 0.1);
  }
  CHECK(fs::exists(dir + "/out1/average_ch0.tif"));
  CHECK(Run(dir + "/two.npy --out " + dir + "/bad --channel-axis 1 --register-channel DF", dir)
            .exit_code != 0);
  CHECK(Run(dir + "/two.npy --out " + dir + "/bad --channel-axis 3", dir).exit_code != 0);
}

}  // namespace
}  // namespace livealign
