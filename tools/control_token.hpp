#pragma once
// The control token file of `serve --control-token-file` and of the clients
// that must send the same token (`watch --control-token-file`): its whole
// text, a trailing newline or space (echo secret > file) not included.

#include <optional>
#include <string>

namespace livealign {

// The token; nullopt when the file is missing, unreadable or empty.
std::optional<std::string> ReadControlTokenFile(const std::string& path);

}  // namespace livealign
