#pragma once
// The one JSON mapping of each result type. report.json
// (adapters/registration_outputs.cpp) and the wire codec (stream/codec.cpp,
// which converts this JSON to msgpack) both use these, so a key is named in
// exactly one place; docs/protocol.md documents them and
// tests/stream/protocol_doc_test.cpp checks the two agree.

#include <nlohmann/json.hpp>

#include "core/engine_options.hpp"

namespace livealign {

// Every engine option under its field name (the report's `parameters`),
// from the option table.
nlohmann::json OptionsJson(const EngineOptions& options);

}  // namespace livealign
