#pragma once
// The live registration daemon behind `livealign serve`: receives frames over
// ZeroMQ (SUB or PULL), registers each series incrementally and publishes the
// updating drift, quality and average on a PUB socket and to every registered
// ResultSink; a REP socket answers control requests. Wire protocol v1:
// docs/protocol.md.
//
// Four parts, one thread each (cppzmq "socket per thread"), each in its own
// file with what it owns (docs/architecture.md, "Threads and who owns what"):
//   receiver  (stream/daemon_receiver.hpp) the source socket; decode, size
//             checks, the frame queue bounded in bytes (PULL holds the sender
//             back, SUB counts and reports a loss)
//   series    (stream/series_runner.hpp) validation, the journal and resume,
//             the LiveEngine, rate-limited results, the outputs
//   publisher (stream/result_publisher.hpp) the PUB socket and the sinks: all
//             output leaves here; the latest header per topic
//   control   (stream/daemon_control.hpp) the REP socket, commands, the token
// Bad input never stops the daemon: every problem becomes an `event` and a
// count in `status`.
//
// Thread-safety: Start/Stop/Wait/AddSink from one controlling thread; Stop()
// may also be called from any thread (it only sets flags and wakes queues).
//
//   DaemonOptions options;                  // defaults: docs/protocol.md
//   options.out = "/data/live";
//   Daemon daemon(options);                 // the RegistrationEngine back end
//   daemon.Start();                         // binds/connects; throws on failure
//   ... daemon.Stop() on SIGTERM or a `shutdown` request ...
//   daemon.Wait();                          // joins; outputs are written

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/engine_options.hpp"
#include "stream/live_engine.hpp"
#include "stream/out_message.hpp"

namespace livealign {

struct DaemonOptions {
  // Where frames come from. Connected to unless source_bind.
  std::string source = "tcp://127.0.0.1:5555";
  // "sub": subscribe to everything; loss possible, counted and reported.
  // "pull": back-pressure, nothing dropped.
  std::string source_pattern = "sub";
  bool source_bind = false;
  // Results (PUB, bound) and control (REP, bound). Bind to 127.0.0.1 by
  // default: nothing is exposed beyond the machine unless asked for.
  std::string publish = "tcp://127.0.0.1:5556";
  std::string control = "tcp://127.0.0.1:5557";
  // Output root: each series goes to out/<series>/; "" writes no files.
  // With an out, every accepted frame is first appended to
  // out/<series>/frames.journal (the write-ahead log a restarted daemon
  // resumes an unfinished series from: docs/protocol.md, "Durability").
  std::string out;
  // Append the raw frames (as float32) to out/<series>/frames.tif.
  bool keep_frames = false;
  // Largest accepted frame, rows*cols. Refuses absurd headers before any
  // allocation; 16 Mpx covers 4k x 4k detectors.
  std::int64_t max_pixels = std::int64_t{4096} * 4096;
  // Bound of the frame queue between receiver and engine, in payload bytes.
  // Memory stays bounded by this (plus a few frames in ZMQ's own buffers)
  // however fast frames arrive.
  std::int64_t queue_bytes = std::int64_t{512} << 20;
  // SUB only: no frame waits longer than this in the queue before it is
  // accepted. A frame the series thread takes after a longer wait is lost
  // before its journal append and reported (`queue_wait`), so the wait of
  // every accepted frame is within the bound; and a frame that would wait
  // longer (the frames ahead of it times the series thread's recent interval
  // between pops, stream/queue_wait.hpp) is refused at once, which keeps the
  // queue short (docs/protocol.md, "Frames in"). PULL loses nothing: the
  // receiver stops reading (and the sender is held back) while a new frame
  // would wait longer. 0 = the byte bound alone.
  double max_queue_wait_s = 5.0;
  // Minimum seconds between `average` messages (each costs a full average);
  // the last frame of a series always gets one.
  double average_interval_s = 0.5;
  // Longest side of the `mosaic` message's image, pixels: the mosaic is
  // binned by the smallest integer that fits (core/mosaic_preview.hpp), so
  // its size is bounded however far the drift carries the view; 0 sends no
  // `mosaic`.
  int mosaic_max_px = 1024;
  // Minimum seconds between image-quality computations (FRC resolution, SNR,
  // information transfer, stop-when-good; tens of ms at 512^2). The `quality`
  // message after every frame repeats the latest figures; the last frame of a
  // series always gets fresh ones.
  double quality_interval_s = 2.0;
  // Rewrite the outputs of the running series at most this often (only while
  // the queue is empty, so catching up is not delayed); 0 = at series end only.
  double save_interval_s = 10.0;
  // Write warning and error events to stderr as well.
  bool log_events = true;
  // On Stop() (SIGTERM, `shutdown`), frames already queued are still
  // registered before the series is finished, for at most this many seconds;
  // what is left then is counted in frames_discarded_on_stop and reported.
  double drain_timeout_s = 60.0;
  // fdatasync the journal after every frame (out/<series>/frames.journal):
  // survives a power cut, not only a crash; costs a disk flush per frame.
  bool journal_sync = false;
  // When set, the control commands that change state (save, reset, shutdown)
  // are carried out only for a request whose `token` equals control_token
  // (an empty control_token then refuses them all); status and snapshot stay
  // open. `serve` sets it with --allow-remote (docs/protocol.md, Control).
  bool control_token_required = false;
  std::string control_token;
  // The registration engine's settings for every series; a series_start's
  // pixel_size_A overrides the pixel size.
  EngineOptions engine;

