#include "daemon/daemon.h"

#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/hash_memo.h"
#include "common/paths.h"
#include "common/units.h"
#include "common/version.h"
#include "daemon/api/api.h"
#include "daemon/daemon_parts.h"
#include "daemon/exec/orphans.h"
#include "daemon/exec/process_runner.h"
#include "daemon/exec/task_cgroups.h"
#include "daemon/http/server.h"
#include "daemon/lifetime.h"
#include "daemon/machine_limits.h"
#include "daemon/prefetch/cache_forecast.h"
#include "daemon/prefetch/prediction_service.h"
#include "daemon/prefetch/prefetcher.h"
#include "daemon/run/orchestrator.h"
#include "daemon/single_instance.h"
#include "daemon/store/history.h"
#include "daemon/store/registry.h"
#include "daemon/store/store.h"
#include "daemon/store/store_writer.h"
#include "daemon/store/task_cache.h"
#include "daemon/systemd.h"

namespace chainctl::daemon {
namespace {

// The wiring's errors: logged, and false for the step that failed to return.
bool Fail(const std::string& message) {
  Log(LogLevel::kError, message);
  return false;
}

// What starts the shutdown: signal handles (owned by the loop until closed) and the watches of
// daemon/lifetime.h (null where not asked for); and the parts it stops.
struct Signals {
  uv_signal_t term;
  uv_signal_t interrupt;
  uv_signal_t hangup;
  IdleExit* idle = nullptr;
  ParentWatch* parent = nullptr;
  HttpServer* server;
  Orchestrator* orchestrator;
  PredictionService* predictions;
  Prefetcher* prefetcher;
  WorkerPool* workers;
  StoreWriter* writer;
  bool stopping = false;
};

// The shutdown, whatever started it (`why`, logged); once.
void Shutdown(Signals* signals, const std::string& why) {
  if (signals->stopping) return;
  signals->stopping = true;
  Log(LogLevel::kInfo, why + ": shutting down");
  SystemdNotify("STOPPING=1");
  uv_close(reinterpret_cast<uv_handle_t*>(&signals->term), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&signals->interrupt), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&signals->hangup), nullptr);
  if (signals->idle) signals->idle->Close();
  if (signals->parent) signals->parent->Close();
  signal(SIGHUP, SIG_IGN);  // libuv restored SIG_DFL: a SIGHUP must not cut the shutdown short
  // Writes that a failing store refused are tried once more, then logged as lost: stopping
  // must not wait for a disk to be freed.
  signals->writer->GiveUpOnFailure();
  signals->server->Shutdown([] { Log(LogLevel::kInfo, "all connections closed"); });
  signals->orchestrator->Shutdown([] { Log(LogLevel::kInfo, "all runs stopped and stored"); });
  signals->predictions->Shutdown();
  // No prewarmed process or idle worker outlives chaind; busy workers end with their runs.
  signals->prefetcher->Shutdown();
  signals->workers->StopIdle("");
}

void OnSignal(uv_signal_t* handle, int signum) {
  Shutdown(static_cast<Signals*>(handle->data), std::string("received ") + strsignal(signum));
}

// What --exit-when-idle watches: runs, their tasks and the server's connections.
IdleExit::Activity ActivityOf(const Orchestrator& orchestrator, const HttpServer& server) {
  HttpServer::Stats stats = server.stats();
  return {.busy = orchestrator.active_runs() > 0 || orchestrator.running_tasks() > 0 ||
                  stats.open_connections > 0 || stats.requests_in_flight > 0,
          .events = stats.connections};
}

// SIGHUP, the logrotate convention: the log file is opened anew, and chaind goes on.
void OnHangup(uv_signal_t*, int) {
  if (LogFilePath().empty()) {
    return Log(LogLevel::kInfo, "received SIGHUP: no --log-file to reopen; going on");
  }
  Log(LogLevel::kInfo, "received SIGHUP: reopening the log file " + LogFilePath());
  std::string err;
  if (!ReopenLogFile(&err)) return Log(LogLevel::kError, err + "; logging on to the old file");
  Log(LogLevel::kInfo, "log file reopened (SIGHUP)");
}

