#pragma once
// A child process for end-to-end tests of the real `livealign` binary: spawned
// with its stderr (and optionally stdout) on a pipe, so a test can wait for a
// line it prints (for example the endpoints `serve` bound), signal it, and
// collect its exit status. Killed (SIGKILL) if still running when destroyed.

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <regex>
#include <string>
#include <vector>

namespace livealign::testing {

class ChildProcess {
 public:
  // argv[0] is the executable's path. Throws std::runtime_error when the
  // process cannot be started.
  explicit ChildProcess(const std::vector<std::string>& argv, bool capture_stdout = false);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Reads the captured output until a line matches `pattern`; returns its
  // capture groups, or nullopt at the timeout or end of output.
  std::optional<std::vector<std::string>> WaitForLine(const std::regex& pattern,
                                                      std::chrono::seconds timeout);
  // Everything read from the pipe so far, plus what remains until the
  // process closes it (call after the process ends or is about to).
  std::string ReadAll(std::chrono::seconds timeout);

  void Signal(int signal_number);
  // Waits for the process; returns its exit code, or -1 if it did not exit
  // normally (killed by a signal).
  int Wait();

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  bool waited_ = false;
  std::string seen_;    // all output read so far
  std::string buffer_;  // output not yet split into lines by WaitForLine
};

}  // namespace livealign::testing
