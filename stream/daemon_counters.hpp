#pragma once
// The daemon's counters: how many messages, frames and series it has seen,
// and every problem by its stable code (docs/protocol.md, `status`). Written
// by the receiver, series and publisher threads, read by the control thread;
// they describe the daemon's whole life (a `reset` leaves them).
//
// One short lock per update: a counter never waits on anything else.

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

namespace livealign {

struct DaemonCounts {
  std::int64_t messages_received = 0;
  std::int64_t bad_messages = 0;
  std::int64_t frames_received = 0;   // frames decoded by the receiver
  std::int64_t frames_accepted = 0;   // frames registered
  std::int64_t frames_dropped = 0;    // refused by validation or the engine
  std::int64_t frames_lost = 0;       // SUB with a full queue
  std::int64_t frames_missing = 0;    // gaps in the indices
  std::int64_t frames_discarded_on_stop = 0;
  std::int64_t frames_duplicate = 0;  // sent again after being accepted
  std::int64_t frames_recovered = 0;  // replayed from a journal on resume
  std::int64_t journal_corruptions = 0;  // corrupt stretches dropped on resume
  std::int64_t events_dropped = 0;    // events that found the output queue full
  std::int64_t series_started = 0;
  std::int64_t series_completed = 0;
  std::int64_t messages_published = 0;
  std::map<std::string, std::int64_t> errors_by_code;

  // The counters' part of the `status` reply.
  nlohmann::json ToJson() const;
};

class DaemonCounters {
 public:
  // Adds `n` to one counter and, when `code` is given, one to that error code.
  void Add(std::int64_t DaemonCounts::*counter, std::int64_t n = 1,
           const std::string& code = "") {
    std::lock_guard<std::mutex> lock(mutex_);
    counts_.*counter += n;
    if (!code.empty()) ++counts_.errors_by_code[code];
  }
  void CountError(const std::string& code) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++counts_.errors_by_code[code];
  }
  DaemonCounts Snapshot() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return counts_;
  }

 private:
  mutable std::mutex mutex_;  // guards counts_ (every field, the map included)
  DaemonCounts counts_;
};

inline nlohmann::json DaemonCounts::ToJson() const {
  nlohmann::json errors = nlohmann::json::object();
  for (const auto& [code, count] : errors_by_code) errors[code] = count;
  return nlohmann::json{{"messages_received", messages_received},
                        {"bad_messages", bad_messages},
                        {"frames_received", frames_received},
                        {"frames_accepted", frames_accepted},
                        {"frames_dropped", frames_dropped},
                        {"frames_lost", frames_lost},
                        {"frames_missing", frames_missing},
                        {"frames_discarded_on_stop", frames_discarded_on_stop},
                        {"frames_duplicate", frames_duplicate},
                        {"frames_recovered", frames_recovered},
                        {"journal_corruptions", journal_corruptions},
                        {"events_dropped", events_dropped},
                        {"series_started", series_started},
                        {"series_completed", series_completed},
                        {"messages_published", messages_published},
                        {"errors_by_code", errors}};
}

}  // namespace livealign
