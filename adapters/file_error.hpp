#pragma once
// The one exception type of adapters/: a file that cannot be read or written.
// what() is a single line naming the file and the problem, ready for a user,
// e.g. "stack.npy: truncated: header says 40x512x512 float32, file holds 3.1 MB".

#include <stdexcept>
#include <string>

namespace livealign {

class FileError : public std::runtime_error {
 public:
  FileError(const std::string& path, const std::string& problem)
      : std::runtime_error(path + ": " + problem), path_(path), problem_(problem) {}

  const std::string& path() const { return path_; }
  const std::string& problem() const { return problem_; }

 private:
  std::string path_;
  std::string problem_;
};

}  // namespace livealign
