#include "core/timestamp_check.hpp"

#include <catch2/catch.hpp>

#include <cmath>

namespace livealign {

TEST_CASE("timestamp check: a steady clock passes, with gaps of lost frames",
          "[core][timestamp_check]") {
  TimestampCheck check;
  for (frame_id_t i = 0; i < 10; ++i) CHECK(check.Judge(i, 0.1 * i) == Approx(0.1 * i));
  // Frames 10-14 lost on the way: five index steps at the usual rate.
  CHECK(check.Judge(15, 1.5) == Approx(1.5));
  // Unknown stays unknown and judges nothing.
  CHECK(std::isnan(check.Judge(16, std::nan(""))));
  CHECK(check.Judge(17, 1.7) == Approx(1.7));
  CHECK(check.implausible() == 0);
}

TEST_CASE("timestamp check: a clock running backwards or standing still gives unknown times",
          "[core][timestamp_check]") {
  TimestampCheck check;
  for (frame_id_t i = 0; i < 5; ++i) check.Judge(i, 5.0 + 0.1 * i);
  CHECK(std::isnan(check.Judge(5, 5.4)));  // not after the last
  CHECK(std::isnan(check.Judge(6, 5.3)));  // backwards
  CHECK(check.Judge(7, 5.7) == Approx(5.7));  // the old clock again
  CHECK(check.implausible() == 2);
}

TEST_CASE("timestamp check: one wild time is unknown, a clock that jumped once is followed",
          "[core][timestamp_check]") {
  TimestampCheck check;
  for (frame_id_t i = 0; i < 8; ++i) check.Judge(i, 0.1 * i);
  // One frame 1000 s off, then the clock as before.
  CHECK(std::isnan(check.Judge(8, 1000.0)));
  CHECK(check.Judge(9, 0.9) == Approx(0.9));
  // An interval 10x the median, once.
  CHECK(std::isnan(check.Judge(10, 1.9)));
  CHECK(check.Judge(11, 1.1) == Approx(1.1));
  // The clock jumps back by an hour and runs on at its rate: the first frame
  // after the jump is unknown, the second agrees with it and is the new clock.
  CHECK(std::isnan(check.Judge(12, 1.2 - 3600)));
  CHECK(check.Judge(13, 1.3 - 3600) == Approx(1.3 - 3600));
  CHECK(check.Judge(14, 1.4 - 3600) == Approx(1.4 - 3600));
  // A clock at a tenth of the rate is not the same clock.
  CHECK(std::isnan(check.Judge(15, 1.4 - 3600 + 0.01)));
  CHECK(check.implausible() == 4);
}

}  // namespace livealign
