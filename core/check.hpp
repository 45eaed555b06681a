#pragma once
// Small helpers shared by the Options::Check() functions and index arithmetic
// of core/.

#include <string>

namespace livealign {

// For `bool Check(std::string* error) const`: stores the message when error is
// not null and returns false, so a check reads `return Fail(error, "...")`.
inline bool Fail(std::string* error, const std::string& message) {
  if (error) *error = message;
  return false;
}

// a mod n in [0, n) for any sign of a. Requires: n > 0.
inline int Mod(int a, int n) {
  const int m = a % n;
  return m < 0 ? m + n : m;
}

}  // namespace livealign
