#include "tests/support/child_process.hpp"

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdexcept>

extern char** environ;

namespace livealign::testing {

ChildProcess::ChildProcess(const std::vector<std::string>& argv, bool capture_stdout) {
  std::vector<std::string> args = argv;
  std::vector<char*> raw;
  for (auto& a : args) raw.push_back(a.data());
  raw.push_back(nullptr);
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) throw std::runtime_error("ChildProcess: pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDERR_FILENO);
  if (capture_stdout) posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
  const int error = posix_spawn(&pid_, raw[0], &actions, nullptr, raw.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(pipe_fds[1]);
  if (error != 0) {
    close(pipe_fds[0]);
    throw std::runtime_error("ChildProcess: cannot start " + argv[0]);
  }
  fd_ = pipe_fds[0];
}

ChildProcess::~ChildProcess() {
  if (!waited_ && pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (fd_ >= 0) close(fd_);
}

std::optional<std::vector<std::string>> ChildProcess::WaitForLine(const std::regex& pattern,
                                                                  std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    std::size_t eol;
    while ((eol = buffer_.find('\n')) != std::string::npos) {
      const std::string line = buffer_.substr(0, eol);
      buffer_.erase(0, eol + 1);
      std::smatch match;
      if (std::regex_search(line, match, pattern)) {
        return std::vector<std::string>(match.begin() + 1, match.end());
      }
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    char chunk[4096];
    const ssize_t n = read(fd_, chunk, sizeof(chunk));
    if (n <= 0) return std::nullopt;
    buffer_.append(chunk, static_cast<std::size_t>(n));
    seen_.append(chunk, static_cast<std::size_t>(n));
  }
}

std::string ChildProcess::ReadAll(std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    char chunk[4096];
    const ssize_t n = read(fd_, chunk, sizeof(chunk));
    if (n <= 0) break;
    buffer_.append(chunk, static_cast<std::size_t>(n));
    seen_.append(chunk, static_cast<std::size_t>(n));
  }
  return seen_;
}

void ChildProcess::Signal(int signal_number) {
  if (!waited_ && pid_ > 0) kill(pid_, signal_number);
}

int ChildProcess::Wait() {
  if (waited_) return -1;
  int status = 0;
  waited_ = waitpid(pid_, &status, 0) == pid_;
  return waited_ && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace livealign::testing
