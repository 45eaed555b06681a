#pragma once
// Where tests find the real STEM data in ../shared/data (never copied into the
// project) and the built `livealign` binary.

#include <optional>
#include <string>

namespace livealign::testing {

// Path of ../shared/data/npy/<name> beside the checkout, or std::nullopt when it
// is absent (tests then SKIP cleanly, reporting why).
std::optional<std::string> SharedDataFile(const std::string& name);

// Absolute path of the built `livealign` executable.
std::string LivealignBinary();

// Path of a file of the checkout, e.g. SourceFile("docs/protocol.md").
std::string SourceFile(const std::string& relative);

// A fresh empty directory under the build tree, removed and recreated per call.
std::string ScratchDir(const std::string& name);

}  // namespace livealign::testing
