#include "daemon/daemon.h"

#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include "common/paths.h"
#include "common/version.h"
#include "daemon/api/api.h"
#include "daemon/store/history.h"
#include "daemon/http/server.h"
#include "daemon/run/orchestrator.h"
#include "daemon/exec/orphans.h"
#include "daemon/prefetch/prediction_service.h"
#include "daemon/prefetch/prefetcher.h"
#include "daemon/exec/process_runner.h"
#include "daemon/store/registry.h"
#include "daemon/store/store.h"
#include "daemon/store/store_writer.h"
#include "daemon/systemd.h"
#include "daemon/exec/task_cgroups.h"

namespace chainctl::daemon {
namespace {

bool Fail(const std::string& message) {
  Log(LogLevel::kError, message);
  return false;
}

// Holds an exclusive flock on STATE_DIR/chaind.lock for the daemon's life, so
// that a second chaind on the same state directory refuses to start.
class StateLock {
 public:
  bool Acquire(const std::string& state_dir) {
    std::string path = state_dir + "/chaind.lock";
    fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) return Fail("cannot open " + path + ": " + std::strerror(errno));
    if (flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      char pid[32] = {};
      ssize_t n = pread(fd_, pid, sizeof pid - 1, 0);
      std::string who = n > 0 ? std::string(pid, static_cast<size_t>(n)) : "?";
      while (!who.empty() && who.back() == '\n') who.pop_back();
      return Fail("another chaind (pid " + who + ") is using the state directory " + state_dir);
    }
    std::string pid = std::to_string(getpid()) + "\n";
    if (ftruncate(fd_, 0) != 0 || pwrite(fd_, pid.data(), pid.size(), 0) < 0) {
      return Fail("cannot write " + path + ": " + std::strerror(errno));
    }
    return true;
  }
  ~StateLock() {
    if (fd_ >= 0) close(fd_);  // releases the lock
  }

 private:
  int fd_ = -1;
};

// True if something accepts connections on `path`.
bool SomeoneListens(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  bool live = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return live;
}

// Makes the socket's folder and clears a stale socket file; refuses if a
// live daemon answers there.
bool PrepareSocketPath(const std::string& path) {
  std::string err;
  if (!CheckSocketPathLength(path, &err)) return Fail(err);
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (!dir.empty() && !EnsurePrivateDir(dir, &err)) return Fail(err);
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return true;
  if (!S_ISSOCK(st.st_mode)) return Fail(path + " exists and is not a socket; remove it");
  if (SomeoneListens(path)) return Fail("a chaind is already listening on " + path);
  Log(LogLevel::kInfo, "removing the stale socket " + path);
  unlink(path.c_str());
  return true;
}

// Signal handles that start the shutdown; owned by the loop until closed.
struct Signals {
  uv_signal_t term;
  uv_signal_t interrupt;
  uv_signal_t hangup;
  HttpServer* server;
  Orchestrator* orchestrator;
  PredictionService* predictions;
  Prefetcher* prefetcher;
  WorkerPool* workers;
  StoreWriter* writer;
  bool stopping = false;
};

void OnSignal(uv_signal_t* handle, int signum) {
  auto* signals = static_cast<Signals*>(handle->data);
  if (signals->stopping) return;
  signals->stopping = true;
  Log(LogLevel::kInfo, std::string("received ") + strsignal(signum) + ": shutting down");
  SystemdNotify("STOPPING=1");
  uv_close(reinterpret_cast<uv_handle_t*>(&signals->term), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&signals->interrupt), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&signals->hangup), nullptr);
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

bool Serve(uv_loop_t* loop, HttpServer* server, const DaemonConfig& config, int systemd_fd,
           Signals* signals) {
  int rc = systemd_fd >= 0 ? server->ListenFd(systemd_fd) : server->Listen(config.socket_path);
  if (rc != 0) {
    return Fail("cannot listen on " + config.socket_path + ": " + uv_strerror(rc));
  }
  signals->server = server;
  for (auto [handle, signum] :
       {std::pair{&signals->term, SIGTERM}, std::pair{&signals->interrupt, SIGINT}}) {
    uv_signal_init(loop, handle);
    handle->data = signals;
    uv_signal_start(handle, OnSignal, signum);
  }
  uv_signal_init(loop, &signals->hangup);
  uv_signal_start(&signals->hangup, OnHangup, SIGHUP);
  Log(LogLevel::kInfo, "chaind " + std::string(kVersion) + " (pid " + std::to_string(getpid()) +
                           ") listening on " +
                           (systemd_fd >= 0 ? "the socket from systemd" : config.socket_path) +
                           ", state in " + config.state_dir);
  SystemdNotify("READY=1");
  return true;
}

