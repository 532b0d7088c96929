// The run lifecycle (orchestrator.h): construction, the plans of chain versions, Trigger, the
// chain's deadline, Cancel and Shutdown. The rest of the class, by what it does:
// orchestrator_launch.cc (from the ready queue to a started attempt), orchestrator_results.cc
// (an attempt's result, retries, the ends of tasks and runs), orchestrator_events.cc (events,
// records, followers and the read side), orchestrator_recovery.cc (Open after a crash, Resume)
// and orchestrator_retention.cc (what is kept of ended runs).
#include "daemon/run/orchestrator.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/chain/load.h"
#include "daemon/exec/worker_pool.h"
#include "daemon/run/orchestrator_internal.h"
#include "daemon/run/task_io.h"
#include "daemon/store/run_keys.h"
#include "daemon/util/content_hash.h"

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

void CloseTimer(uv_timer_t* timer) {
  delete static_cast<TimerTarget*>(timer->data);
  timer->data = nullptr;
  uv_timer_stop(timer);
  uv_close(reinterpret_cast<uv_handle_t*>(timer),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
}

}  // namespace orchestrator_detail

using orchestrator_detail::CloseTimer;
using orchestrator_detail::MakeDir;
using orchestrator_detail::StoreFailure;
using orchestrator_detail::TimerTarget;

namespace {

std::string PlanKey(const std::string& chain_id, int version) {
  return chain_id + '\0' + std::to_string(version);
}

// The environment every task starts from: `base` without CHAIN_* variables (a daemon started
// from inside a task must not hand that task's CHAIN_RUN_ID to others).
std::vector<std::string> WithoutChainVariables(std::vector<std::string> base) {
  std::erase_if(base, [](const std::string& v) { return v.rfind("CHAIN_", 0) == 0; });
  return base;
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

std::optional<RunError> Orchestrator::RunnablePlan(const ChainVersion& version,
                                                   std::shared_ptr<const Plan>* plan) {
  std::string err;
  *plan = PlanFor(version, &err);
  if (!*plan) return RunError{500, "bad_chain", err, nullptr};
  return CheckCapacity(**plan);
}

std::shared_ptr<const Chain> Orchestrator::LatestChain(const std::string& chain_id) {
  std::optional<ChainVersion> chain;
  std::string err;
  if (!registry_->GetChain(chain_id, 0, &chain, &err) || !chain) return nullptr;
  std::shared_ptr<const Plan> plan = PlanFor(*chain, &err);
  if (!plan) return nullptr;
  return std::shared_ptr<const Chain>(plan, &plan->chain);
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

std::optional<RunError> Orchestrator::Unavailable() const {
  if (stopping_) return RunError{503, "stopping", "chaind is stopping", nullptr};
  if (writer_->degraded()) {
    return RunError{507, "insufficient_storage", writer_->DegradedMessage(), nullptr};
  }
  return std::nullopt;
}

void Orchestrator::Trigger(const std::string& chain_id, int version, json input, Accepted accepted,
                           RunParams params) {
  if (std::optional<RunError> refusal = Unavailable()) return accepted(refusal, "");
  std::optional<ChainVersion> chain;
  std::string err;
  if (!registry_->GetChain(chain_id, version, &chain, &err)) {
    return accepted(StoreFailure(err), "");
  }
  if (!chain) {
    return accepted(
        RunError{404, "not_found",
                 version ? "chain " + chain_id + " has no version " + std::to_string(version)
                         : "no chain " + chain_id,
                 nullptr},
        "");
  }
  std::shared_ptr<const Plan> plan;
  if (std::optional<RunError> refusal = RunnablePlan(*chain, &plan)) return accepted(refusal, "");
  if (std::optional<RunError> refusal = CheckInput(*plan, input)) return accepted(refusal, "");
  std::shared_ptr<const Chain> definition(plan, &plan->chain);
  std::vector<int> targets;
  if (std::optional<RunError> refusal = RunEnvironment(*plan, params.env, &definition)) {
    return accepted(refusal, "");
  }
  if (std::optional<RunError> refusal = SelectTasks(*plan, params.tasks, &targets)) {
    return accepted(refusal, "");
  }
  Run* run = NewRun(plan, std::move(input), &err);
  if (!run) return accepted(RunError{500, "io_error", err, nullptr}, "");
  run->definition = std::move(definition);
  for (const auto& [name, value] : params.env) run->env_names.push_back(name);
  run->targets = std::move(targets);
  run->no_cache = params.no_cache;
  json started = {{"type", "run_started"},
                  {"chain_id", chain->chain_id},
                  {"chain_version", chain->version},
                  {"tasks", plan->chain.tasks.size()}};
  if (!run->targets.empty()) {
    started["tasks"] = ApplySelection(*run);
    started["selected"] = run->TargetIds();
  }
  Emit(*run, std::move(started));
  StartRun(*run, std::move(accepted));
  Dispatch();
}

std::optional<RunError> Orchestrator::CheckInput(const Plan& plan, const json& input) const {
  json problems = json::array();
  for (int root : plan.dag.roots) {
    const JsonSchema* schema = plan.input_schemas[Run::Index(root)].get();
    if (!schema || !plan.chain.tasks[Run::Index(root)].input_map.empty()) continue;
    for (const JsonSchema::Violation& v : schema->Validate(input)) {
      problems.push_back({{"task_id", plan.chain.tasks[Run::Index(root)].task_id},
                          {"pointer", v.pointer},
                          {"message", v.message}});
    }
  }
  if (problems.empty()) return std::nullopt;
  const json& p = problems[0];
  return RunError{
      422, "invalid_input",
      "the input does not fit the input_schema of task " + p["task_id"].get<std::string>() + ": " +
          (p["pointer"].get<std::string>().empty() ? "(root)" : p["pointer"].get<std::string>()) +
          ": " + p["message"].get<std::string>(),
      problems};
}

Orchestrator::Run* Orchestrator::NewRun(std::shared_ptr<const Plan> plan, json input,
                                        std::string* err) {
  auto run = std::make_unique<Run>();
  run->n = ++last_run_;
  run->id = RunId(run->n);
  run->plan = plan;
  run->definition = std::shared_ptr<const Chain>(plan, &plan->chain);
  run->input = std::move(input);
  run->scheduler = std::make_unique<Scheduler>(plan->dag, Weights(*plan), plan->rules);
  run->tasks.resize(plan->chain.tasks.size());
  run->created_ms = clock_();
  run->dir = options_.runs_dir + "/" + run->id;
  if (!MakeDir(run->dir, err)) return nullptr;
  Run& r = *run;
  runs_[r.n] = std::move(run);
  return &r;
}

void Orchestrator::StartRun(Run& run, Accepted accepted) {
  SaveRun(run);
  for (size_t i = 0; i < run.tasks.size(); ++i) SaveTask(run, static_cast<int>(i));
  std::string id = run.id;
  writer_->Sync([accepted = std::move(accepted), id](bool ok, const std::string& e) {
    if (!ok) return accepted(StoreFailure(e), "");
    accepted(std::nullopt, id);
  });
  PrepareDirs(run);
  ArmDeadline(run);
  Pump(run);
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
