#pragma once
// Positional reads that do not stop early: pread(2) may return fewer bytes
// than asked (a signal, a large request), so every reader of a file at an
// offset loops the same way. Thread-safe on one descriptor (pread moves no
// file position).

#include <cstddef>
#include <cstdint>

namespace livealign {

// Reads n bytes at `offset` of `fd` into `out`, retrying on EINTR and short
// reads; returns the bytes read, fewer than n at the end of the file or on an
// error (errno then tells which; it is set to 0 first, so 0 means the end).
std::size_t PreadFully(int fd, std::uint64_t offset, std::size_t n, char* out);

}  // namespace livealign
