// Persistent workers (DESIGN.md §4 "Worker mode", §5 "Prewarm levels": `worker`): tasks with
// `mode: worker` are served by long-lived processes that answer many requests, like Bazel's
// persistent workers. The orchestrator runs such tasks through Run instead of a TaskRunner;
// the prefetch engine starts idle workers ahead of need with Prewarm.
//
// Protocol (NDJSON on the worker's stdin and stdout; examples/workers/echo_worker.py):
//   request   {"id": N, "input": …, "task_id": …, "run_id": …, "workdir": …}  one line
//   response  {"id": N, "output": …}  or  {"id": N, "error": "…"}           one line
// A worker gets one request at a time and must write nothing but the response to it; stderr
// goes to the launch's log_path. Closing its stdin asks it to exit.
//
// Threads: one libuv loop. Every member function is called on the loop's thread; `done` and
// the OnIdleStopped callback run there, never from inside a member function.
// Process requirements: as ProcessRunner (daemon/exec/process_runner.h): SIGPIPE ignored, nobody
// else waits for "any child".
//
// Workers. A worker is spawned with SpawnProcess (daemon/exec/process_spawn.h) from a launch's
// argv, env, workdir and log_path (stdin and stdout are pipes; stdin_data, stdin_file and
// output_file are not used; cpu_limit_s is ignored: a worker's CPU time accumulates over its
// requests; memory_limit_bytes needs options.exec_helper). It leads its own process group. A
// `key` names interchangeable workers: Run takes any idle worker of its key and ignores its
// launch's argv/env/workdir/log_path then. Its exit is seen through its pidfd and it is reaped
// with wait4, as in ProcessRunner.
//   idle      after Prewarm, or after answering a request. Ordered by last use. An idle worker
//             that writes anything, closes stdout or exits is stopped (no callback).
//   busy      one request written (uv_write: never blocks the loop), its response awaited.
//             stdout is split into lines as it comes (a line may span reads); the first line
//             is the response. Anything more before the next request: it still answers, but
//             the worker is stopped instead of going back to idle.
//   stopping  stdin closed, SIGTERM to the group, SIGKILL after options.kill_grace_ms (at once
//             for a worker that broke the protocol); gone once reaped. Neither idle nor busy.
//             A busy worker whose request failed stays busy until the request's `done`.
// Keep-alive: an idle worker is stopped after its keep-alive (a prewarm's `keep_alive_ms`
// until its first request, then options.idle_timeout_ms; 0: no expiry). Beyond
// options.max_idle idle workers (all keys), the least recently used idle one is stopped. Both
// call OnIdleStopped; StopIdle does not.
//
// Results (`done`, once per Run, on a later loop iteration):
//   {"output": X}        kExited, exit_code 0, output = X as JSON text (bytes_out its size).
//   {"error": "m"}       kExited, exit_code 1, error "worker error: m" (a non-string error is
//                        given as JSON text). The worker answered, so it stays in the pool
//                        unless options.reuse_after_error is false.
//   the worker exits without answering: kExited/kSignaled with its status, error "worker
//                        died during the request: exited with status 3" (or "killed by signal
//                        11 (SIGSEGV)"). One that exits 0 without answering reports exit_code 1,
//                        so the result is not ok. A response already in the pipe still counts.
//   it closes stdout without answering: launch.kill_grace_ms to exit on its own (then as
//                        above), else SIGKILL and "worker died during the request: closed its
//                        stdout (killed by signal 9 (SIGKILL))".
//   a response that is not a JSON object, has another id, or neither output nor error: the
//                        group is SIGKILLed; kind/status as above, error "worker protocol
//                        error: the response's id is 8, not 7 (killed by signal 9 (SIGKILL))"
//                        (or "the response is not a JSON object: <its first 200 bytes>", "the
//                        response has neither "output" nor "error"").
//   launch.timeout_ms    (> 0, counted from Run) kTimedOut "timed out after 2s";
//                        SIGTERM, SIGKILL launch.kill_grace_ms later.
//   Cancel               kCancelled "cancelled"; same signals.
//   response line over launch.max_output_bytes (the whole line, id included): SIGKILL,
//                        kOutputTooLarge "response is over the 16Mi limit (max_output)".
//   spawn failure        kSpawnFailed with SpawnProcess's error (also when the spawn helper
//                        cannot run the worker); "the request is not a JSON object".
// Every request that did not end with a response (or with {"error"}) stops its worker. A
// failed request's result comes once its worker is reaped, with the worker's cpu_s and
// max_rss_kb. cold is false when an existing (idle or prewarmed) worker served it;
// startup_ms is the spawn's duration when cold, 0 when warm. start_unix_ms is when Run was
// called, end_unix_ms when the response was read or the worker reaped (the clock given).
// bytes_in is the size of the request line the worker accepted.
//
// Ownership. The pool owns its workers; a worker that ended owns itself until the close
// callbacks of its libuv handles have run. Destroying the pool SIGKILLs every worker's group
// (busy, idle or stopping), reaps it, closes its handles and calls nothing. The loop must
// outlive the pool and run once more afterwards (UV_RUN_NOWAIT is enough) before
// uv_loop_close.
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "daemon/exec/process_spawn.h"
#include "daemon/exec/task_cgroups.h"
#include "daemon/exec/task_runner.h"

