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
// --seed --json FILE, --duration-s (frames = rate * duration).
//
// Overload: run once to read the sustainable rate it prints, then at twice
// that for 60 s on each pattern, e.g.
//   livealign bench --live --size 256 --rate 40 --duration-s 60 --pattern sub --queue-bytes 67108864
// and check that RSS stays flat once the queue is full, that every lost frame
// is accounted for, and the latency of the accepted frames.

namespace livealign {

// Returns the process exit code (0 on success, 1 when the run failed, 2 on
// bad options).
int RunLiveBench(int argc, char** argv);

}  // namespace livealign
