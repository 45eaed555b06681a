// `livealign serve`: the live registration daemon (stream/daemon.hpp) on the
// endpoints of docs/protocol.md. SIGINT/SIGTERM register the frames already
// queued (--drain-timeout-s), write the outputs of the running series and
// exit 0. Binding an endpoint other machines can reach needs --allow-remote
// (docs/protocol.md, Control: "Exposure"); a refusal exits 2 naming the endpoint.
#include <boost/program_options.hpp>
#include <signal.h>

#include <ctime>
#include <iostream>
#include <vector>

#include "stream/bind_fence.hpp"
#include "stream/daemon.hpp"
#include "stream/http_server.hpp"
#include "tools/command.hpp"
#include "tools/control_token.hpp"
#include "tools/engine_option_binding.hpp"

namespace po = boost::program_options;

namespace livealign {
namespace {

// The fence of stream/bind_fence.hpp: without --allow-remote every bound
// endpoint must be local; with it (or with a token file) the state-changing
// control commands need the token. False (after saying why) to refuse.
bool ApplyExposure(bool allow_remote, const std::string& token_file, const std::string& http,
                   DaemonOptions* o) {
  if (!allow_remote) {
    const std::vector<RemoteBind> remote = RemoteBinds(*o, http);
    for (const RemoteBind& b : remote) {
      std::cerr << "livealign serve: refusing to bind " << b.option << " " << b.endpoint << ": "
                << b.reason << "; other machines could connect (pass --allow-remote, and "
                << "--control-token-file to protect save/reset/shutdown)" << std::endl;
    }
    if (!remote.empty()) return false;
  }
  o->control_token_required = allow_remote || !token_file.empty();
  if (token_file.empty()) return true;
  const std::optional<std::string> token = ReadControlTokenFile(token_file);
  if (!token) {
    std::cerr << "livealign serve: --control-token-file " << token_file
              << ": cannot read a token (missing, unreadable or empty)" << std::endl;
    return false;
  }
  o->control_token = *token;
  return true;
}

int RunServe(int argc, char** argv) {
  DaemonOptions o;
  double pixel_size_A = 0;
  std::string http = HttpServerOptions().endpoint;
  bool allow_remote = false;
  std::string token_file;
  po::options_description options("options");
  options.add_options()
      ("help,h", "show this help")
      ("config", po::value<std::string>(), "ini file with any of these options")
      ("source", po::value(&o.source)->default_value(o.source), "where frames come from")
      ("source-pattern", po::value(&o.source_pattern)->default_value(o.source_pattern),
       "sub (loss counted and reported) or pull (back-pressure)")
      ("source-bind", po::value(&o.source_bind)->default_value(o.source_bind),
       "true: bind --source instead of connecting")
      ("publish", po::value(&o.publish)->default_value(o.publish), "PUB endpoint for results")
      ("control", po::value(&o.control)->default_value(o.control), "REP endpoint for control")
      ("out", po::value(&o.out), "output root: each series in OUT/<series>/")
      ("keep-frames", po::value(&o.keep_frames)->default_value(o.keep_frames)->implicit_value(true),
       "append the frames to OUT/<series>/frames.tif (a flag; or =true/=false)")
      ("max-pixels", po::value(&o.max_pixels)->default_value(o.max_pixels), "largest frame, rows*cols")
      ("queue-bytes", po::value(&o.queue_bytes)->default_value(o.queue_bytes),
       "bound of the frame queue, bytes")
      ("max-queue-wait-s", po::value(&o.max_queue_wait_s)->default_value(o.max_queue_wait_s),
       "sub: no accepted frame waits longer than this in the queue; a frame that waited or would wait "
       "longer is lost and reported (queue_wait). pull: the sender is held back while a frame would "
       "wait longer, nothing is lost (0 = the byte bound alone)")
      ("average-interval-s", po::value(&o.average_interval_s)->default_value(o.average_interval_s),
       "minimum seconds between average messages")
      ("mosaic-max-px", po::value(&o.mosaic_max_px)->default_value(o.mosaic_max_px),
       "longest side of the mosaic message's image; the mosaic is binned to fit (0 = no mosaic message)")
      ("quality-interval-s", po::value(&o.quality_interval_s)->default_value(o.quality_interval_s),
       "minimum seconds between image-quality computations (FRC, SNR, stop-when-good)")
      ("save-interval-s", po::value(&o.save_interval_s)->default_value(o.save_interval_s),
       "rewrite the running series' outputs this often (0 = at its end only)")
      ("drain-timeout-s", po::value(&o.drain_timeout_s)->default_value(o.drain_timeout_s),
       "on SIGTERM/shutdown, register the frames already queued for at most this long")
      ("journal-sync", po::value(&o.journal_sync)->default_value(o.journal_sync),
       "fdatasync OUT/<series>/frames.journal after every frame (survives a power cut)")
      ("log-events", po::value(&o.log_events)->default_value(o.log_events),
       "also print warning/error events to stderr")
      ("http", po::value(&http)->default_value(http),
       "web preview host:port (port 0: any free port); \"\" turns it off")
      ("pixel-size-A", po::value(&pixel_size_A)->default_value(0),
       "pixel size, Å, when the sender gives none")
      ("allow-remote", po::bool_switch(&allow_remote),
       "allow binding endpoints other machines can reach (save/reset/shutdown then need "
       "the token of --control-token-file)")
      ("control-token-file", po::value(&token_file),
       "file holding the token that save/reset/shutdown requests must carry");
  AddEngineOptions(&options, &o.engine);
  po::variables_map vm;
  if (!ParseCommandLine(argc, argv, options, {}, &vm, "usage: livealign serve [options]")) return 0;
  ApplyPixelSize(pixel_size_A, &o.engine);
  if (!ApplyExposure(allow_remote, token_file, http, &o)) return 2;

  // Signals go to this thread only (the daemon's threads inherit the mask), so
  // they can be taken synchronously below instead of in a handler.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // Declared before the daemon: a sink must outlive the daemon's threads.
  std::unique_ptr<HttpServer> preview;
  // The page's requests go to the daemon; set before preview->Start() (the
  // I/O thread's start orders it) and the preview stops before the daemon ends.
  Daemon* page_requests_to = nullptr;
  if (!http.empty()) {
    HttpServerOptions preview_options{http};
    preview_options.on_client_message = [&page_requests_to](std::string_view request) {
      if (page_requests_to) page_requests_to->SubmitPageRequest(request);
    };
    preview = std::make_unique<HttpServer>(std::move(preview_options));
  }
  Daemon daemon(o);
  page_requests_to = &daemon;
  if (preview) daemon.AddSink(preview.get());
  daemon.Start();
  if (preview) {
    preview->Start();
    std::cerr << "livealign serve: web preview on http://" << http.substr(0, http.rfind(':')) << ":"
              << preview->port() << "/" << std::endl;
  }
  std::cerr << "livealign serve: frames from " << daemon.source_endpoint() << " ("
            << o.source_pattern << (o.source_bind ? ", bound" : "") << "), results on "
            << daemon.publish_endpoint() << ", control on " << daemon.control_endpoint()
            << std::endl;
  const timespec tick{0, 100 * 1000 * 1000};
  while (!daemon.StopRequested()) {
    const int signal = sigtimedwait(&signals, nullptr, &tick);
    if (signal == SIGINT || signal == SIGTERM) {
      std::cerr << "livealign serve: " << (signal == SIGINT ? "SIGINT" : "SIGTERM")
                << ": registering the queued frames and writing outputs" << std::endl;
      daemon.Stop();
    }
  }
  daemon.Wait();
  if (preview) preview->Stop();
  std::cerr << "livealign serve: stopped; status " << daemon.Status().dump() << std::endl;
  return 0;
}

const CommandRegistrar kServe{"serve", "run the live registration daemon", &RunServe};

}  // namespace
}  // namespace livealign
