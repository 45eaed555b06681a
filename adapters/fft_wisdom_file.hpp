#pragma once
// FFTW wisdom on disk: the measured FFT plans of this machine
// (core/fft.hpp's FftPlanning), written once by `livealign fft-wisdom` and
// read by every livealign process at start.
//
// The default file is fftw_wisdom beside the executable (build/fftw_wisdom,
// which tools/build makes), so a build carries the plans of the machine it
// was built on, as it carries its -march=native code. The file is FFTW's own
// text format.

#include <string>

namespace livealign {

// fftw_wisdom in the directory of the running executable (/proc/self/exe);
// empty when that cannot be resolved.
std::string DefaultFftWisdomPath();

// Reads `path` and imports it (ImportFftWisdom). False, with *error saying
// why, when the file cannot be read or FFTW rejects it; planning is then
// unchanged.
bool LoadFftWisdomFile(const std::string& path, std::string* error);

// Writes the process's wisdom (ExportFftWisdom) to `path` through
// AtomicWrite. Throws FileError.
void SaveFftWisdomFile(const std::string& path);

}  // namespace livealign
