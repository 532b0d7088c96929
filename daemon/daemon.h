// chaind as a whole: one libuv loop serving the API on a Unix socket, the
// store in the state directory, orderly shutdown on SIGTERM/SIGINT.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "daemon/http/types.h"
#include "daemon/util/log.h"

namespace chainctl::daemon {

struct DaemonConfig {
  std::string socket_path;  // ignored under systemd socket activation
  std::string state_dir;
  std::string log_file;  // --log-file: the log, reopened on SIGHUP; "": stderr as it is
  HttpLimits limits;
  size_t jobs = 0;                         // tasks running at once; 0: one per core
  uint64_t history_retention = 1'000'000;  // history records kept
  uint64_t kill_grace_ms = 5000;           // SIGTERM to SIGKILL for timeouts and cancels
  size_t keep_run_files = 1000;            // the folders of this many ended runs are kept
  size_t keep_runs = 10000;                // the store records of this many ended runs are kept
  uint64_t keep_runs_for_ms = 0;           // and of none that ended longer ago (0: any age)
  bool task_cgroups = true;                // each task in a cgroup when one can be made
  uint64_t max_log_bytes = 64ull << 20;    // a task's stderr log on disk; 0: no bound
  bool resume_interrupted = false;         // resume at start the runs a dead chaind left
  // What tasks' resource_requirements are admitted against (daemon/run/resources.h).
  int64_t cpu_millis = 0;         // 0: the machine's cores
  uint64_t memory_bytes = 0;      // 0: the machine's memory (MemTotal)
  std::vector<std::string> gpus;  // GPU ids handed out through CUDA_VISIBLE_DEVICES
  // When the predictor trains (daemon/prefetch/prediction_service.h).
  uint64_t train_every = 1000;           // history records since the last training
  uint64_t train_interval_ms = 600'000;  // at the latest after a record not trained on
  double model_half_life = 0;            // 0: the default (PredictorParams)
  // Prefetching (daemon/prefetch/prefetcher.h); 0s are the defaults there.
  bool prefetch = true;          // --no-prefetch: false
  size_t prefetch_max_warm = 0;  // warm processes; 0: PrefetchOptions::kDefaultMaxWarm
  uint64_t prefetch_memory = 0;  // their memory; 0: 25% of RAM
  uint64_t prefetch_staged = 1ull << 30;
  uint64_t prefetch_ttl_ms = 600'000;
  size_t max_idle_workers = 0;  // mode: worker processes kept idle; 0: 4 per core
  // The task cache (daemon/store/task_cache.h): its folder (main.cc defaults it to
  // $CHAINCTL_CACHE_DIR, else STATE/task-cache) and its LRU budget.
  std::string cache_dir;
  uint64_t cache_max_bytes = 5ull << 30;
  // When chaind stops by itself, as on SIGTERM (daemon/lifetime.h).
  uint64_t exit_when_idle_ms = 0;  // after this long idle; 0: never
  int parent_pid = 0;              // when this process, chaind's parent, exits; 0: never
};

// Runs until SIGTERM or SIGINT (or, as if one came, until idle for exit_when_idle_ms or until
// parent_pid exits: logged), then stops accepting, answers what is in
// flight, closes the store and returns 0. SIGHUP reopens the log file and goes on. Returns 1,
// having logged why, if it cannot start: the state dir or socket is taken by another chaind, a path
// is unusable, or the store cannot be opened.
int RunDaemon(const DaemonConfig& config);

}  // namespace chainctl::daemon