namespace chainctl::daemon {

struct WorkerPoolOptions {
  size_t max_idle = 8;  // idle workers kept across all keys; the least recently used beyond goes
  uint64_t idle_timeout_ms = 300'000;  // an idle worker unused this long is stopped (0: never)
  uint64_t kill_grace_ms = 5000;       // SIGTERM to SIGKILL when stopping an idle worker
  bool reuse_after_error = true;       // a worker that answered {"error"} stays in the pool
  std::string exec_helper;             // chaind-exec, for launches with a memory limit
  TaskCgroups* cgroups = nullptr;  // each worker in a cgroup of its own there (outlives the pool)
};

class WorkerPool {
 public:
  using Handle = uint64_t;  // one request; never 0. Also the request's "id".
  using Done = std::function<void(TaskResult)>;
  using IdleStopped =
      std::function<void(const std::string& key, bool never_used, double idle_ms, uint64_t rss_kb)>;

  // `unix_ms_clock` empty: the system clock.
  WorkerPool(uv_loop_t* loop, WorkerPoolOptions options,
             std::function<int64_t()> unix_ms_clock = {});
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Starts a worker for `key` from `launch` and keeps it idle. `keep_alive_ms` (0: the
  // options') is how long it may stay idle before its first request. False with `*err` if it
  // cannot be spawned.
  bool Prewarm(const std::string& key, const TaskLaunch& launch, uint64_t keep_alive_ms,
               std::string* err);
  // Sends `request` ({"input", "task_id", "run_id", "workdir"}; the pool adds "id") to the
  // most recently used idle worker of `key`, or to one spawned from `launch`. See the header
  // comment for what `done` gets.
  Handle Run(const std::string& key, const TaskLaunch& launch, nlohmann::json request, Done done);
  // Stops the request's worker; `done` reports kCancelled. Nothing if it already ended.
  void Cancel(Handle handle);
  // Stops every idle worker of `key` ("" = all keys). Returns how many.
  size_t StopIdle(const std::string& key);

  size_t busy() const { return busy_.size(); }
  size_t idle() const { return idle_.size(); }
  size_t idle(const std::string& key) const;
  // Workers being stopped and not yet reaped.
  size_t stopping() const { return stopping_.size(); }
  // {key: {"idle", "busy", "spawned", "reused", "stopped_idle" (keep-alive expiries),
  // "evicted" (pushed out by max_idle), "requests"}} for every key seen.
  nlohmann::json Stats() const;
  // Called when an idle worker is stopped because its keep-alive expired or max_idle pushed it
  // out: its key, whether it was a prewarm that never got a request, how long it was idle, and
  // its RSS in KiB (/proc/PID/statm; 0 if unknown).
  void OnIdleStopped(IdleStopped cb) { idle_stopped_ = std::move(cb); }

 private:
  struct Worker;  // one worker process and its request in flight (pool_worker.h)
  struct KeyStats {
    uint64_t spawned = 0, reused = 0, stopped_idle = 0, evicted = 0, requests = 0;
  };

  Worker* Spawn(const std::string& key, const TaskLaunch& launch, std::string* err,
                int* error = nullptr);
  Worker* TakeIdle(const std::string& key);
  void MakeIdle(Worker* worker);
  void ExpireIdle(Worker* worker, bool evicted);
  void StopWorker(Worker* worker, bool at_once);
  void Forget(Worker* worker);
  void FailLater(Done done, TaskResult result, std::string error);
  void Later(std::function<void()> call);
  static void OnLaterTimer(uv_timer_t* timer);

  uv_loop_t* loop_;
  WorkerPoolOptions options_;
  std::function<int64_t()> clock_;
  SpawnAttributes attributes_;
  Handle next_handle_ = 1;
  std::list<Worker*> idle_;                   // by last use, most recent at the back
  std::unordered_map<Handle, Worker*> busy_;  // by the handle of the request they serve
  std::unordered_set<Worker*> stopping_;      // stopping, not yet reaped
  std::map<std::string, KeyStats> stats_;
  std::vector<std::function<void()>> later_;  // callbacks due on the next loop iteration
  uv_timer_t* later_timer_;                   // runs later_; heap: freed by its close callback
  std::shared_ptr<bool> alive_;               // false once the pool is destroyed
  std::unique_ptr<char[]> read_buffer_;
  IdleStopped idle_stopped_;
};

}  // namespace chainctl::daemon
