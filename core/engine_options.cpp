#include "core/engine_options.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <type_traits>

#include "core/check.hpp"
#include "core/consistency_solver.hpp"
#include "core/correlator.hpp"
#include "core/quality.hpp"

namespace livealign {

// The default column. Component defaults are the product's defaults, so where
// a component owns a concept the table reads its default from there.
EngineOptions::EngineOptions() {
#define LIVEALIGN_ENGINE_OPTION(type, name, default_value, limits, help, note) \
  name = default_value;
#include "core/engine_options.def"
#undef LIVEALIGN_ENGINE_OPTION
}

namespace option_limits {
OptionLimits Any() { return {}; }
OptionLimits AtLeast(double min) {
  OptionLimits l;
  l.min = min;
  return l;
}
OptionLimits Above(double min) {
  OptionLimits l = AtLeast(min);
  l.min_open = true;
  return l;
}
OptionLimits Between(double min, double max) {
  OptionLimits l = AtLeast(min);
  l.max = max;
  return l;
}
OptionLimits AboveUpTo(double min, double max) {
  OptionLimits l = Between(min, max);
  l.min_open = true;
  return l;
}
OptionLimits OneOf(std::initializer_list<const char*> names) {
  OptionLimits l;
  l.choices = names;
  return l;
}
}  // namespace option_limits

namespace {

// Shortest %g form that reads back as the same double (0.05, not 0.05000000000000000277).
std::string ShortestText(double value) {
  char buffer[40];
  for (int precision = 6; precision <= 17; ++precision) {
    std::snprintf(buffer, sizeof buffer, "%.*g", precision, value);
    if (std::strtod(buffer, nullptr) == value) break;
  }
  return buffer;
}

}  // namespace

bool OptionLimits::Allows(double value) const {
  if (value != value) return false;  // NaN
  if (min_open ? !(value > min) : !(value >= min)) return false;
  if (max_open ? !(value < max) : !(value <= max)) return false;
  return true;
}

bool OptionLimits::Allows(const std::string& value) const {
  if (choices.empty()) return true;
  for (const char* name : choices) {
    if (value == name) return true;
  }
  return false;
}

std::string OptionLimits::Describe() const {
  if (!choices.empty()) {
    std::string text = "one of ";
    for (std::size_t i = 0; i < choices.size(); ++i) text += (i ? ", " : "") + std::string(choices[i]);
    return text;
  }
  const bool has_min = std::isfinite(min), has_max = std::isfinite(max);
  if (has_min && has_max) {
    return std::string("in ") + (min_open ? "(" : "[") + ShortestText(min) + ", " +
           ShortestText(max) + (max_open ? ")" : "]");
  }
  if (has_min) return (min_open ? "> " : ">= ") + ShortestText(min);
  if (has_max) return (max_open ? "< " : "<= ") + ShortestText(max);
  return "";
}

std::string EngineOptionInfo::Key() const {
  std::string key = name;
  for (char& c : key) {
    if (c == '_') c = '-';
  }
  return key;
}

std::string EngineOptionInfo::Text(const EngineOptions& options) const {
  return std::visit(
      [&](auto member) -> std::string {
        const auto& value = options.*member;
        using T = std::decay_t<decltype(value)>;
        if constexpr (std::is_same_v<T, std::string>) {
          return value;
        } else if constexpr (std::is_same_v<T, bool>) {
          return value ? "true" : "false";
        } else if constexpr (std::is_same_v<T, int>) {
          return std::to_string(value);
        } else {
          return ShortestText(value);
        }
      },
      field);
}

const std::vector<EngineOptionInfo>& EngineOptionTable() {
  static const std::vector<EngineOptionInfo> table = [] {
    using namespace option_limits;
    std::vector<EngineOptionInfo> rows;
    const char* group = "";
#define LIVEALIGN_ENGINE_OPTION_GROUP(title) group = title;
#define LIVEALIGN_ENGINE_OPTION(type, name, default_value, limits, help, note) \
  rows.push_back(EngineOptionInfo{#name, &EngineOptions::name, limits, group, help, note});
#include "core/engine_options.def"
#undef LIVEALIGN_ENGINE_OPTION
    return rows;
  }();
  return table;
}

bool EngineOptions::Check(std::string* error) const {
  for (const EngineOptionInfo& option : EngineOptionTable()) {
    const bool allowed = std::visit(
        [&](auto member) {
          const auto& value = this->*member;
          using T = std::decay_t<decltype(value)>;
          if constexpr (std::is_same_v<T, std::string>) {
            return option.limits.Allows(value);
          } else if constexpr (std::is_same_v<T, bool>) {
            return true;
          } else {
            return option.limits.Allows(static_cast<double>(value));
          }
        },
        option.field);
    if (!allowed) {
      std::string message = std::string(option.name) + " must be " + option.limits.Describe();
      if (!option.limits.choices.empty()) message += ", not '" + option.Text(*this) + "'";
      return Fail(error, message);
    }
  }
  // Relations between options, which no single row can state.
  if (!(weight_low < weight_cutoff)) return Fail(error, "weight_low must be below weight_cutoff");
  return true;
}

}  // namespace livealign
