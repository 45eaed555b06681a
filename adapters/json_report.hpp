#pragma once
// JSON documents on disk (reports, effective configs, status): written
// pretty-printed (2-space indent, trailing newline) and atomically, read back
// with a FileError that names the file. NaN and Inf numbers are written as
// null (nlohmann::json's behaviour), so readers must accept null where a
// number may be undefined.
//
// Stateless and thread-safe.

#include <string>

#include <nlohmann/json.hpp>

#include "adapters/atomic_file.hpp"

namespace livealign {

// Throws FileError when the document cannot be serialised (e.g. a string that
// is not valid UTF-8) or the file cannot be written; the previous file, if
// any, is then intact.
void WriteJsonFile(const std::string& path, const nlohmann::json& doc,
                   const AtomicWriteOptions& atomic = {});

// Throws FileError for a missing or unreadable file or invalid JSON (the
// message carries the parser's byte position).
nlohmann::json ReadJsonFile(const std::string& path);

}  // namespace livealign
