// From the ready queue to a started attempt (orchestrator.h): Pump queues what the scheduler
// made ready (a `when` that is false skips it), Dispatch starts the first in line within --jobs
// and the capacity, Launch prepares the task's input and folders once per go, then
// StartAttempt hands the launch (argv, environment, limits, files) to the TaskRunner or a
// worker, after StageInputs for a task with inputs.files.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "common/chain/condition.h"
#include "common/json_text.h"
#include "daemon/exec/process_spawn.h"
#include "daemon/exec/worker_pool.h"
#include "daemon/prefetch/prefetcher.h"
#include "daemon/run/orchestrator.h"
#include "daemon/run/orchestrator_internal.h"
#include "daemon/run/task_io.h"
#include "daemon/util/log.h"
#include "daemon/util/work_queue.h"

namespace chainctl::daemon {

using nlohmann::json;
using orchestrator_detail::MakeDir;

namespace {

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

// chaind's environment (`base`, without CHAIN_*), less what the task's `env` sets and PWD
// (chaind's own folder is not the task's), then the task's `env` (with the run's values: the
// run's definition holds them), then where the task runs: CHAIN_SOURCE_DIR and PWD for a task
// of a chain with a source_dir (DESIGN.md §3).
std::vector<std::string> TaskEnv(const std::vector<std::string>& base, const TaskSpec& spec) {
  std::vector<std::string> env;
  env.reserve(base.size() + spec.env.size() + 10);
  for (const std::string& v : base) {
    std::string name = v.substr(0, v.find('='));
    if (name == "PWD" || (!spec.env.empty() && spec.env.count(name))) continue;
    env.push_back(v);
  }
  for (const auto& [name, value] : spec.env) env.push_back(name + "=" + value);
  if (!spec.cwd.empty()) {
    env.push_back("CHAIN_SOURCE_DIR=" + spec.source_dir);
    env.push_back("PWD=" + spec.cwd);
  }
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

}  // namespace

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
  if (!t.cache_looked_up && run.scheduler->state(i) == TaskState::kReady && run.spec(i).Cached()) {
    return LookUpCache(run, i);
  }
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
                                        std::to_string(run.plan->task_versions[Run::Index(i)]);
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
  launch.cwd = spec.cwd;
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
  if (const JsonSchema* schema = run.plan->input_schemas[Run::Index(i)].get()) {
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
  launch.cwd = spec.cwd;
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

}  // namespace chainctl::daemon