// chaind's parts, made by Start in this order and destroyed in the reverse one (the members are
// declared in it): what is made later uses what was made before. Each step logs why it failed.
class Daemon {
 public:
  explicit Daemon(const DaemonConfig& config)
      : config_(config),
        runs_dir_(config.state_dir + "/runs"),
        memo_path_(config.state_dir + "/hash-memo") {}
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Everything up to serving: false (logged) if chaind cannot start.
  bool Start();
  // Serves until SIGTERM or SIGINT and the shutdown they start (OnSignal) are over: 0; or, if it
  // cannot listen, stops what had started: 1. The server and the signal handles end here.
  int Serve();
  // After Serve: the worker pool goes, then the loop, then the socket file chaind made (if it
  // served); the hash memo is saved. Logged; the other parts go with the Daemon.
  void Close(int status);

 private:
  bool ClaimStateDir();
  bool OpenStore();
  bool OpenOrchestrator();
  void OpenCache();
  bool OpenPredictions();
  bool OpenPrefetcher();
  void MakeApi();
  bool Listen(HttpServer* server, Signals* signals);
  void WatchLifetime(HttpServer* server, Signals* signals);

  const DaemonConfig& config_;
  const std::string runs_dir_;
  const std::string memo_path_;  // the hash memo of the task cache's keys, between chainds
  uint64_t descriptors_ = 0;     // the RLIMIT_NOFILE chaind has
  StateLock lock_;
  ParentWatch parent_;   // --parent-pid
  int systemd_fd_ = -1;  // the socket systemd passed, if it did
  std::unique_ptr<Store> store_;
  std::optional<Registry> registry_;
  std::optional<History> history_;
  uv_loop_t loop_{};
  std::optional<StoreWriter> writer_;
  std::string no_cgroups_why_;
  std::unique_ptr<TaskCgroups> cgroups_;  // null: tasks run without cgroups
  std::optional<ProcessRunner> runner_;
  std::unique_ptr<TaskCache> task_cache_;        // null: chaind runs without a task cache
  HashMemo hash_memo_;                           // memo_path_: loaded at start, saved in Close
  std::optional<CacheForecast> cache_forecast_;  // with the task cache: expected hits
  HttpLimits limits_;  // config_.limits, the connections fitted to the descriptors
  std::optional<Orchestrator> orchestrator_;
  std::optional<PredictionService> predictions_;
  // Destroyed before the loop is closed (Close): its handles must be closed on the loop.
  std::unique_ptr<WorkerPool> workers_;
  std::optional<InputStager> stager_;
  std::optional<Prefetcher> prefetcher_;
  std::optional<Api> api_;
  std::optional<IdleExit> idle_exit_;  // --exit-when-idle, from Listen
};

bool Daemon::Start() {
  std::string err;
  if (!config_.log_file.empty() && !OpenLogFile(config_.log_file, &err)) return Fail(err);
  if (config_.parent_pid && !parent_.Open(config_.parent_pid, &err)) return Fail(err);
  descriptors_ = RaiseDescriptorLimit();
  if (!ClaimStateDir() || !OpenStore()) return false;
  uv_loop_init(&loop_);
  writer_.emplace(&loop_, store_.get());
  if (!OpenOrchestrator()) return false;
  OpenCache();
  if (!OpenPredictions()) return false;
  TrimMemoryWhenIdle(&*orchestrator_);
  if (!OpenPrefetcher()) return false;
  if (config_.resume_interrupted) orchestrator_->ResumeInterrupted();
  MakeApi();
  return true;
}

