#pragma once
// Binds every row of the engine option table (core/engine_options.def) to a
// command-line option and config-file key of the same name, with the defaults
// taken from EngineOptions itself (never restated). Shared by `register`,
// `serve` and `bench`; also renders config/livealign.ini.

#include <boost/program_options.hpp>

#include <string>

#include "core/engine_options.hpp"

namespace livealign {

// Adds every option of EngineOptionTable() to `description`, writing into
// *options. Requires: options outlives the parse.
void AddEngineOptions(boost::program_options::options_description* description,
                      EngineOptions* options);

// The text of config/livealign.ini: every engine option at its default, with
// its help as a comment, by the table's groups (`livealign config` prints it).
std::string EngineOptionsIni();

// Parses argv and then, when --config FILE was given, the ini file (the command
// line wins). Prints --help and returns false when help was asked for. Throws
// boost::program_options::error or std::runtime_error on bad input.
bool ParseCommandLine(int argc, char** argv,
                      const boost::program_options::options_description& visible,
                      const boost::program_options::positional_options_description& positional,
                      boost::program_options::variables_map* vm, const std::string& usage);

// A double as %g, for option defaults in --help.
std::string Text(double value);

// Sets both pixel sizes from --pixel-size-A when given (> 0).
void ApplyPixelSize(double pixel_size_A, EngineOptions* options);

}  // namespace livealign
