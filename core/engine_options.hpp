#pragma once
// Every tunable of the registration engine in one flat struct, expanded from
// the one table core/engine_options.def (name, type, default, limits, help).
// Each field is one key of config/livealign.ini and one --option of
// `livealign register`, `serve` and `bench`, under the same name with '-' for
// '_' (weight_sigma is --weight-sigma and `weight-sigma = ...` in the ini
// file). The binding (tools/engine_option_binding.cpp), the report's
// `parameters` (adapters/result_json.cpp) and the ini (`livealign config`)
// iterate EngineOptionTable(), so nothing restates the list or a default.

#include <initializer_list>
#include <limits>
#include <string>
#include <variant>
#include <vector>

namespace livealign {

struct EngineOptions {
  // Every field at its default (the table's default column).
  EngineOptions();

#define LIVEALIGN_ENGINE_OPTION(type, name, default_value, limits, help, note) type name;
#include "core/engine_options.def"
#undef LIVEALIGN_ENGINE_OPTION

  // Returns false and sets *error (one line naming the option) when a value is
  // out of its table limits, a name is unknown or two options contradict.
  bool Check(std::string* error) const;
};

// The allowed values of one option: an interval for numbers (ints included),
// a list of names for strings; bools take any value.
struct OptionLimits {
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  bool min_open = false, max_open = false;  // true: the bound itself is excluded
  std::vector<const char*> choices;         // non-empty: a string option's names

  bool Allows(double value) const;
  bool Allows(const std::string& value) const;
  // "in [0, 1]", ">= 0", "> 0", "one of none, hann, tukey"; "" for Any().
  std::string Describe() const;
};

// The table's limit column.
namespace option_limits {
OptionLimits Any();
OptionLimits AtLeast(double min);                 // [min, inf)
OptionLimits Above(double min);                   // (min, inf)
OptionLimits Between(double min, double max);     // [min, max]
OptionLimits AboveUpTo(double min, double max);   // (min, max]
OptionLimits OneOf(std::initializer_list<const char*> names);
}  // namespace option_limits

// One row of the table: the field (as a member pointer, whose type is the
// option's type) and its description.
using EngineOptionField = std::variant<std::string EngineOptions::*, double EngineOptions::*,
                                       int EngineOptions::*, bool EngineOptions::*>;

struct EngineOptionInfo {
  const char* name;  // the field name (snake_case): the report's key
  EngineOptionField field;
  OptionLimits limits;
  const char* group;  // section title in the ini file
  const char* help;   // one line, for --help
  const char* note;   // more for the ini comment; "" when none

  // The CLI option and ini key: name with '-' for '_'.
  std::string Key() const;
  // The value in `options` as the ini file and --help write it: names as they
  // are, true/false, integers, doubles in their shortest exact form.
  std::string Text(const EngineOptions& options) const;
};

// Every option, in the table's order.
const std::vector<EngineOptionInfo>& EngineOptionTable();

}  // namespace livealign
