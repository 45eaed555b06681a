#pragma once
// The live benchmark (`livealign bench --live`): a simulated microscope streams
// a series over real TCP on 127.0.0.1 into an in-process daemon (the shipped
// RegistrationEngine back end) while a subscriber records every drift message.
// Reports frames lost, the latency from a frame's arrival at the daemon to its
// drift message (median / p90 / max, overall and per range of k), the final
// accuracy against the simulator's ground truth, the peak RSS of the process
// and the daemon queue's high-water mark, as a table and one JSON line.
//
// Options (argv as for a subcommand; --help lists them): --frames 200
// --size 512 --rate 10 --pattern pull|sub --dose --queue-bytes --threads
// --seed --json FILE.

namespace livealign {

// Returns the process exit code (0 on success, 1 when the run failed, 2 on
// bad options).
int RunLiveBench(int argc, char** argv);

}  // namespace livealign