  // Checks the daemon's own options (not `engine`: see Daemon(options)).
  bool Check(std::string* error) const;
  nlohmann::json ToJson() const;  // the effective configuration, for report.json
};

class Daemon {
 public:
  // The shipped daemon: series are registered by MakeRegistrationLiveEngine.
  // Throws std::invalid_argument when options.engine.Check() fails.
  explicit Daemon(const DaemonOptions& options);
  // Any back end (tests use a light one to exercise the plumbing).
  Daemon(const DaemonOptions& options, LiveEngineFactory factory);
  ~Daemon();  // Stop() + Wait()
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Registers a sink before Start(); it must outlive the daemon's threads
  // (i.e. until Wait() returns). Throws std::logic_error after Start().
  void AddSink(ResultSink* sink);

  // Checks the options, creates and binds/connects the sockets and starts the
  // threads. Throws std::invalid_argument for bad options and zmq::error_t when
  // an endpoint cannot be bound (e.g. the port is taken).
  void Start();

  // Asks every thread to finish: the receiver stops taking frames (after
  // those already in the socket's buffers), the engine registers the frames
  // still queued (bounded by drain_timeout_s; the rest are counted in
  // frames_discarded_on_stop), the current series is finished and its outputs
  // written, pending messages are published. Returns at once.
  void Stop();

  // Blocks until every thread has ended. Safe to call more than once.
  void Wait();

  // True once Stop() was called (by the caller or a `shutdown` request).
  bool StopRequested() const;

  // The endpoints actually bound or connected (ZMQ_LAST_ENDPOINT for bound
  // ones, so tcp://127.0.0.1:* resolves to the chosen port). After Start().
  const std::string& source_endpoint() const { return source_endpoint_; }
  const std::string& publish_endpoint() const { return publish_endpoint_; }
  const std::string& control_endpoint() const { return control_endpoint_; }

  // The `status` reply's fields (without ok/error), as JSON.
  nlohmann::json Status() const;

  // A request from the web page (HttpServerOptions::on_client_message), from
  // any thread, never blocking: see DaemonControl::SubmitPageRequest.
  void SubmitPageRequest(std::string_view request);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string source_endpoint_;
  std::string publish_endpoint_;
  std::string control_endpoint_;
};

}  // namespace livealign
