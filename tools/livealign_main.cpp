// `livealign <command> [options]`: dispatches to the registered subcommands.
#include <malloc.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <iostream>
#include <limits>
#include <string>

#include "adapters/fft_wisdom_file.hpp"
#include "tools/command.hpp"

namespace livealign {
std::map<std::string, CommandInfo>& Commands() {
  static std::map<std::string, CommandInfo> commands;
  return commands;
}
}  // namespace livealign

namespace {
void PrintUsage(std::ostream& os) {
  os << "usage: livealign <command> [options]\n\ncommands:\n";
  for (const auto& [name, info] : livealign::Commands()) {
    os << "  " << name << std::string(name.size() < 10 ? 10 - name.size() : 1, ' ')
       << info.summary << "\n";
  }
  os << "\n`livealign <command> --help` describes each command's options.\n";
}
// Frames are megabytes each and arrive continuously, and page faults are slow
// on the virtual machines this runs on (measured: reading a 40 x 512^2 stack
// took 150 ms, of which 130 ms were 10,000 page faults). glibc's default
// mmap/munmap of every block above 128 KiB faults a frame's pages afresh on
// each allocation; a high mmap threshold keeps large blocks on the heap, where
// freed frames are reused without faults. A high trim threshold keeps glibc
// from handing the freed top of a heap back to the kernel (128 KiB by
// default), only to fault it in again at the next large allocation: 2048^2 x
// 100 frames took 1.81 M page faults without it and 0.26 M with it, 41 s
// against 39 s. Transparent huge pages for the heap (glibc.malloc.hugetlb=1)
// cut the faults of `register` 40 x 512^2 further (9,200 against 32,900) but
// not its time (0.32 s against 0.34 s median of 6 runs), and each first touch
// of a 2 MiB page stalled the thread 6.7 ms here: a 256^2 series whose store
// grows by a frame per update then had one update in seven 3.5x its median,
// against 2.5x at most with 4 KiB pages and the same median. Live latency
// wins, so the heap keeps 4 KiB pages.
//
// mallopt sets the same parameters as the glibc.malloc tunables of those
// names, from inside the process. (Setting the tunables meant re-executing
// the binary, a second load of its 47 libraries: 4.5 ms of every start.) The
// trim threshold is mallopt's largest, 2 GiB, above the peak heap of the
// largest benchmark (2048^2 x 1000 frames, 1.4 GiB). An explicit
// GLIBC_TUNABLES is respected as it is; under ASan or valgrind, whose
// allocators replace glibc's, mallopt does nothing.
void KeepLargeBlocksOnHeap() {
  if (std::getenv("GLIBC_TUNABLES") != nullptr) return;
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max());
}

// Measured FFT plans (core/fft.hpp): the wisdom file LIVEALIGN_FFTW_WISDOM
// names (empty: none), by default fftw_wisdom beside the executable, which
// tools/build makes with `livealign fft-wisdom` (that command itself starts
// from none). Without the file, plans are estimated as before; a file that
// cannot be used is reported and then ignored.
void ImportMachineFftWisdom(const char* command) {
  if (command != nullptr && std::strcmp(command, "fft-wisdom") == 0) return;
  const char* named = std::getenv("LIVEALIGN_FFTW_WISDOM");
  const std::string path = named != nullptr ? named : livealign::DefaultFftWisdomPath();
  if (path.empty()) return;
  if (named == nullptr && access(path.c_str(), F_OK) != 0) return;  // no wisdom made for this build
  std::string error;
  if (!livealign::LoadFftWisdomFile(path, &error)) {
    std::cerr << "livealign: FFT wisdom not used (" << error << "); FFT plans are estimated\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  KeepLargeBlocksOnHeap();
  ImportMachineFftWisdom(argc >= 2 ? argv[1] : nullptr);
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") ||
      !std::strcmp(argv[1], "help")) {
    PrintUsage(std::cout);
    return argc < 2 ? 2 : 0;
  }
  const auto it = livealign::Commands().find(argv[1]);
  if (it == livealign::Commands().end()) {
    std::cerr << "livealign: unknown command '" << argv[1] << "'\n";
    PrintUsage(std::cerr);
    return 2;
  }
  std::string name = std::string("livealign ") + argv[1];
  argv[1] = name.data();
  try {
    return it->second.run(argc - 1, argv + 1);
  } catch (const std::exception& e) {
    std::cerr << "livealign " << it->first << ": error: " << e.what() << "\n";
    return 1;
  }
}