// MemTotal of /proc/meminfo in bytes, or 0 if it cannot be read.
uint64_t MachineMemory() {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  uint64_t kib = 0;
  while (in >> key >> kib >> unit) {
    if (key == "MemTotal:") return kib * 1024;
  }
  return 0;
}

// The flags' capacity, the machine's where they gave none.
Capacity CapacityOf(const DaemonConfig& config) {
  Capacity capacity;
  capacity.cpu_millis =
      config.cpu_millis
          ? config.cpu_millis
          : 1000 * static_cast<int64_t>(std::max(1u, std::thread::hardware_concurrency()));
  capacity.memory_bytes = config.memory_bytes ? config.memory_bytes : MachineMemory();
  if (capacity.memory_bytes == 0) {
    Log(LogLevel::kWarning, "cannot read MemTotal from /proc/meminfo: memory is not admitted");
    capacity.memory_bytes = Capacity::kUnlimitedMemory;
  }
  capacity.gpus = config.gpus;
  return capacity;
}

// chaind-exec in chaind's own folder (daemon/CMakeLists.txt installs them together), or ""
// with a warning: tasks with limits then fail to start, saying so.
std::string FindExecHelper() {
  std::error_code ec;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  std::string helper = ec ? "" : (self.parent_path() / "chaind-exec").string();
  if (!helper.empty() && access(helper.c_str(), X_OK) == 0) return helper;
  Log(LogLevel::kWarning, "no spawn helper chaind-exec next to chaind" +
                              (helper.empty() ? std::string() : " (" + helper + ")") +
                              ": tasks with memory or cpu limits will fail to start");
  return "";
}

// Raises the soft RLIMIT_NOFILE to the hard limit (tasks inherit it; logged) and returns it.
uint64_t RaiseDescriptorLimit() {
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) != 0) return 1024;
  rlim_t was = nofile.rlim_cur;
  if (nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &nofile) != 0) nofile.rlim_cur = was;
  }
  if (nofile.rlim_cur != was) {
    Log(LogLevel::kInfo, "file descriptors: soft limit raised from " + std::to_string(was) +
                             " to the hard limit, " + std::to_string(nofile.rlim_cur));
  }
  return nofile.rlim_cur;
}

// Caps the connections served at once to a quarter of the descriptors (at least 4), so that
// connections cannot take those that tasks, the store and the log need. Logged.
void FitConnections(uint64_t descriptors, HttpLimits* limits) {
  size_t quarter = static_cast<size_t>(std::max<uint64_t>(4, descriptors / 4));
  if (limits->max_connections <= quarter) return;
  Log(LogLevel::kWarning, "file descriptors: " + std::to_string(descriptors) +
                              " allowed (ulimit -n): serving at most " + std::to_string(quarter) +
                              " connections at once, not " +
                              std::to_string(limits->max_connections));
  limits->max_connections = quarter;
}

// Caps --jobs so that the tasks running at once cannot take the descriptors left once the
// connections and chaind's own (store, loop, log, prewarms, staging) are counted: a running
// task holds about kDescriptorsPerTask (its pidfd and pipes; spawns, which briefly need more,
// happen one at a time). Shortages that remain are retried (RetryShortOfResources). Logged.
size_t FitJobs(uint64_t descriptors, size_t connections, size_t jobs) {
  constexpr uint64_t kReserved = 32;
  constexpr uint64_t kDescriptorsPerTask = 4;
  uint64_t left = descriptors > connections + kReserved ? descriptors - connections - kReserved : 0;
  auto fit = static_cast<size_t>(std::max<uint64_t>(1, left / kDescriptorsPerTask));
  if (jobs <= fit) return jobs;
  Log(LogLevel::kWarning, "file descriptors: " + std::to_string(descriptors) +
                              " allowed (ulimit -n): running at most " + std::to_string(fit) +
                              " tasks at once, not " + std::to_string(jobs));
  return fit;
}

// Tasks in cgroups of their own when chaind can make them (task_cgroups.h); logs which applies,
// and without them says why in *why.
std::unique_ptr<TaskCgroups> OpenTaskCgroups(const DaemonConfig& config, std::string* why) {
  *why = "--no-task-cgroups";
  std::unique_ptr<TaskCgroups> cgroups =
      config.task_cgroups ? TaskCgroups::Open(config.state_dir, why) : nullptr;
  Log(LogLevel::kInfo,
      cgroups ? "each task runs in a cgroup of its own, under " + cgroups->dir()
              : "tasks run without cgroups (" + *why +
                    "): their descendants that leave the task's process group are found by "
                    "CHAIN_WORKDIR");
  return cgroups;
}

}  // namespace