// The state folder, made if missing and locked for this chaind, and the socket path (unless
// systemd passed the socket): no other chaind may use them.
bool Daemon::ClaimStateDir() {
  std::string err;
  if (!EnsurePrivateDir(config_.state_dir, &err) || !lock_.Acquire(config_.state_dir, &err)) {
    return Fail(err);
  }
  systemd_fd_ = SystemdListenFd();
  if (systemd_fd_ < 0 && !PrepareSocketPath(config_.socket_path, &err)) return Fail(err);
  return true;
}

// The store in STATE_DIR/store, and the registry and history on it.
bool Daemon::OpenStore() {
  StoreOptions options;
  options.dir = config_.state_dir + "/store";
  std::string err;
  store_ = Store::Open(options, &err);
  if (!store_) return Fail("cannot open the store: " + err);
  registry_.emplace(store_.get());
  history_.emplace(store_.get(), config_.history_retention);
  return true;
}

// The task runner, in cgroups where they can be made, and the orchestrator, opened: the runs a
// dead chaind left are interrupted, their task processes killed. The connections and the jobs
// are fitted to the descriptors here.
bool Daemon::OpenOrchestrator() {
  cgroups_ = OpenTaskCgroups(config_, &no_cgroups_why_);
  runner_.emplace(&loop_, ProcessRunner::UnixMsClock{}, FindExecHelper(), cgroups_.get());
  limits_ = config_.limits;
  FitConnections(descriptors_, &limits_);
  OrchestratorOptions options =
      OrchestratorOptionsFrom(config_, runs_dir_, descriptors_, limits_.max_connections);
  KillTasksLeftRunning(runs_dir_);
  orchestrator_.emplace(&loop_, &*registry_, &*history_, store_.get(), &*writer_, &*runner_,
                        options);
  std::string err;
  if (!orchestrator_->Open(&err)) return Fail("cannot open the runs: " + err);
  return true;
}

// The task cache (--cache-dir, within --cache-size) and the hash memo of its keys, handed to the
// orchestrator. A cache folder that cannot be used is logged, and chaind runs without a cache.
void Daemon::OpenCache() {
  std::string why;  // without a memo (the first start), source files are hashed anew
  if (!hash_memo_.Load(memo_path_, &why)) Log(LogLevel::kDebug, "no hash memo: " + why);
  auto cache = std::make_unique<TaskCache>(
      TaskCache::Options{.dir = config_.cache_dir, .max_bytes = config_.cache_max_bytes});
  bool opened = cache->Open(&why);
  if (opened) task_cache_ = std::move(cache);
  Log(opened ? LogLevel::kInfo : LogLevel::kWarning,
      opened
          ? "task cache in " + config_.cache_dir + ", within " + FormatSize(config_.cache_max_bytes)
          : "cannot open the task cache: " + why + "; no task is cached");
  orchestrator_->UseCache(task_cache_.get(), &hash_memo_);
  if (opened) {  // an answer that changed is a reason to plan prewarms again
    cache_forecast_.emplace(&loop_, task_cache_.get(), &hash_memo_, [this] {
      if (prefetcher_) prefetcher_->Wake();
    });
  }
}

// The prediction service, opened, learning from every attempt's record; the orchestrator weighs
// tasks by the durations it expects.
bool Daemon::OpenPredictions() {
  PredictionOptions options;
  options.train_every = config_.train_every;
  options.train_interval_ms = config_.train_interval_ms;
  if (config_.model_half_life > 0) options.params.half_life = config_.model_half_life;
  predictions_.emplace(&loop_, store_.get(), &*history_, &*registry_, options);
  std::string err;
  if (!predictions_->Open(&err)) return Fail("cannot open the model: " + err);
  PredictionService* predictions = &*predictions_;
  orchestrator_->OnAttemptRecorded(
      [predictions](const HistoryRecord& r) { predictions->Observe(r); });
  orchestrator_->UseDurations([predictions](const std::string& chain, const std::string& task) {
    return predictions->model().ExpectedDurationMs(chain, task);
  });
  return true;
}

