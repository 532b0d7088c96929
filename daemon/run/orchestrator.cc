#include "daemon/run/orchestrator.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>

#include "common/chain/load.h"
#include "common/chain/condition.h"
#include "common/json_text.h"
#include "common/units.h"
#include "daemon/util/content_hash.h"
#include "daemon/util/log.h"
#include "daemon/run/orchestrator_internal.h"
#include "daemon/prefetch/prefetcher.h"
#include "daemon/exec/process_spawn.h"
#include "daemon/store/run_keys.h"
#include "daemon/run/task_io.h"
#include "daemon/util/work_queue.h"

namespace chainctl::daemon {

using nlohmann::json;

namespace orchestrator_detail {

bool MakeDir(const std::string& path, std::string* err) {
  if (mkdir(path.c_str(), 0700) == 0 || errno == EEXIST) return true;
  *err = "cannot create " + path + ": " + std::strerror(errno);
  return false;
}

RunError StoreFailure(const std::string& err) {
  return RunError{500, "store_error", "the store failed: " + err, nullptr};
}

}  // namespace orchestrator_detail

using orchestrator_detail::DecodeRecord;
using orchestrator_detail::GetRecord;
using orchestrator_detail::MakeDir;
using orchestrator_detail::ReadEvents;
using orchestrator_detail::ReadTaskRecords;
using orchestrator_detail::StoreFailure;

namespace {

size_t Index(int i) { return static_cast<size_t>(i); }

// Attempts short of resources retried per task while no other task of chaind runs (while one
// does, its end frees descriptors, processes and memory): with the default 1 s backoff, about
// 10 s of a shortage nothing of chaind's will end.
constexpr int kMaxShortRetries = 10;

std::string PlanKey(const std::string& chain_id, int version) {
  return chain_id + '\0' + std::to_string(version);
}

// Writes `data` as the whole content of `path`. Not with O_TRUNC (see OpenLog in
// process_spawn.cc): only a file that holds more than `data` is cut. On failure, the errno is
// put in `*error_number` when given.
bool WriteFile(const std::string& path, const std::string& data, std::string* err,
               int* error_number = nullptr) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  bool ok = fd >= 0;
  struct stat st {};
  if (ok && fstat(fd, &st) == 0 && static_cast<size_t>(st.st_size) > data.size()) {
    ok = ftruncate(fd, static_cast<off_t>(data.size())) == 0;
  }
  for (size_t done = 0; ok && done < data.size();) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<size_t>(n);
  }
  int error = ok ? 0 : errno;
  if (fd >= 0 && close(fd) != 0 && ok) {
    ok = false;
    error = errno;
  }
  if (!ok) *err = "cannot write " + path + ": " + std::strerror(error);
  if (!ok && error_number) *error_number = error;
  return ok;
}

// The environment every task starts from: `base` without CHAIN_* variables (a daemon started
// from inside a task must not hand that task's CHAIN_RUN_ID to others).
std::vector<std::string> WithoutChainVariables(std::vector<std::string> base) {
  std::erase_if(base, [](const std::string& v) { return v.rfind("CHAIN_", 0) == 0; });
  return base;
}

std::vector<std::string> TaskEnv(const std::vector<std::string>& base, const TaskSpec& spec) {
  std::vector<std::string> env;
  env.reserve(base.size() + spec.env.size() + 8);
  for (const std::string& v : base) {
    if (!spec.env.empty() && spec.env.count(v.substr(0, v.find('=')))) continue;
    env.push_back(v);
  }
  for (const auto& [name, value] : spec.env) env.push_back(name + "=" + value);
  return env;
}

// CUDA_VISIBLE_DEVICES: the granted GPU ids, "" for none, so that a task cannot use a GPU
// granted to another (whatever the daemon's environment or the task's `env` said).
void SetGpuEnv(const Grant& grant, std::vector<std::string>* env) {
  static const std::string kName = "CUDA_VISIBLE_DEVICES=";
  std::erase_if(*env, [](const std::string& v) { return v.starts_with(kName); });
  std::string ids;
  for (const std::string& id : grant.gpus) ids += (ids.empty() ? "" : ",") + id;
  env->push_back(kName + ids);
}

// The limits of resource_requirements (process_runner.h enforces them): memory as is; cpu
// with a timeout as CPU time, cpu x timeout rounded up to a second (cpu alone is admission
// only: a time limit needs a time).
void SetLimits(const ResourceRequirements& r, TaskLaunch* launch) {
  launch->memory_limit_bytes = r.memory_bytes;
  if (r.cpu_millis > 0 && r.timeout) {
    double seconds = std::ceil(static_cast<double>(r.cpu_millis) / 1000 *
                               static_cast<double>(r.timeout->count()) / 1000);
    // Beyond ~30 million years of CPU time there is nothing to limit.
    if (seconds < 1e15) launch->cpu_limit_s = std::max<uint64_t>(1, static_cast<uint64_t>(seconds));
  }
}

std::vector<std::string> TaskArgv(const TaskSpec& spec) {
  std::vector<std::string> argv;
  if (!spec.command.empty()) {
    argv = {"/bin/sh", "-c", spec.command, "sh"};  // args become $1, $2, ...
  } else {
    argv = {spec.executable_code_location};
  }
  argv.insert(argv.end(), spec.args.begin(), spec.args.end());
  return argv;
}

