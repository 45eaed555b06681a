#include "core/shift_matrix_view.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>
#include <utility>

#include "core/registration_engine.hpp"
#include "core/simulator.hpp"

namespace livealign {
namespace {

bool SameValue(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

// Entry (r, c) of the view equals entry (i0 + r, j0 + c) of the dense matrix.
void CheckWindowIsDense(const ShiftMatrixView& view, const ShiftMatrix& dense) {
  REQUIRE(view.block == 1);
  int differing = 0;
  for (int r = 0; r < view.n; ++r) {
    for (int c = 0; c < view.n; ++c) {
      const std::size_t v = view.index(r, c), d = dense.index(view.i0 + r, view.j0 + c);
      if (!SameValue(view.x[v], dense.x[d]) || !SameValue(view.y[v], dense.y[d]) ||
          view.status[v] != dense.status[d]) {
        if (++differing <= 5) UNSCOPED_INFO("entry (" << view.i0 + r << ", " << view.j0 + c << ")");
      }
    }
  }
  CHECK(differing == 0);
}

// k frames with random shifts s; every pair within `reach` frames is measured
// as s_j - s_i (every 7th rejected with a wrong value, every 5th snapped),
// pairs further apart are not correlated. The dense matrix of the same pairs.
struct SyntheticPairs {
  std::vector<Shift> s;
  ShiftMatrix dense;
  std::set<std::pair<int, int>> no_overlap;
};
SyntheticPairs MakePairs(int k, int reach, ShiftMatrixViewBuilder* builder) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> u(-20, 20);
  SyntheticPairs p;
  for (int i = 0; i < k; ++i) p.s.push_back({u(rng), u(rng)});
  p.dense = ShiftMatrix::Missing(k);
  int n = 0;
  for (int j = 1; j < k; ++j) {
    for (int i = 0; i < j; ++i) {
      if (j - i > reach) {
        p.no_overlap.insert({i, j});
        p.dense.SetStatus(i, j, PairStatus::kNoOverlap);
        continue;
      }
      ++n;
      const PairStatus status = n % 7 == 0   ? PairStatus::kRejected
                                : n % 5 == 0 ? PairStatus::kSnapped
                                             : PairStatus::kInlier;
      const Shift value = status == PairStatus::kRejected ? Shift{100, -100} : p.s[j] - p.s[i];
      p.dense.Set(i, j, value, status);
      if (builder) builder->Add(i, j, value, status);
    }
  }
  return p;
}

TEST_CASE("the overview of at most 256 frames is the dense matrix exactly", "[core][shift_matrix_view]") {
  const int k = GENERATE(1, 2, 17, kShiftMatrixViewCells);
  CAPTURE(k);
  ShiftMatrixViewBuilder builder = ShiftMatrixViewBuilder::Overview(k);
  const SyntheticPairs p = MakePairs(k, 9, &builder);
  const ShiftMatrixView view =
      builder.Finish([&](int i, int j) { return p.no_overlap.count({i, j}) > 0; });
  CHECK(view.k == k);
  CHECK(view.n == k);
  CheckWindowIsDense(view, p.dense);
}

TEST_CASE("an overview cell is the mean of its used entries and shows its dominant status",
          "[core][shift_matrix_view]") {
  const int k = 1001;  // block 4, n 251: the last block holds one frame
  ShiftMatrixViewBuilder builder = ShiftMatrixViewBuilder::Overview(k);
  const SyntheticPairs p = MakePairs(k, 9, &builder);
  int asked = 0;
  const ShiftMatrixView view = builder.Finish([&](int i, int j) {
    ++asked;
    return p.no_overlap.count({i, j}) > 0;
  });
  REQUIRE(view.block == 4);
  REQUIRE(view.n == 251);
  REQUIRE(view.x.size() == 251u * 251u);
  // Reference: the dense matrix's cells, summarised by brute force.
  int wrong_value = 0, wrong_status = 0, empty_cells = 0;
  for (int r = 0; r < view.n; ++r) {
    for (int c = 0; c < view.n; ++c) {
      double sx = 0, sy = 0;
      int used = 0;
      int rejected = 0, snapped = 0, inlier = 0;
      bool no_overlap = false, pairs = false;
      for (int i = r * 4; i < std::min(k, r * 4 + 4); ++i) {
        for (int j = c * 4; j < std::min(k, c * 4 + 4); ++j) {
          const PairStatus st = p.dense.at(i, j);
          pairs |= i != j;
          rejected += st == PairStatus::kRejected;
          snapped += st == PairStatus::kSnapped;
          inlier += st == PairStatus::kInlier;
          no_overlap |= st == PairStatus::kNoOverlap;
          if (i == j || st == PairStatus::kInlier || st == PairStatus::kSnapped) {
            // Used entries read s_j - s_i (the diagonal's 0 too).
            sx += p.s[j].x - p.s[i].x;
            sy += p.s[j].y - p.s[i].y;
            ++used;
          }
        }
      }
      const int most = std::max({rejected, snapped, inlier});
      const PairStatus want = most == 0 ? (no_overlap ? PairStatus::kNoOverlap : PairStatus::kMissing)
                              : rejected == most ? PairStatus::kRejected
                              : snapped == most  ? PairStatus::kSnapped
                                                 : PairStatus::kInlier;
      const std::size_t v = view.index(r, c);
      if (view.status[v] != want) ++wrong_status;
      if (used > 0) {
        if (std::abs(view.x[v] - sx / used) > 1e-9 || std::abs(view.y[v] - sy / used) > 1e-9) ++wrong_value;
      } else if (!rejected) {
        if (!std::isnan(view.x[v]) || !std::isnan(view.y[v])) ++wrong_value;
      } else if (view.x[v] != 100 && view.x[v] != -100) {
        ++wrong_value;  // only rejected pairs: their mean
      }
      if (!rejected && !snapped && !inlier && pairs) ++empty_cells;
    }
  }
  CHECK(wrong_value == 0);
  CHECK(wrong_status == 0);
  // Blocks that hold a few rejected pairs among many inliers read inlier.
  int inlier_cells = 0;
  for (PairStatus st : view.status) inlier_cells += st == PairStatus::kInlier;
  CHECK(inlier_cells > view.n);
  CHECK(empty_cells > 0);
  // Not correlated is looked up only in cells of pairs without a measured
  // one (here all far from the diagonal, so the first pair settles it).
  CHECK(asked == empty_cells);
}

TEST_CASE("a window is the dense matrix's sub-block", "[core][shift_matrix_view]") {
  const int k = 600;
  const ShiftMatrixWindowRequest request = GENERATE(ShiftMatrixWindowRequest{0, 0, 256},
                                                    ShiftMatrixWindowRequest{100, 90, 40},
                                                    ShiftMatrixWindowRequest{500, 10, 100},
                                                    ShiftMatrixWindowRequest{599, 599, 1});
  CAPTURE(request.i0, request.j0, request.n);
  ShiftMatrixViewBuilder builder = ShiftMatrixViewBuilder::Window(k, request);
  // Only pairs whose later frame is in the ranges can land in the window.
  std::vector<bool> visited(k, false);
  for (const auto& [first, end] : builder.LaterFrameRanges()) {
    for (int j = first; j < end; ++j) {
      CHECK_FALSE(visited[j]);  // disjoint ranges: no pair added twice
      visited[j] = true;
    }
  }
  for (int j = 0; j < k; ++j) {
    const bool needed = (j >= request.i0 && j < request.i0 + request.n) ||
                        (j >= request.j0 && j < request.j0 + request.n);
    CHECK(visited[j] == needed);
  }
  const SyntheticPairs p = MakePairs(k, 30, &builder);
  const ShiftMatrixView view =
      builder.Finish([&](int i, int j) { return p.no_overlap.count({i, j}) > 0; });
  CHECK(view.i0 == request.i0);
  CHECK(view.j0 == request.j0);
  CHECK(view.n == request.n);
  CheckWindowIsDense(view, p.dense);
}

TEST_CASE("window requests outside the frames or too large are refused with a reason",
          "[core][shift_matrix_view]") {
  CHECK(ShiftMatrixWindowError(10, {0, 0, 10}) == "");
  CHECK(ShiftMatrixWindowError(10, {0, 0, 0}).find("window size") != std::string::npos);
  CHECK(ShiftMatrixWindowError(5000, {0, 0, kShiftMatrixWindowMaxSize + 1}).find("window size") !=
        std::string::npos);
  CHECK(ShiftMatrixWindowError(10, {1, 0, 10}).find("not inside the 10 frames") != std::string::npos);
  CHECK(ShiftMatrixWindowError(10, {0, -1, 4}) != "");
  CHECK(ShiftMatrixWindowError(10, {2147483647, 0, 4}) != "");
  CHECK(ShiftMatrixWindowError(0, {0, 0, 1}) != "");
  CHECK_THROWS_AS(ShiftMatrixViewBuilder::Window(10, {8, 0, 4}), std::invalid_argument);
}

TEST_CASE("the engine's overview and windows are its dense matrix", "[core][shift_matrix_view]") {
  SimulatorOptions sim;
  sim.shape = Shape{128, 128};
  sim.dose_counts_per_px = 2.0;
  Simulator microscope(sim, 3);
  RegistrationEngine engine(EngineOptions{}, sim.shape);
  for (int f = 0; f < 12; ++f) engine.AddFrame(microscope.NextFrame());
  ResultRequest request = ResultRequest::Everything();
  request.shift_matrix_window = ShiftMatrixWindowRequest{2, 5, 7};
  const RegistrationResult result = engine.Snapshot(request);
  REQUIRE(result.shift_matrix != nullptr);
  REQUIRE(result.shift_matrix_view != nullptr);
  REQUIRE(result.shift_matrix_window != nullptr);
  CheckWindowIsDense(*result.shift_matrix_view, *result.shift_matrix);
  CheckWindowIsDense(*result.shift_matrix_window, *result.shift_matrix);
  CHECK(engine.Snapshot(ResultRequest::ShiftMatrixOverview()).shift_matrix == nullptr);
  request.shift_matrix_window = ShiftMatrixWindowRequest{6, 0, 7};
  CHECK_THROWS_AS(engine.Snapshot(request), std::invalid_argument);
}

}  // namespace
}  // namespace livealign
