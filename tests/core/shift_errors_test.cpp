#include "core/shift_errors.hpp"

#include <catch2/catch.hpp>

namespace livealign {
namespace {

using Catch::Matchers::WithinAbs;

TEST_CASE("shift errors ignore a common offset and skipped frames", "[core][shift_errors]") {
  const std::vector<Shift> truth = {{0, 0}, {1, 2}, {2, 4}, {3, 6}};
  std::vector<Shift> estimated;
  for (const Shift& s : truth) estimated.push_back(s + Shift{5, -3});  // gauge only
  estimated[1] += Shift{0.3, 0};
  estimated[3] += Shift{100, 100};  // skipped below
  const ShiftErrors e = CompareShifts(estimated, truth, {false, false, false, true});
  CHECK(e.frames == 3);
  // Offsets after removing the mean (0.1, 0): -0.1, +0.2, -0.1 in x.
  CHECK_THAT(e.rms_x_px, WithinAbs(std::sqrt((0.01 + 0.04 + 0.01) / 3), 1e-12));
  CHECK_THAT(e.rms_y_px, WithinAbs(0, 1e-12));
  CHECK_THAT(e.max_px, WithinAbs(0.2, 1e-12));
  CHECK_THROWS_AS(CompareShifts(estimated, {{0, 0}}), std::invalid_argument);
}

}  // namespace
}  // namespace livealign
