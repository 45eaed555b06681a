#include "adapters/pread_fully.hpp"

#include <unistd.h>

#include <cerrno>

namespace livealign {

std::size_t PreadFully(int fd, std::uint64_t offset, std::size_t n, char* out) {
  errno = 0;
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd, out + got, n - got, static_cast<off_t>(offset + got));
    if (r < 0 && errno == EINTR) {
      errno = 0;
      continue;
    }
    if (r <= 0) break;
    got += static_cast<std::size_t>(r);
  }
  return got;
}

}  // namespace livealign