// The cause of a failed attempt, for the history: "exit 3", "signal 9", "timeout", ...
std::string CauseOf(const TaskResult& r) {
  switch (r.kind) {
    case TaskResult::Kind::kExited:
      return "exit " + std::to_string(r.exit_code);
    case TaskResult::Kind::kSignaled:
      return "signal " + std::to_string(r.signal) + (r.signal == SIGXCPU ? " (cpu limit)" : "");
    case TaskResult::Kind::kTimedOut:
      return "timeout";
    case TaskResult::Kind::kOutputTooLarge:
      return "max_output";
    case TaskResult::Kind::kSpawnFailed:
      return "spawn";
    case TaskResult::Kind::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

uint64_t BackoffMs(const RetryPolicy& retry, int failed_attempts, std::mt19937_64& rng) {
  double ms = static_cast<double>(retry.initial_backoff.count());
  for (int i = 1; i < failed_attempts; ++i) ms *= retry.multiplier;
  ms = std::min(ms, static_cast<double>(retry.max_backoff.count()));
  // Jitter: 75% to 125% of the backoff, so retries of many runs do not move in lockstep.
  std::uniform_real_distribution<double> jitter(0.75, 1.25);
  return static_cast<uint64_t>(ms * jitter(rng));
}

std::mt19937_64& Rng() {
  static std::mt19937_64 rng{std::random_device{}()};
  return rng;
}

// What a retry or deadline timer's data points to.
struct TimerTarget {
  Orchestrator* self;
  uint64_t n;
  int task;  // -1 for a run's deadline
};

// Stops and frees a timer and its target.
void CloseTimer(uv_timer_t* timer) {
  delete static_cast<TimerTarget*>(timer->data);
  timer->data = nullptr;
  uv_timer_stop(timer);
  uv_close(reinterpret_cast<uv_handle_t*>(timer),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
}

}  // namespace

Orchestrator::Orchestrator(uv_loop_t* loop, Registry* registry, History* history, Store* store,
                           StoreWriter* writer, TaskRunner* runner, OrchestratorOptions options,
                           UnixMsClock clock)
    : loop_(loop),
      registry_(registry),
      history_(history),
      store_(store),
      writer_(writer),
      runner_(runner),
      options_(std::move(options)),
      clock_(std::move(clock)),
      resources_(options_.capacity) {
  options_.base_env = WithoutChainVariables(std::move(options_.base_env));
  if (options_.jobs == 0) options_.jobs = 1;
}

Orchestrator::~Orchestrator() {
  for (auto& [n, run] : runs_) {
    for (Run::Task& t : run->tasks) {
      if (t.retry) CloseTimer(t.retry);
    }
    if (run->deadline) CloseTimer(run->deadline);
  }
  if (flush_) {
    uv_close(reinterpret_cast<uv_handle_t*>(flush_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_check_t*>(h); });
  }
  CloseExpiry();
}

std::shared_ptr<const Orchestrator::Plan> Orchestrator::PlanFor(const ChainVersion& version,
                                                                std::string* err) {
  std::string key = PlanKey(version.chain_id, version.version);
  if (auto it = plans_.find(key); it != plans_.end()) return it->second;
  auto plan = std::make_shared<Plan>();
  plan->version = version;
  LoadOptions options;
  options.format = SourceFormat::kJson;
  options.check_executables = false;
  Diagnostics diags;
  std::optional<Chain> chain =
      ParseChain(version.definition.dump(), "chain " + version.chain_id, options, &diags, nullptr);
  if (!chain) {
    *err = "stored chain " + version.chain_id +
           " does not load: " + (diags.empty() ? "" : FormatDiagnostic(diags[0]));
    return nullptr;
  }
  plan->chain = std::move(*chain);
  if (!BuildDag(plan->chain, &plan->dag, err)) return nullptr;
  const json& task_defs = version.definition["tasks"];
  for (size_t i = 0; i < plan->chain.tasks.size(); ++i) {
    const TaskSpec& t = plan->chain.tasks[i];
    for (auto [schema, out] : {std::pair{&t.input_schema, &plan->input_schemas},
                               std::pair{&t.output_schema, &plan->output_schemas}}) {
      out->push_back(AcceptsAnything(*schema) ? nullptr : JsonSchema::Compile(*schema, err));
      if (!AcceptsAnything(*schema) && !out->back()) return nullptr;
    }
    plan->task_versions.push_back(0);
    std::string hash;
    std::vector<TaskVersion> versions;
    if (JsonContentHash(task_defs[i], &hash, err) &&
        registry_->GetTask(t.task_id, &versions, err)) {
      for (const TaskVersion& v : versions) {
        if (v.content_hash == hash) plan->task_versions.back() = v.version;
      }
    }
    plan->rules.push_back(t.trigger_rule);
  }
  if (plans_.size() >= 256) plans_.clear();
  plans_[key] = plan;
  return plan;
}

// The critical path by history: each task weighs its median duration; one history has not seen
// weighs the median of those it has (1 each when it has seen none), so the longest chain of real
// work starts first.
std::vector<double> Orchestrator::Weights(const Plan& plan) const {
  std::vector<std::optional<double>> known(plan.chain.tasks.size());
  std::vector<double> seen;
  for (size_t i = 0; durations_ && i < known.size(); ++i) {
    known[i] = durations_(plan.version.chain_id, plan.chain.tasks[i].task_id);
    if (known[i]) seen.push_back(std::max(*known[i], 1.0));
  }
  double fill = 1.0;
  if (!seen.empty()) {
    std::nth_element(seen.begin(), seen.begin() + static_cast<ptrdiff_t>(seen.size() / 2),
                     seen.end());
    fill = seen[seen.size() / 2];
  }
  std::vector<double> weights;
  weights.reserve(known.size());
  for (const std::optional<double>& d : known) weights.push_back(d ? std::max(*d, 1.0) : fill);
  return weights;
}

std::optional<RunError> Orchestrator::CheckCapacity(const Plan& plan) const {
  for (const TaskSpec& t : plan.chain.tasks) {
    if (std::optional<std::string> why = resources_.NeverFits(t.resource_requirements)) {
      return RunError{422, "over_capacity",
                      "chain " + plan.version.chain_id + ": task " + t.task_id + " " + *why,
                      nullptr};
    }
  }
  return std::nullopt;
}

void Orchestrator::Trigger(const std::string& chain_id, int version, json input,
                           Accepted accepted) {
  auto refuse = [&](int status, std::string code, std::string message, json details = nullptr) {
    accepted(RunError{status, std::move(code), std::move(message), std::move(details)}, "");
  };
  if (stopping_) return refuse(503, "stopping", "chaind is stopping");
  if (writer_->degraded()) return refuse(507, "insufficient_storage", writer_->DegradedMessage());
  std::optional<ChainVersion> chain;
  std::string err;
  if (!registry_->GetChain(chain_id, version, &chain, &err)) {
    return accepted(StoreFailure(err), "");
  }
  if (!chain) {
    return refuse(404, "not_found",
                  version ? "chain " + chain_id + " has no version " + std::to_string(version)
                          : "no chain " + chain_id);
  }
  std::shared_ptr<const Plan> plan = PlanFor(*chain, &err);
  if (!plan) return refuse(500, "bad_chain", err);
  if (std::optional<RunError> misfit = CheckCapacity(*plan)) return accepted(*misfit, "");
  json problems = json::array();
  for (int root : plan->dag.roots) {
    const JsonSchema* schema = plan->input_schemas[Index(root)].get();
    if (!schema || !plan->chain.tasks[Index(root)].input_map.empty()) continue;
    for (const JsonSchema::Violation& v : schema->Validate(input)) {
      problems.push_back({{"task_id", plan->chain.tasks[Index(root)].task_id},
                          {"pointer", v.pointer},
                          {"message", v.message}});
    }
  }
  if (!problems.empty()) {
    const json& p = problems[0];
    return refuse(
        422, "invalid_input",
        "the input does not fit the input_schema of task " + p["task_id"].get<std::string>() +
            ": " +
            (p["pointer"].get<std::string>().empty() ? "(root)" : p["pointer"].get<std::string>()) +
            ": " + p["message"].get<std::string>(),
        problems);
  }
  auto run = std::make_unique<Run>();
  run->n = ++last_run_;
  run->id = RunId(run->n);
  run->plan = plan;
  run->input = std::move(input);
  run->scheduler = std::make_unique<Scheduler>(plan->dag, Weights(*plan), plan->rules);
  run->tasks.resize(plan->chain.tasks.size());
  run->created_ms = clock_();
  run->dir = options_.runs_dir + "/" + run->id;
  if (!MakeDir(run->dir, &err)) return refuse(500, "io_error", err);
  Run& r = *run;
  runs_[r.n] = std::move(run);
  Emit(r, {{"type", "run_started"},
           {"chain_id", chain->chain_id},
           {"chain_version", chain->version},
           {"tasks", plan->chain.tasks.size()}});
  SaveRun(r);
  for (size_t i = 0; i < r.tasks.size(); ++i) SaveTask(r, static_cast<int>(i));
  std::string id = r.id;
  writer_->Sync([accepted, id](bool ok, const std::string& e) {
    if (!ok) return accepted(StoreFailure(e), "");
    accepted(std::nullopt, id);
  });
  PrepareDirs(r);
  ArmDeadline(r);
  Pump(r);
  Dispatch();
}

void Orchestrator::ArmDeadline(Run& run) {
  const std::optional<Duration>& timeout = run.plan->chain.timeout;
  if (!timeout) return;
  run.deadline = new uv_timer_t;
  uv_timer_init(loop_, run.deadline);
  run.deadline->data = new TimerTarget{this, run.n, -1};
  uv_timer_start(
      run.deadline,
      [](uv_timer_t* timer) {
        TimerTarget target = *static_cast<TimerTarget*>(timer->data);
        auto it = target.self->runs_.find(target.n);
        if (it == target.self->runs_.end()) return;
        Run& late = *it->second;
        CloseTimer(timer);
        late.deadline = nullptr;
        late.timed_out = true;
        target.self->StopRun(late);
      },
      static_cast<uint64_t>(timeout->count()), 0);
}

void Orchestrator::PrepareDirs(const Run& run) {
  // Making files is the slowest part of starting a task on some file systems (ext4 looks for
  // a free inode): the folders and files of every task are made ahead, on the thread pool,
  // while earlier tasks run. Launch makes what is not there yet itself (mkdir and open are
  // fine with what exists), so this only ever saves time.
  std::vector<std::string> dirs;
  for (const TaskSpec& spec : run.plan->chain.tasks) dirs.push_back(run.dir + "/" + spec.task_id);
  QueueWork(
      loop_,
      [dirs = std::move(dirs)] {
        std::string ignored;
        for (const std::string& dir : dirs) {
          if (!MakeDir(dir, &ignored) || !MakeDir(dir + "/work", &ignored) ||
              !MakeDir(dir + "/out", &ignored)) {
            return;  // Launch will say what is wrong
          }
          for (const char* file : {"/input.json", "/attempt-1.log"}) {
            int fd = open((dir + file).c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
            if (fd >= 0) close(fd);
          }
        }
      },
      [] {});
}

void Orchestrator::Pump(Run& run) {
  for (int task : run.scheduler->TakeReady()) {
    const TaskSpec& spec = run.spec(task);
    std::string why;
    if (!spec.when.empty() && !ConditionsHold(spec.when, ConditionContext(run, task), &why)) {
      FinishTask(run, task, TaskState::kSkipped, "when: " + why);
      continue;
    }
    queue_.insert({run.scheduler->Priority(task), ++queue_seq_, run.n, task});
  }
}

json Orchestrator::ConditionContext(Run& run, int task) {
  json context = {{"trigger", run.input}};
  for (const std::string& dep : run.spec(task).dependencies) {
    context[dep] = run.task(run.plan->chain.FindTask(dep)).output.value_or(nullptr);
  }
  return context;
}

void Orchestrator::Dispatch() {
  while (running_ < options_.jobs && !queue_.empty()) {
    Queued next = *queue_.begin();
    auto it = runs_.find(next.run);
    Run* run = it == runs_.end() || it->second->ended ? nullptr : it->second.get();
    TaskState state = run ? run->scheduler->state(next.task) : TaskState::kCancelled;
    if (state != TaskState::kReady && state != TaskState::kRunning) {
      queue_.erase(queue_.begin());
      continue;
    }
    // Something running holds what is missing (Trigger refused what never fits): its end
    // calls Dispatch again.
    if (!resources_.Fits(run->spec(next.task).resource_requirements)) break;
    queue_.erase(queue_.begin());
    Launch(*run, next.task);
  }
}

void Orchestrator::Launch(Run& run, int i) {
  Run::Task& t = run.task(i);
  int attempt = ++t.attempts;
  std::string err;
  bool first = run.scheduler->state(i) == TaskState::kReady;  // of this go (Resume: a new go)
  if (first) {
    run.scheduler->Started(i);
    t.first_attempt = attempt;
    t.started_ms = clock_();
    t.error.clear();
    t.input_ready = false;
    if (run.spec(i).executable_code_location.rfind("cas:", 0) == 0) {
      return FinishTask(run, i, TaskState::kFailed,
                        "cas: executables are not supported by this chaind yet");
    }
  }
  // The input is the same for every attempt: made once per go, the task's stdin read from its
  // file. Short of descriptors, it is made again at the retry.
  bool prepare = !t.input_ready;
  if (prepare) {
    int error_number = 0;
    if (!PrepareInput(run, i, &err, &error_number)) {
      if (IsResourceShortage(error_number) && RetryShortOfResources(run, i, err)) return;
      return FinishTask(run, i, TaskState::kFailed, err);
    }
    t.input_ready = true;
  }
  TaskLaunch launch = MakeLaunch(run, i, attempt);
  if (attempt > 1) unlink(launch.output_file.c_str());
  Emit(run, {{"type", "task_started"}, {"task_id", run.spec(i).task_id}, {"attempt", attempt}});
  SaveTask(run, i);
  if (first) SaveRun(run);  // task_states
  ++running_;
  // Held for this attempt only: released when it ends, before OnResult (a retry waits its
  // backoff holding nothing).
  Grant grant = resources_.Acquire(run.spec(i).resource_requirements);
  if (!options_.capacity.gpus.empty()) SetGpuEnv(grant, &launch.env);
  if (prepare && !run.spec(i).input_files.empty() && prefetcher_) {
    StageInputs(run, i, attempt, grant, std::move(launch));
  } else {
    StartAttempt(run, i, attempt, grant, std::move(launch));
  }
  if (first && prefetcher_)
    prefetcher_->TaskStarted(run.id, run.plan->version.chain_id, run.chain(), i);
}

void Orchestrator::StartAttempt(Run& run, int i, int attempt, Grant grant, TaskLaunch launch) {
  const TaskSpec& spec = run.spec(i);
  Run::Task& t = run.task(i);
  uint64_t n = run.n;
  auto done = [this, n, i, attempt, grant](TaskResult result) {
    resources_.Release(grant);
    OnResult(n, i, attempt, std::move(result));
  };
  const std::string& chain_id = run.plan->version.chain_id;
  if (spec.mode == TaskMode::kWorker && workers_) {
    std::string key = prefetcher_ ? prefetcher_->WorkerKey(chain_id, run.chain(), i)
                                  : chain_id + "/" + spec.task_id + "@" +
                                        std::to_string(run.plan->task_versions[Index(i)]);
    json request = {{"input", t.input},
                    {"task_id", spec.task_id},
                    {"run_id", run.id},
                    {"workdir", launch.workdir}};
    // A worker serves many runs: it starts without anything run-specific (WorkerLaunch); the
    // request carries the run's part.
    TaskLaunch worker = WorkerLaunch(chain_id, spec);
    worker.timeout_ms = launch.timeout_ms;
    Prefetcher* prefetcher = prefetcher_;
    t.worker_request = workers_->Run(
        key, worker, std::move(request),
        [prefetcher, key, done = std::move(done)](TaskResult result) mutable {
          if (prefetcher) {
            prefetcher->WorkerServed(
                key, result.cold, static_cast<double>(result.end_unix_ms - result.start_unix_ms));
          }
          done(std::move(result));
        });
    return;
  }
  if (spec.prewarm == PrewarmLevel::kSpawn) {
    std::string context_file;
    if (prefetcher_)
      launch.warm = prefetcher_->TakeProcess(chain_id, run.chain(), i, &context_file);
    WriteContext(run, i, attempt,
                 launch.warm ? context_file : run.dir + "/" + spec.task_id + "/context.json");
  }
  t.handle = runner_->Start(std::move(launch), std::move(done));
  t.process = runner_->Locate(t.handle);
}

// inputs.files into work/inputs/files/ on the thread pool (the prefetcher's staged copy if it
// is still fresh), then the attempt. A failure to stage fails the attempt like a failed spawn.
void Orchestrator::StageInputs(Run& run, int i, int attempt, Grant grant, TaskLaunch launch) {
  Run::Task& t = run.task(i);
  t.staging = true;
  t.stop_staging = std::make_shared<std::atomic<bool>>(false);
  uint64_t n = run.n;
  std::string dest = launch.workdir + "/inputs/files";
  prefetcher_->StageInputs(
      run.plan->version.chain_id, run.chain(), i, dest,
      [stop = t.stop_staging] { return stop->load(); },
      [this, n, i, attempt, grant, launch = std::move(launch)](StageResult staged) mutable {
        auto it = runs_.find(n);
        Run* live = it == runs_.end() ? nullptr : it->second.get();
        if (live) live->task(i).staging = false;
        if (live && !staged.ok) live->task(i).input_ready = false;  // a retry stages again
        bool stopped = !live || live->cancelled || live->timed_out || stopping_;
        if (!stopped && staged.ok) {
          live->task(i).bytes_staged = staged.bytes;
          return StartAttempt(*live, i, attempt, grant, std::move(launch));
        }
        TaskResult result;
        result.start_unix_ms = result.end_unix_ms = clock_();
        result.kind = stopped ? TaskResult::Kind::kCancelled : TaskResult::Kind::kSpawnFailed;
        result.error = stopped ? "cancelled" : "inputs.files: " + staged.error;
        resources_.Release(grant);
        OnResult(n, i, attempt, std::move(result));
      });
}

// The run's context of a task's attempt, for a prewarmed process (DESIGN.md §5): written before
// its input, so it is there once the task has read its stdin.
void Orchestrator::WriteContext(const Run& run, int i, int attempt, const std::string& path) const {
  const std::string dir = run.dir + "/" + run.spec(i).task_id;
  json context = {{"run_id", run.id},
                  {"chain_id", run.plan->version.chain_id},
                  {"task_id", run.spec(i).task_id},
                  {"attempt", attempt},
                  {"workdir", dir + "/work"},
                  {"outdir", dir + "/out"},
                  {"input_file", dir + "/input.json"},
                  {"output_file", dir + "/output.json"}};
  std::string err;
  if (!WriteFile(path, DumpJson(context) + "\n", &err)) {
    Log(LogLevel::kWarning, "cannot write the context file: " + err);
  }
}

std::shared_ptr<const Chain> Orchestrator::LatestChain(const std::string& chain_id) {
  std::optional<ChainVersion> chain;
  std::string err;
  if (!registry_->GetChain(chain_id, 0, &chain, &err) || !chain) return nullptr;
  std::shared_ptr<const Plan> plan = PlanFor(*chain, &err);
  if (!plan) return nullptr;
  return std::shared_ptr<const Chain>(plan, &plan->chain);
}

TaskLaunch Orchestrator::WorkerLaunch(const std::string& chain_id, const TaskSpec& spec) const {
  std::string dir = options_.runs_dir + "/workers";
  std::string err;
  if (!MakeDir(dir, &err)) Log(LogLevel::kWarning, err);
  TaskLaunch launch = WarmLaunch(spec, dir);
  launch.log_path = dir + "/" + chain_id + "." + spec.task_id + ".log";
  return launch;
}

TaskLaunch Orchestrator::WarmLaunch(const TaskSpec& spec, const std::string& dir) const {
  TaskLaunch launch;
  launch.task_id = spec.task_id;
  launch.argv = TaskArgv(spec);
  launch.env = TaskEnv(options_.base_env, spec);
  launch.workdir = dir;
  launch.log_path = dir + "/stderr.log";
  for (auto [name, value] :
       {std::pair{"CHAIN_TASK_ID=", spec.task_id}, std::pair{"CHAIN_WORKDIR=", dir},
        std::pair{"CHAIN_CONTEXT_FILE=", dir + "/context.json"},
        std::pair{"CHAIN_PREWARMED=", std::string("1")}}) {
    launch.env.push_back(name + value);
  }
  launch.max_output_bytes = spec.resource_requirements.max_output_bytes;
  launch.max_log_bytes = options_.max_log_bytes;
  launch.kill_grace_ms = options_.kill_grace_ms;
  SetLimits(spec.resource_requirements, &launch);
  return launch;
}

bool Orchestrator::PrepareInput(Run& run, int i, std::string* err, int* error_number) {
  const TaskSpec& spec = run.spec(i);
  std::vector<std::optional<json>> dep_outputs;
  for (const std::string& dep : spec.dependencies) {
    dep_outputs.push_back(run.task(run.plan->chain.FindTask(dep)).output);
  }
  json& input = run.task(i).input;
  if (!BuildTaskInput(spec, run.input, dep_outputs, &input, err)) return false;
  if (const JsonSchema* schema = run.plan->input_schemas[Index(i)].get()) {
    std::vector<JsonSchema::Violation> violations = schema->Validate(input);
    if (!violations.empty()) {
      *err = "input_schema: " + DescribeViolations(violations);
      return false;
    }
  }
  const std::string dir = run.dir + "/" + spec.task_id;
  if (!MakeDir(dir, err) || !MakeDir(dir + "/work", err) || !MakeDir(dir + "/out", err) ||
      !WriteFile(dir + "/input.json", DumpJson(input), err, error_number)) {
    return false;
  }
  for (const std::string& dep : spec.dependencies) {
    if (!run.task(run.plan->chain.FindTask(dep)).has_files) continue;
    // What an earlier try of this go left (PrepareInput runs again after a shortage or a
    // failed staging) is replaced; a first attempt finds nothing there.
    if (run.task(i).attempts > 1) {
      std::error_code ec;
      std::filesystem::remove_all(dir + "/work/inputs/" + dep, ec);
    }
    if (!MakeDir(dir + "/work/inputs", err) ||
        !LinkTree(run.dir + "/" + dep + "/out", dir + "/work/inputs/" + dep, err, error_number)) {
      return false;
    }
  }
  return true;
}

TaskLaunch Orchestrator::MakeLaunch(const Run& run, int i, int attempt) const {
  const TaskSpec& spec = run.spec(i);
  const std::string dir = run.dir + "/" + spec.task_id;
  TaskLaunch launch;
  launch.run_id = run.id;
  launch.task_id = spec.task_id;
  launch.attempt = attempt;
  launch.argv = TaskArgv(spec);
  launch.env = TaskEnv(options_.base_env, spec);
  launch.workdir = dir + "/work";
  launch.stdin_file = dir + "/input.json";
  launch.output_file = dir + "/output.json";
  launch.log_path = dir + "/attempt-" + std::to_string(attempt) + ".log";
  for (auto [name, value] :
       {std::pair{"CHAIN_TASK_ID=", spec.task_id}, std::pair{"CHAIN_RUN_ID=", run.id},
        std::pair{"CHAIN_WORKDIR=", launch.workdir}, std::pair{"CHAIN_OUTDIR=", dir + "/out"},
        std::pair{"CHAIN_INPUT_FILE=", launch.stdin_file},
        std::pair{"CHAIN_OUTPUT_FILE=", launch.output_file},
        std::pair{"CHAIN_ATTEMPT=", std::to_string(attempt)}}) {
    launch.env.push_back(name + value);
  }
  if (spec.prewarm == PrewarmLevel::kSpawn) {
    launch.env.push_back("CHAIN_CONTEXT_FILE=" + dir + "/context.json");
  }
  launch.max_output_bytes = spec.resource_requirements.max_output_bytes;
  launch.max_log_bytes = options_.max_log_bytes;
  if (spec.resource_requirements.timeout) {
    launch.timeout_ms = static_cast<uint64_t>(spec.resource_requirements.timeout->count());
  }
  launch.kill_grace_ms = options_.kill_grace_ms;
  SetLimits(spec.resource_requirements, &launch);
  return launch;
}

void Orchestrator::OnResult(uint64_t n, int i, int attempt, TaskResult result) {
  --running_;
  auto it = runs_.find(n);
  if (it == runs_.end()) return Dispatch();
  Run& run = *it->second;
  const TaskSpec& spec = run.spec(i);
  Run::Task& t = run.task(i);
  t.handle = 0;
  t.worker_request = 0;
  t.process = nullptr;

  std::string error = result.error;
  json output;
  bool ok = result.ok();
  if (ok) {
    const JsonSchema* schema = run.plan->output_schemas[Index(i)].get();
    ok = ParseTaskOutput(result.output, schema == nullptr, &output, &error);
    if (ok && schema) {
      std::vector<JsonSchema::Violation> violations = schema->Validate(output);
      ok = violations.empty();
      if (!ok) error = "output_schema: " + DescribeViolations(violations);
    }
  }
  bool cancelled = result.kind == TaskResult::Kind::kCancelled;

  HistoryRecord h;
  h.run_id = run.id;
  h.chain_id = run.plan->version.chain_id;
  h.task_id = spec.task_id;
  h.chain_version = run.plan->version.version;
  h.task_version = run.plan->task_versions[Index(i)];
  h.attempt = attempt;
  h.start_unix_ms = result.start_unix_ms;
  h.end_unix_ms = std::max(result.end_unix_ms, result.start_unix_ms);
  h.status = ok ? "succeeded" : cancelled ? "cancelled" : "failed";
  if (!ok) h.cause = result.ok() ? error : CauseOf(result);
  h.cold = result.cold;
  h.startup_ms = result.startup_ms;
  h.cpu_s = result.cpu_s;
  h.max_rss_kb = result.max_rss_kb;
  h.bytes_in = result.bytes_in;
  h.bytes_out = result.bytes_out;
  if (t.bytes_staged) h.bytes_staged = t.bytes_staged;
  if (attempt_recorded_) attempt_recorded_(h);
  History* history = history_;
  writer_->Add([history, h](WriteTxn& txn, std::string* err) {
    std::vector<HistoryRecord> records{h};
    return history->Append(txn, &records, err);
  });

  if (ok) {
    t.has_files = HasEntries(run.dir + "/" + spec.task_id + "/out");
    // output: UTF-8 and not too deep, checked by ParseTaskOutput.
    writer_->Put(Db::kRuns, RunOutputKey(run.n, spec.task_id), EncodeValue(1, output.dump()));
    t.output = std::move(output);
    FinishTask(run, i, TaskState::kSucceeded, "");
  } else if (result.retryable && !cancelled && RetryShortOfResources(run, i, error)) {
    // The spawn found no descriptor, process or memory free (EMFILE, EAGAIN, ...): its record
    // stays.
  } else if (cancelled || run.cancelled || run.timed_out ||
             attempt - t.first_attempt + 1 >= spec.retry.max_attempts) {
    FinishTask(run, i, cancelled ? TaskState::kCancelled : TaskState::kFailed, error);
  } else {
    Retry(run, i, error);
  }
  Dispatch();
}

bool Orchestrator::RetryShortOfResources(Run& run, int i, const std::string& error) {
  Run::Task& t = run.task(i);
  if (run.cancelled || run.timed_out) return false;
  if (running_ == 0 && ++t.short_retries > kMaxShortRetries) return false;
  ++t.first_attempt;  // the next attempt starts the count of retry.max_attempts again
  Retry(run, i, error + " (retried: chaind was short of resources)");
  return true;
}

void Orchestrator::Retry(Run& run, int i, const std::string& error) {
  Run::Task& t = run.task(i);
  uint64_t backoff = BackoffMs(run.spec(i).retry, t.attempts - t.first_attempt + 1, Rng());
  Emit(run, {{"type", "task_retrying"},
             {"task_id", run.spec(i).task_id},
             {"attempt", t.attempts},
             {"error", error},
             {"backoff_ms", backoff}});
  t.error = error;
  SaveTask(run, i);
  t.retry = new uv_timer_t;
  uv_timer_init(loop_, t.retry);
  t.retry->data = new TimerTarget{this, run.n, i};
  uv_timer_start(
      t.retry,
      [](uv_timer_t* timer) {
        TimerTarget target = *static_cast<TimerTarget*>(timer->data);
        CloseTimer(timer);
        auto it = target.self->runs_.find(target.n);
        if (it == target.self->runs_.end()) return;
        Run& waiting = *it->second;
        waiting.task(target.task).retry = nullptr;
        target.self->queue_.insert({waiting.scheduler->Priority(target.task),
                                    ++target.self->queue_seq_, waiting.n, target.task});
        target.self->Dispatch();
      },
      backoff, 0);
}

void Orchestrator::FinishTask(Run& run, int i, TaskState state, const std::string& error) {
  Run::Task& t = run.task(i);
  if (t.retry) {
    CloseTimer(t.retry);
    t.retry = nullptr;
  }
  t.ended_ms = clock_();
  t.error = error;
  run.scheduler->Finished(i, state);
  json event = {
      {"type", "task_finished"}, {"task_id", run.spec(i).task_id}, {"state", ToString(state)}};
  if (t.attempts > 0) {
    event["attempt"] = t.attempts;
    event["duration_ms"] = t.ended_ms - t.started_ms;
  }
  if (!error.empty()) event["error"] = error;
  Emit(run, std::move(event));
  std::vector<int> decided = run.scheduler->decided();
  for (int d : decided) {
    run.task(d).ended_ms = t.ended_ms;
    Emit(run, {{"type", "task_finished"},
               {"task_id", run.spec(d).task_id},
               {"state", ToString(run.scheduler->state(d))}});
  }
  SaveTask(run, i);
  for (int d : decided) SaveTask(run, d);
  SaveRun(run);
  Pump(run);
  MaybeFinishRun(run);
}

void Orchestrator::MaybeFinishRun(Run& run) {
  if (run.ended || !run.scheduler->Done()) return;
  run.ended = true;
  run.ended_ms = clock_();
  if (run.deadline) {
    CloseTimer(run.deadline);
    run.deadline = nullptr;
  }
  const Plan& plan = *run.plan;
  if (stopping_) {
    run.status = "interrupted";
    run.error = "chaind stopped while the run was running";
  } else if (run.timed_out) {
    run.status = "failed";
    run.error = "the run went over its timeout of " + FormatDuration(*plan.chain.timeout) +
                " (the chain's timeout)";
  } else if (run.cancelled) {
    run.status = "cancelled";
    run.error = "cancelled";
  } else if (run.scheduler->Succeeded()) {
    run.status = "succeeded";
  } else {
    run.status = "failed";
    for (size_t i = 0; i < run.tasks.size(); ++i) {
      if (run.scheduler->state(static_cast<int>(i)) == TaskState::kFailed) {
        run.error = "task " + plan.chain.tasks[i].task_id + " failed: " + run.tasks[i].error;
        break;
      }
    }
  }
  json event = {{"type", "run_finished"},
                {"status", run.status},
                {"duration_ms", run.ended_ms - run.created_ms}};
  if (!run.error.empty()) event["error"] = run.error;
  if (run.status == "succeeded") event["output"] = RunSummary(run)["output"];
  run.end_event = run.events.size();
  Emit(run, std::move(event));
  SaveRun(run);
  SendEvents(run);
  if (prefetcher_ && !stopping_) {
    prefetcher_->RunEnded(run.id, plan.version.chain_id, run.created_ms);
  }
  uint64_t n = run.n;
  // The end is acknowledged once stored (a failing store retries until it is); `ok` is false
  // only when chaind stops while the store fails: then the end is never told.
  writer_->Sync([this, n](bool ok, const std::string&) {
    Run& stored = *runs_.at(n);
    stored.end_stored = ok;
    if (ok) SendEvents(stored);
    std::map<uint64_t, Follower> followers;
    followers.swap(stored.followers);
    for (auto& [id, follower] : followers) follower.end();
    int64_t ended_ms = stored.ended_ms;
    runs_.erase(n);
    RunDirEnded(n);
    RunRecordEnded(n, ended_ms);
    if (runs_.empty() && idle_) idle_();
    if (stopping_ && runs_.empty() && stopped_) {
      auto done = std::move(stopped_);
      stopped_ = nullptr;
      writer_->WhenIdle(std::move(done));
    }
  });
}

void Orchestrator::Emit(Run& run, json event) {
  json line = {{"seq", run.events.size() + 1}, {"time_unix_ms", clock_()}, {"run_id", run.id}};
  line.update(event);
  std::string text = DumpJson(line);
  writer_->Put(Db::kRuns, RunEventKey(run.n, static_cast<uint32_t>(run.events.size() + 1)),
               EncodeValue(1, text));
  run.events.push_back(std::move(text));
  if (run.followers.empty()) {
    run.sent = run.Shown();
    return;
  }
  // Followers get the events of one loop turn in one write (FlushEvents).
  unsent_.insert(run.n);
  if (!flush_) {
    flush_ = new uv_check_t;
    uv_check_init(loop_, flush_);
    flush_->data = this;
    uv_check_start(
        flush_, [](uv_check_t* check) { static_cast<Orchestrator*>(check->data)->FlushEvents(); });
  }
}

void Orchestrator::FlushEvents() {
  std::set<uint64_t> runs;
  runs.swap(unsent_);
  for (uint64_t n : runs) {
    auto it = runs_.find(n);
    if (it != runs_.end()) SendEvents(*it->second);
  }
  if (unsent_.empty() && flush_) {
    uv_close(reinterpret_cast<uv_handle_t*>(flush_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_check_t*>(h); });
    flush_ = nullptr;
  }
}

void Orchestrator::SendEvents(Run& run) {
  size_t shown = run.Shown();
  if (run.sent >= shown) return;
  std::string lines;
  for (size_t i = run.sent; i < shown; ++i) lines += run.events[i] + "\n";
  run.sent = shown;
  std::vector<uint64_t> ids;
  for (const auto& [id, follower] : run.followers) ids.push_back(id);
  for (uint64_t id : ids) {
    auto it = run.followers.find(id);
    if (it != run.followers.end()) it->second.events(lines);
  }
}

void Orchestrator::SaveRun(Run& run) {
  uint64_t n = run.n;
  writer_->PutLater(Db::kRuns, RunKey(n), [this, n]() -> std::optional<std::string> {
    auto it = runs_.find(n);
    if (it == runs_.end()) return std::nullopt;
    return EncodeValue(1, DumpJson(RunSummary(*it->second)));
  });
}

void Orchestrator::SaveTask(Run& run, int task) {
  uint64_t n = run.n;
  writer_->PutLater(Db::kRuns, RunTaskKey(n, run.spec(task).task_id),
                    [this, n, task]() -> std::optional<std::string> {
                      auto it = runs_.find(n);
                      if (it == runs_.end()) return std::nullopt;
                      // error: may quote what a task printed.
                      return EncodeValue(1, DumpJson(TaskRecord(*it->second, task)));
                    });
}

json Orchestrator::TaskRecord(const Run& run, int i) const {
  const Run::Task& t = run.tasks[Index(i)];
  json task = {{"task_id", run.spec(i).task_id},
               {"index", i},
               {"state", ToString(run.scheduler->state(i))},
               {"attempts", t.attempts}};
  if (t.started_ms) task["started_unix_ms"] = t.started_ms;
  if (t.ended_ms) task["ended_unix_ms"] = t.ended_ms;
  if (!t.error.empty()) task["error"] = t.error;
  if (!t.process.is_null()) task["process"] = t.process;
  return task;
}

json Orchestrator::RunSummary(const Run& run) const {
  const Plan& plan = *run.plan;
  json record = {{"run_id", run.id},
                 {"chain_id", plan.version.chain_id},
                 {"chain_version", plan.version.version},
                 {"status", run.status},
                 {"input", run.input},
                 {"created_unix_ms", run.created_ms}};
  std::map<std::string, int> counts;
  for (TaskState state : run.scheduler->states()) ++counts[ToString(state)];
  record["task_states"] = counts;
  if (run.ended) record["ended_unix_ms"] = run.ended_ms;
  if (!run.error.empty()) record["error"] = run.error;
  if (run.resumes) record["resumed"] = run.resumes;
  if (run.status == "succeeded") {
    const std::vector<int>& leaves = plan.dag.leaves;
    auto output_of = [&](int leaf) { return run.tasks[Index(leaf)].output.value_or(nullptr); };
    if (leaves.size() == 1) {
      record["output"] = output_of(leaves[0]);
    } else {
      json output = json::object();
      for (int leaf : leaves) output[plan.chain.tasks[Index(leaf)].task_id] = output_of(leaf);
      record["output"] = std::move(output);
    }
  }
  return record;
}

json Orchestrator::RunRecord(const Run& run) const {
  json record = RunSummary(run);
  json tasks = json::array();
  for (size_t i = 0; i < run.tasks.size(); ++i) {
    tasks.push_back(TaskRecord(run, static_cast<int>(i)));
    tasks.back().erase("index");
  }
  record["tasks"] = std::move(tasks);
  return record;
}

json Orchestrator::ShownRecord(const Run& run, json record) const {
  if (!run.ended || run.end_stored) return record;
  record["status"] = "running";
  record["ending"] = true;
  for (const char* key : {"ended_unix_ms", "error", "output"}) record.erase(key);
  return record;
}

Orchestrator::Run* Orchestrator::Active(std::string_view run_id) {
  std::optional<uint64_t> n = ParseRunId(run_id);
  if (!n) return nullptr;
  auto it = runs_.find(*n);
  return it == runs_.end() ? nullptr : it->second.get();
}

bool Orchestrator::GetRun(std::string_view run_id, std::optional<json>* run, std::string* err) {
  run->reset();
  if (Run* active = Active(run_id)) {
    *run = ShownRecord(*active, RunRecord(*active));
    return true;
  }
  std::optional<uint64_t> n = ParseRunId(run_id);
  if (!n) return true;
  return store_->Read(
      [&](ReadTxn& txn, std::string* e) {
        std::vector<json> tasks;
        if (!GetRecord(txn, RunKey(*n), run_id, run, e)) return false;
        if (!*run) return true;
        if (!ReadTaskRecords(txn, *n, &tasks, e)) return false;
        for (json& task : tasks) task.erase("index");
        (**run)["tasks"] = std::move(tasks);
        return true;
      },
      err);
}

bool Orchestrator::ListRuns(const std::string& chain_id, size_t limit, std::vector<json>* runs,
                            std::string* err) {
  std::map<uint64_t, json, std::greater<>> found;
  for (const auto& [n, run] : runs_) {
    if (chain_id.empty() || run->plan->version.chain_id == chain_id) {
      found[n] = ShownRecord(*run, RunSummary(*run));
    }
  }
  bool ok = store_->Read(
      [&](ReadTxn& txn, std::string* e) {
        size_t seen = 0;
        return txn.Scan(
            Db::kRuns, "r", true,
            [&](std::string_view key, std::string_view value) {
              uint64_t n = RunNumberOfKey(key);
              if (n == 0 || found.count(n)) return true;
              json record;
              std::string decode_err;
              if (!DecodeRecord(value, "run record", &record, &decode_err)) return true;
              if (!chain_id.empty() && record.value("chain_id", "") != chain_id) return true;
              found[n] = std::move(record);
              return ++seen < limit;
            },
            e);
      },
      err);
  if (!ok) return false;
  for (auto& [n, record] : found) {
    if (runs->size() >= limit) break;
    runs->push_back(std::move(record));
  }
  return true;
}

bool Orchestrator::GetOutput(std::string_view run_id, std::string_view task_id,
                             std::optional<json>* output, std::string* err) {
  output->reset();
  if (Run* run = Active(run_id)) {
    int i = run->plan->chain.FindTask(task_id);
    if (i >= 0) *output = run->task(i).output;
    return true;
  }
  std::optional<uint64_t> n = ParseRunId(run_id);
  if (!n) return true;
  return store_->Read(
      [&](ReadTxn& txn, std::string* e) {
        return GetRecord(txn, RunOutputKey(*n, task_id), "output", output, e);
      },
      err);
}

std::optional<RunError> Orchestrator::Follow(std::string_view run_id, bool follow,
                                             Follower follower, uint64_t* id) {
  *id = 0;
  if (Run* run = Active(run_id)) {
    SendEvents(*run);  // the followers before this one get what they have not had yet
    std::string lines;
    for (size_t i = 0; i < run->Shown(); ++i) lines += run->events[i] + "\n";
    if (!lines.empty()) follower.events(lines);
    if (!follow || run->end_stored) {
      follower.end();
      return std::nullopt;
    }
    *id = next_follower_++;
    run->followers[*id] = std::move(follower);
    return std::nullopt;
  }
  std::optional<uint64_t> n = ParseRunId(run_id);
  std::vector<std::string> lines;
  bool exists = false;
  std::string err;
  bool ok = n && store_->Read(
                     [&](ReadTxn& txn, std::string* e) {
                       std::string value;
                       return txn.Get(Db::kRuns, RunKey(*n), &value, &exists, e) &&
                              ReadEvents(txn, *n, &lines, e);
                     },
                     &err);
  if (n && !ok) return StoreFailure(err);
  if (!exists) return NoRun(run_id);
  std::string text;
  for (const std::string& line : lines) text += line + "\n";
  if (!text.empty()) follower.events(text);
  follower.end();
  return std::nullopt;
}

void Orchestrator::Unfollow(std::string_view run_id, uint64_t id) {
  if (Run* run = Active(run_id)) run->followers.erase(id);
}

std::optional<RunError> Orchestrator::Cancel(std::string_view run_id) {
  Run* run = Active(run_id);
  if (run && run->ended && !run->end_stored) {
    return RunError{409, "run_ending",
                    std::string(run_id) + " has ended and its end is being stored", nullptr};
  }
  if (!run || run->ended) {
    std::optional<json> record;
    std::string err;
    if (!GetRun(run_id, &record, &err)) {
      return StoreFailure(err);
    }
    if (!record) return NoRun(run_id);
    return RunError{
        409, "run_ended",
        std::string(run_id) + " has already ended: " + (*record)["status"].get<std::string>(),
        nullptr};
  }
  run->cancelled = true;
  StopRun(*run);
  return std::nullopt;
}

void Orchestrator::StopRun(Run& run) {
  std::vector<int> cancelled = run.scheduler->CancelPending();
  for (int task : cancelled) {
    run.task(task).ended_ms = clock_();
    Emit(run,
         {{"type", "task_finished"}, {"task_id", run.spec(task).task_id}, {"state", "cancelled"}});
  }
  for (size_t i = 0; i < run.tasks.size(); ++i) {
    Run::Task& t = run.tasks[i];
    if (t.handle) runner_->Cancel(t.handle);
    if (t.worker_request && workers_) workers_->Cancel(t.worker_request);
    if (t.staging && t.stop_staging) t.stop_staging->store(true);  // its copy gives up
    if (t.retry) FinishTask(run, static_cast<int>(i), TaskState::kCancelled, "cancelled");
  }
  for (int task : cancelled) SaveTask(run, task);
  SaveRun(run);
  MaybeFinishRun(run);
}

std::optional<RunError> Orchestrator::LogPath(std::string_view run_id, std::string_view task_id,
                                              int attempt, std::string* path) {
  std::optional<json> record;
  std::string err;
  if (!GetRun(run_id, &record, &err)) {
    return StoreFailure(err);
  }
  if (!record) return NoRun(run_id);
  for (const json& task : (*record)["tasks"]) {
    if (task.value("task_id", "") != task_id) continue;
    int attempts = task.value("attempts", 0);
    if (attempts == 0) {
      return RunError{404, "not_started",
                      "task " + std::string(task_id) + " of " + std::string(run_id) +
                          " never started (" + task.value("state", "") + ")",
                      nullptr};
    }
    if (attempt == 0) attempt = attempts;
    if (attempt < 1 || attempt > attempts) {
      return RunError{
          404, "not_found",
          "task " + std::string(task_id) + " has attempts 1 to " + std::to_string(attempts),
          nullptr};
    }
    *path = options_.runs_dir + "/" + std::string(run_id) + "/" + std::string(task_id) +
            "/attempt-" + std::to_string(attempt) + ".log";
    return std::nullopt;
  }
  return RunError{404, "not_found", std::string(run_id) + " has no task " + std::string(task_id),
                  nullptr};
}

void Orchestrator::Shutdown(std::function<void()> done) {
  stopping_ = true;
  CloseExpiry();
  if (runs_.empty()) return writer_->WhenIdle(std::move(done));
  stopped_ = std::move(done);
  std::vector<uint64_t> active;
  for (const auto& [n, run] : runs_) {
    if (!run->ended) active.push_back(n);
  }
  for (uint64_t n : active) Cancel(RunId(n));
}

}  // namespace chainctl::daemon