int RunDaemon(const DaemonConfig& config) {
  // One malloc arena for every thread, set before any thread starts. With one per thread, the
  // libuv pool's four arenas kept what they had freed: 34 MB of RssAnon after 8,000 runs (main
  // heap 0.5 MB, live heap at most 6.2 MB by heaptrack); with one, 9.3 MB after 4,000 runs, where
  // four arenas held 21.7 MB. The pool's threads allocate little, so they hardly contend.
  mallopt(M_ARENA_MAX, 1);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN);  // until Serve handles it (tasks get SIG_DFL: process_spawn.h)
  std::string err;
  if (!config.log_file.empty() && !OpenLogFile(config.log_file, &err)) {
    Fail(err);
    return 1;
  }
  uint64_t descriptors = RaiseDescriptorLimit();
  if (!EnsurePrivateDir(config.state_dir, &err)) {
    Fail(err);
    return 1;
  }
  StateLock lock;
  if (!lock.Acquire(config.state_dir)) return 1;
  int systemd_fd = SystemdListenFd();
  if (systemd_fd < 0 && !PrepareSocketPath(config.socket_path)) return 1;

  StoreOptions store_options;
  store_options.dir = config.state_dir + "/store";
  std::unique_ptr<Store> store = Store::Open(store_options, &err);
  if (!store) {
    Fail("cannot open the store: " + err);
    return 1;
  }
  Registry registry(store.get());
  History history(store.get(), config.history_retention);

  uv_loop_t loop;
  uv_loop_init(&loop);
  StoreWriter writer(&loop, store.get());
  std::string no_cgroups_why;
  std::unique_ptr<TaskCgroups> cgroups = OpenTaskCgroups(config, &no_cgroups_why);
  ProcessRunner runner(&loop, {}, FindExecHelper(), cgroups.get());
  OrchestratorOptions run_options;
  run_options.runs_dir = config.state_dir + "/runs";
  HttpLimits limits = config.limits;
  FitConnections(descriptors, &limits);
  run_options.jobs = FitJobs(
      descriptors, limits.max_connections,
      config.jobs ? config.jobs : size_t{std::max(1u, std::thread::hardware_concurrency())});
  run_options.kill_grace_ms = config.kill_grace_ms;
  run_options.keep_run_dirs = config.keep_run_files;
  run_options.keep_runs = config.keep_runs;
  run_options.keep_runs_for_ms = config.keep_runs_for_ms;
  run_options.max_log_bytes = config.max_log_bytes;
  run_options.capacity = CapacityOf(config);
  Log(LogLevel::kInfo, "tasks run " + std::to_string(run_options.jobs) +
                           " at once, admitted against " + DescribeCapacity(run_options.capacity));
  for (char** e = environ; *e; ++e) run_options.base_env.emplace_back(*e);
  // Tasks of a chaind that died (crash, kill -9) must not run on unsupervised (orphans.h).
  if (std::vector<pid_t> left = KillTaskProcesses(run_options.runs_dir); !left.empty()) {
    Log(LogLevel::kWarning, "killed " + std::to_string(left.size()) +
                                " task process(es) left running by a previous chaind");
    if (!WaitGone(left, 2000)) Log(LogLevel::kWarning, "some of them are still dying");
  }
  Orchestrator orchestrator(&loop, &registry, &history, store.get(), &writer, &runner, run_options);
  if (!orchestrator.Open(&err)) {
    Fail("cannot open the runs: " + err);
    return 1;
  }
  PredictionOptions prediction_options;
  prediction_options.train_every = config.train_every;
  prediction_options.train_interval_ms = config.train_interval_ms;
  if (config.model_half_life > 0) prediction_options.params.half_life = config.model_half_life;
  PredictionService predictions(&loop, store.get(), &history, &registry, prediction_options);
  if (!predictions.Open(&err)) {
    Fail("cannot open the model: " + err);
    return 1;
  }
  orchestrator.OnAttemptRecorded(
      [&predictions](const HistoryRecord& r) { predictions.Observe(r); });
  // Freed memory goes back to the system when chaind is idle: glibc keeps it in its arenas
  // otherwise (RssAnon grew ~5 MB per 1,000 runs with a live heap of ~5 MB). At most once a
  // second, so that back-to-back small runs do not pay for it each.
  orchestrator.OnIdle([last = std::chrono::steady_clock::time_point()]() mutable {
    auto now = std::chrono::steady_clock::now();
    if (now - last < std::chrono::seconds(1)) return;
    last = now;
    malloc_trim(0);
  });
  orchestrator.UseDurations([&predictions](const std::string& chain, const std::string& task) {
    return predictions.model().ExpectedDurationMs(chain, task);
  });
  WorkerPoolOptions worker_options;
  worker_options.max_idle = config.max_idle_workers
                                ? config.max_idle_workers
                                : 4 * std::max(1u, std::thread::hardware_concurrency());
  worker_options.kill_grace_ms = config.kill_grace_ms;
  worker_options.cgroups = cgroups.get();
  // Destroyed before the loop is closed (below): its handles must be closed on the loop.
  auto workers = std::make_unique<WorkerPool>(&loop, worker_options);
  InputStager stager(InputCacheOptions{.dir = config.state_dir + "/cache",
                                       .max_bytes = config.prefetch_staged,
                                       .ttl_ms = static_cast<int64_t>(config.prefetch_ttl_ms)});
  PrefetchOptions prefetch_options{.enabled = config.prefetch,
                                   .dir = run_options.runs_dir + "/prewarm",
                                   .max_warm = config.prefetch_max_warm,
                                   .max_memory_bytes = config.prefetch_memory,
                                   .max_staged_bytes = config.prefetch_staged,
                                   .ttl_ms = config.prefetch_ttl_ms,
                                   .measurements_file = config.state_dir + "/prefetch.json"};
  PrefetchHooks hooks{
      .latest_chain =
          [&orchestrator](const std::string& id) { return orchestrator.LatestChain(id); },
      .warm_launch = [&orchestrator](
                         const TaskSpec& task,
                         const std::string& dir) { return orchestrator.WarmLaunch(task, dir); },
      .worker_launch =
          [&orchestrator](const std::string& chain_id, const TaskSpec& task) {
            return orchestrator.WorkerLaunch(chain_id, task);
          }};
  Prefetcher prefetcher(&loop, prefetch_options, hooks, &predictions, &runner, workers.get(),
                        &stager);
  if (!prefetcher.Open(&err)) {
    Fail("cannot open the prefetcher: " + err);
    return 1;
  }
  orchestrator.UsePrefetcher(&prefetcher);
  orchestrator.UseWorkers(workers.get());
  Log(LogLevel::kInfo, config.prefetch
                           ? "prefetching on: up to " +
                                 std::to_string(prefetcher.options().max_warm) + " warm processes"
                           : "prefetching off (--no-prefetch)");
  if (config.resume_interrupted) orchestrator.ResumeInterrupted();
  ApiContext context{
      .loop = &loop,
      .registry = &registry,
      .orchestrator = &orchestrator,
      .history = &history,
      .predictions = &predictions,
      .prefetcher = &prefetcher,
      .workers = workers.get(),
      .stager = &stager,
      .writer = &writer,
      .socket_path = config.socket_path,
      .state_dir = config.state_dir,
      .task_cgroups = cgroups ? nlohmann::json{{"dir", cgroups->dir()}}
                              : nlohmann::json{{"dir", nullptr}, {"why_not", no_cgroups_why}},
      .store_format = kStoreFormatVersion,
      .started_unix_ms = RealUnixMs(),
      // Imported records teach the predictor as the orchestrator's do.
      .on_history_appended = [&predictions](const std::vector<HistoryRecord>& records) {
        for (const HistoryRecord& r : records) predictions.Observe(r);
      }};
  Api api(context);
  int status = 0;
  {
    HttpServer server(&loop, limits, [&api](HttpRequest request, Responder respond) {
      api.Handle(std::move(request), std::move(respond));
    });
    Signals signals;
    signals.orchestrator = &orchestrator;
    signals.predictions = &predictions;
    signals.prefetcher = &prefetcher;
    signals.workers = workers.get();
    signals.writer = &writer;
    if (Serve(&loop, &server, config, systemd_fd, &signals)) {
      uv_run(&loop, UV_RUN_DEFAULT);
    } else {
      status = 1;
      predictions.Shutdown();
      prefetcher.Shutdown();
      server.Shutdown([] {});
      uv_run(&loop, UV_RUN_DEFAULT);
    }
  }
  orchestrator.UseWorkers(nullptr);
  workers.reset();               // kills what is left and closes its handles...
  uv_run(&loop, UV_RUN_NOWAIT);  // ...which this finishes
  if (uv_loop_close(&loop) != 0) Log(LogLevel::kWarning, "libuv handles left open at exit");
  if (systemd_fd < 0 && status == 0) unlink(config.socket_path.c_str());
  Log(LogLevel::kInfo, status == 0 ? "stopped" : "could not start");
  return status;
}

}  // namespace chainctl::daemon