// The worker pool, the input stager and the prefetcher, opened, and the orchestrator using them.
bool Daemon::OpenPrefetcher() {
  WorkerPoolOptions worker_options;
  worker_options.max_idle =
      config_.max_idle_workers ? config_.max_idle_workers : 4 * MachineCores();
  worker_options.kill_grace_ms = config_.kill_grace_ms;
  worker_options.cgroups = cgroups_.get();
  workers_ = std::make_unique<WorkerPool>(&loop_, worker_options);
  stager_.emplace(InputCacheOptions{.dir = config_.state_dir + "/cache",
                                    .max_bytes = config_.prefetch_staged,
                                    .ttl_ms = static_cast<int64_t>(config_.prefetch_ttl_ms)});
  PrefetchOptions options{.enabled = config_.prefetch,
                          .dir = runs_dir_ + "/prewarm",
                          .max_warm = config_.prefetch_max_warm,
                          .max_memory_bytes = config_.prefetch_memory,
                          .max_staged_bytes = config_.prefetch_staged,
                          .ttl_ms = config_.prefetch_ttl_ms,
                          .measurements_file = config_.state_dir + "/prefetch.json"};
  prefetcher_.emplace(
      &loop_, options,
      PrefetchHooksOf(&*orchestrator_, cache_forecast_ ? &*cache_forecast_ : nullptr),
      &*predictions_, &*runner_, workers_.get(), &*stager_);
  std::string err;
  if (!prefetcher_->Open(&err)) return Fail("cannot open the prefetcher: " + err);
  orchestrator_->UsePrefetcher(&*prefetcher_);
  orchestrator_->UseWorkers(workers_.get());
  Log(LogLevel::kInfo, config_.prefetch
                           ? "prefetching on: up to " +
                                 std::to_string(prefetcher_->options().max_warm) + " warm processes"
                           : "prefetching off (--no-prefetch)");
  return true;
}

// The API on every part.
void Daemon::MakeApi() {
  PredictionService* predictions = &*predictions_;
  api_.emplace(ApiContext{
      .loop = &loop_,
      .registry = &*registry_,
      .orchestrator = &*orchestrator_,
      .history = &*history_,
      .predictions = predictions,
      .prefetcher = &*prefetcher_,
      .workers = workers_.get(),
      .stager = &*stager_,
      .task_cache = task_cache_.get(),
      .writer = &*writer_,
      .socket_path = config_.socket_path,
      .state_dir = config_.state_dir,
      .task_cgroups = cgroups_ ? nlohmann::json{{"dir", cgroups_->dir()}}
                               : nlohmann::json{{"dir", nullptr}, {"why_not", no_cgroups_why_}},
      .store_format = kStoreFormatVersion,
      .started_unix_ms = RealUnixMs(),
      // Imported records teach the predictor as the orchestrator's do.
      .on_history_appended = [predictions](const std::vector<HistoryRecord>& records) {
        for (const HistoryRecord& r : records) predictions->Observe(r);
      }});
}

int Daemon::Serve() {
  HttpServer server(&loop_, limits_, [this](HttpRequest request, Responder respond) {
    api_->Handle(std::move(request), std::move(respond));
  });
  Signals signals;
  signals.orchestrator = &*orchestrator_;
  signals.predictions = &*predictions_;
  signals.prefetcher = &*prefetcher_;
  signals.workers = workers_.get();
  signals.writer = &*writer_;
  if (Listen(&server, &signals)) {
    uv_run(&loop_, UV_RUN_DEFAULT);
    return 0;
  }
  predictions_->Shutdown();
  prefetcher_->Shutdown();
  server.Shutdown([] {});
  uv_run(&loop_, UV_RUN_DEFAULT);
  return 1;
}

