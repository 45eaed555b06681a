// The `matrices` message and shift_matrix.png show the pair values in the
// coordinates of the published shifts: on a crystal series with a stage jump
// (non-zero lattice offsets) every used pair (i, j) reads s_j - s_i.
#include <catch2/catch.hpp>
#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "adapters/registration_outputs.hpp"
#include "adapters/shift_matrix_image.hpp"
#include "core/registration_engine.hpp"
#include "core/simulator.hpp"
#include "stream/codec.hpp"
#include "tests/support/test_data.hpp"

namespace livealign {
namespace {

// Little-endian float32 array from a msgpack bin converted by MsgpackToJson
// (a JSON binary value).
std::vector<float> Floats(const nlohmann::json& bytes) {
  const std::vector<std::uint8_t>& raw = bytes.get_binary();
  std::vector<float> values(raw.size() / sizeof(float));
  std::memcpy(values.data(), raw.data(), values.size() * sizeof(float));
  return values;
}

struct Rgba {
  int width = 0, height = 0;
  std::vector<std::uint8_t> pixels;  // RGB
};

Rgba ReadRgbPng(const std::string& path) {
  png_image image;
  std::memset(&image, 0, sizeof image);
  image.version = PNG_IMAGE_VERSION;
  REQUIRE(png_image_begin_read_from_file(&image, path.c_str()) != 0);
  image.format = PNG_FORMAT_RGB;
  Rgba out;
  out.width = static_cast<int>(image.width);
  out.height = static_cast<int>(image.height);
  out.pixels.resize(PNG_IMAGE_SIZE(image));
  REQUIRE(png_image_finish_read(&image, nullptr, out.pixels.data(), 0, nullptr) != 0);
  return out;
}

bool Used(std::uint8_t status) {
  return status == static_cast<std::uint8_t>(PairStatus::kInlier) ||
         status == static_cast<std::uint8_t>(PairStatus::kSnapped);
}

TEST_CASE("matrices message and shift_matrix.png agree with the published shifts across a stage jump",
          "[stream][codec][crystal]") {
  // The crystal series of tests/core/crystal_registration_test.cpp whose stage
  // jump of 1.5 spacings is pinned by non-periodic content. Searched without
  // the prediction window, the solver's modulo-lattice solution then differs
  // from the published shifts by lattice offsets on most frames.
  SimulatorOptions sim;
  sim.dose_counts_per_px = 1.0;
  sim.jumps.push_back({15, Shift{1.5 * 16 * 0.8, 1.5 * 16 * 0.6}});
  const int frames = 30;
  Simulator microscope(sim, 7);
  EngineOptions options;
  options.predicted_search = false;
  RegistrationEngine engine(options, sim.shape);
  for (int k = 0; k < frames; ++k) engine.AddFrame(microscope.NextFrame());
  const RegistrationResult result = engine.Finish(ResultRequest::Everything());
  const EngineQuality& quality = result.quality;
  CAPTURE(quality.verdict);
  REQUIRE(quality.stage_jumps == 1);
  REQUIRE(quality.frames_moved_by_lattice_offset > 0);  // the case the defect needs

  std::vector<Shift> s;
  for (const FrameState& f : result.frames) s.push_back(f.shift);
  const int k = static_cast<int>(s.size());
  // A published shift may move from the pairwise solution by the precision
  // stage (< 1.5 px) and by the pair's residual; a lattice vector is 16 px.
  const double tolerance_px = 0.3 * sim.lattice_spacing_px;

  // The wire messages, encoded and decoded: the overview (the whole matrix
  // at this k) and a window off the diagonal.
  ResultRequest window_request;
  window_request.shift_matrix_window = ShiftMatrixWindowRequest{3, 11, 17};
  const RegistrationResult with_window = engine.Snapshot(window_request);
  REQUIRE(with_window.shift_matrix_window != nullptr);
  std::vector<float> x, y;
  std::vector<std::uint8_t> status;
  for (const OutMessage& message :
       {EncodeMatrices(SeriesId::Int(1), k, *result.shift_matrix_view),
        EncodeMatricesWindow(SeriesId::Int(1), k, *with_window.shift_matrix_window)}) {
    CAPTURE(message.topic);
    const nlohmann::json decoded = MsgpackToJson(message.header);
    REQUIRE(decoded.at("k").get<int>() == k);
    REQUIRE(decoded.at("block").get<int>() == 1);
    const int n = decoded.at("n"), i0 = decoded.at("i0"), j0 = decoded.at("j0");
    x = Floats(decoded.at("x"));
    y = Floats(decoded.at("y"));
    status = decoded.at("status").get_binary();
    REQUIRE(x.size() == static_cast<std::size_t>(n * n));
    REQUIRE(status.size() == x.size());

    int used = 0, disagreeing = 0;
    for (int r = 0; r < n; ++r) {
      for (int c = 0; c < n; ++c) {
        const int i = i0 + r, j = j0 + c;
        const std::size_t cell = static_cast<std::size_t>(r) * n + c;
        if (i == j || !Used(status[cell])) continue;
        ++used;
        const Shift published = s[j] - s[i];
        const Shift sent{x[cell], y[cell]};
        if ((sent - published).Norm() > tolerance_px) {
          if (++disagreeing <= 5) UNSCOPED_INFO("pair (" << i << ", " << j << "): sent (" << sent.x << ", " << sent.y
                                 << "), s_j - s_i (" << published.x << ", " << published.y << ")");
        }
      }
    }
    CHECK(used > n);
    CHECK(disagreeing == 0);
  }
  // The overview again, for the picture below.
  {
    const nlohmann::json decoded =
        MsgpackToJson(EncodeMatrices(SeriesId::Int(1), k, *result.shift_matrix_view).header);
    x = Floats(decoded.at("x"));
    y = Floats(decoded.at("y"));
    status = decoded.at("status").get_binary();
  }

  // shift_matrix.png: each used cell has the colour of s_j - s_i, i.e. the
  // picture rendered from the published shifts.
  const std::string dir = testing::ScratchDir("codec_matrices");
  WriteRegistrationOutputs(dir, engine, result, nlohmann::json::object());
  const Rgba png = ReadRgbPng(dir + "/shift_matrix.png");
  ShiftMatrix expected{k, std::vector<double>(x.begin(), x.end()),
                       std::vector<double>(y.begin(), y.end()), {}};
  for (std::uint8_t b : status) expected.status.push_back(static_cast<PairStatus>(b));
  for (int i = 0; i < k; ++i) {
    for (int j = 0; j < k; ++j) {
      const std::size_t n = static_cast<std::size_t>(i) * k + j;
      if (i == j || !Used(status[n])) continue;
      expected.x[n] = s[j].x - s[i].x;
      expected.y[n] = s[j].y - s[i].y;
    }
  }
  // The figure around the cells (titles, axes, colour bars) is laid out from
  // the data alone, so the expected figure has the same geometry.
  const ShiftMatrixFigure want = RenderShiftMatrixFigure(expected);
  REQUIRE(png.width == want.image.width);
  REQUIRE(png.height == want.image.height);
  const int cell = want.matrices.cell_px;
  int cells_off = 0;
  for (int i = 0; i < k; ++i) {
    for (int j = 0; j < k; ++j) {
      const std::size_t n = static_cast<std::size_t>(i) * k + j;
      if (i == j || !Used(status[n])) continue;
      for (const FigureRect& panel : {want.panel_x, want.panel_y}) {
        const int px = panel.x + j * cell + cell / 2, py = panel.y + i * cell + cell / 2;
        const Rgb w = want.image.at(px, py);
        const std::uint8_t* got = &png.pixels[(static_cast<std::size_t>(py) * png.width + px) * 3];
        const int difference = std::max({std::abs(got[0] - w.r), std::abs(got[1] - w.g),
                                          std::abs(got[2] - w.b)});
        // A few colour levels for sub-pixel differences; a lattice vector is
        // a large fraction of the colour range.
        if (difference > 12) ++cells_off;
      }
    }
  }
  CHECK(cells_off == 0);
}

}  // namespace
}  // namespace livealign