// Listens on the socket (systemd's, or config_.socket_path), handles SIGTERM and SIGINT (the
// shutdown) and SIGHUP (the log reopened), and tells systemd chaind is ready. Logged.
bool Daemon::Listen(HttpServer* server, Signals* signals) {
  int rc = systemd_fd_ >= 0 ? server->ListenFd(systemd_fd_) : server->Listen(config_.socket_path);
  if (rc != 0) {
    return Fail("cannot listen on " + config_.socket_path + ": " + uv_strerror(rc));
  }
  signals->server = server;
  for (auto [handle, signum] :
       {std::pair{&signals->term, SIGTERM}, std::pair{&signals->interrupt, SIGINT}}) {
    uv_signal_init(&loop_, handle);
    handle->data = signals;
    uv_signal_start(handle, OnSignal, signum);
  }
  uv_signal_init(&loop_, &signals->hangup);
  uv_signal_start(&signals->hangup, OnHangup, SIGHUP);
  WatchLifetime(server, signals);
  Log(LogLevel::kInfo, "chaind " + std::string(kVersion) + " (pid " + std::to_string(getpid()) +
                           ") listening on " +
                           (systemd_fd_ >= 0 ? "the socket from systemd" : config_.socket_path) +
                           ", state in " + config_.state_dir);
  SystemdNotify("READY=1");
  return true;
}

// --exit-when-idle and --parent-pid, if given: their end is the shutdown of SIGTERM. Logged.
void Daemon::WatchLifetime(HttpServer* server, Signals* signals) {
  if (config_.parent_pid) {
    signals->parent = &parent_;
    parent_.Start(&loop_, [signals, pid = config_.parent_pid] {
      Shutdown(signals, "the parent process " + std::to_string(pid) + " exited (--parent-pid)");
    });
    Log(LogLevel::kInfo, "exits when process " + std::to_string(config_.parent_pid) + " exits");
  }
  if (uint64_t ms = config_.exit_when_idle_ms) {
    Orchestrator* orchestrator = &*orchestrator_;
    std::string idle = FormatDuration(std::chrono::milliseconds(ms));
    idle_exit_.emplace(
        &loop_, ms, [orchestrator, server] { return ActivityOf(*orchestrator, *server); },
        [signals, idle] { Shutdown(signals, "idle for " + idle + " (--exit-when-idle)"); });
    signals->idle = &*idle_exit_;
    Log(LogLevel::kInfo,
        "exits after " + idle + " with no run active and no client connected (--exit-when-idle)");
  }
}

void Daemon::Close(int status) {
  orchestrator_->UseWorkers(nullptr);
  workers_.reset();               // kills what is left and closes its handles...
  uv_run(&loop_, UV_RUN_NOWAIT);  // ...which this finishes
  if (uv_loop_close(&loop_) != 0) Log(LogLevel::kWarning, "libuv handles left open at exit");
  std::string err;  // the memo's users, the runs, are over
  if (!hash_memo_.Save(memo_path_, &err)) Log(LogLevel::kWarning, "hash memo not saved: " + err);
  if (systemd_fd_ < 0 && status == 0) unlink(config_.socket_path.c_str());
  Log(LogLevel::kInfo, status == 0 ? "stopped" : "could not start");
}

}  // namespace

int RunDaemon(const DaemonConfig& config) {
  // One malloc arena for every thread, set before any thread starts. With one per thread, the
  // libuv pool's four arenas kept what they had freed: 34 MB of RssAnon after 8,000 runs (main
  // heap 0.5 MB, live heap at most 6.2 MB by heaptrack); with one, 9.3 MB after 4,000 runs, where
  // four arenas held 21.7 MB. The pool's threads allocate little, so they hardly contend.
  mallopt(M_ARENA_MAX, 1);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN);  // until Listen handles it (tasks get SIG_DFL: process_spawn.h)
  Daemon daemon(config);
  if (!daemon.Start()) return 1;
  int status = daemon.Serve();
  daemon.Close(status);
  return status;
}

}  // namespace chainctl::daemon
