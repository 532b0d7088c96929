// The orchestrator after a crash and on demand (DESIGN.md §4 "Durability"): Open finds the
// runs a previous chaind left running, stops the task processes it left behind and marks the
// runs interrupted; Resume runs again what did not succeed in an ended run, reusing the
// stored outputs and files of what did.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "daemon/run/orchestrator.h"
#include "daemon/run/orchestrator_internal.h"
#include "daemon/run/task_io.h"
#include "daemon/store/run_keys.h"
#include "daemon/util/log.h"

namespace chainctl::daemon {

using nlohmann::json;

namespace orchestrator_detail {

bool DecodeRecord(std::string_view value, std::string_view what, json* out, std::string* err) {
  uint8_t version = 0;
  std::string_view payload;
  if (!DecodeValue(value, 1, what, &version, &payload, err)) return false;
  *out = json::parse(payload, nullptr, false);
  if (out->is_discarded()) {
    *err = std::string(what) + " is not valid JSON";
    return false;
  }
  return true;
}

bool GetRecord(ReadTxn& txn, const std::string& key, std::string_view what,
               std::optional<json>* out, std::string* err) {
  std::string value;
  bool found = false;
  if (!txn.Get(Db::kRuns, key, &value, &found, err)) return false;
  if (!found) return true;
  json record;
  if (!DecodeRecord(value, what, &record, err)) return false;
  *out = std::move(record);
  return true;
}

bool ReadTaskRecords(ReadTxn& txn, uint64_t n, std::vector<json>* tasks, std::string* err) {
  bool ok = txn.Scan(
      Db::kRuns, RunTaskPrefix(n), false,
      [&](std::string_view, std::string_view value) {
        json task;
        std::string decode_err;
        if (DecodeRecord(value, "task record", &task, &decode_err)) tasks->push_back(task);
        return true;
      },
      err);
  std::sort(tasks->begin(), tasks->end(),
            [](const json& a, const json& b) { return a.value("index", 0) < b.value("index", 0); });
  return ok;
}

bool ReadEvents(ReadTxn& txn, uint64_t n, std::vector<std::string>* lines, std::string* err) {
  return txn.Scan(
      Db::kRuns, RunEventPrefix(n), false,
      [&](std::string_view, std::string_view value) {
        uint8_t version = 0;
        std::string_view payload;
        std::string decode_err;
        if (DecodeValue(value, 1, "event", &version, &payload, &decode_err)) {
          lines->emplace_back(payload);
        }
        return true;
      },
      err);
}

}  // namespace orchestrator_detail

using orchestrator_detail::DecodeRecord;
using orchestrator_detail::GetRecord;
using orchestrator_detail::MakeDir;
using orchestrator_detail::ReadEvents;
using orchestrator_detail::ReadTaskRecords;
using orchestrator_detail::StoredRun;
using orchestrator_detail::StoreFailure;

namespace {

// The stored run n; the outputs of its succeeded tasks only if `with_outputs` (Resume needs
// them, Open does not).
bool ReadStoredRun(ReadTxn& txn, uint64_t n, bool with_outputs, std::optional<StoredRun>* run,
                   std::string* err) {
  std::optional<json> record;
  if (!GetRecord(txn, RunKey(n), "run record", &record, err)) return false;
  if (!record) return true;
  StoredRun stored{n, std::move(*record), {}, {}, {}};
  if (!ReadTaskRecords(txn, n, &stored.tasks, err) || !ReadEvents(txn, n, &stored.events, err)) {
    return false;
  }
  for (const json& task : stored.tasks) {
    if (!with_outputs || task.value("state", "") != "succeeded") continue;
    std::string task_id = task.value("task_id", "");
    std::optional<json> output;
    if (!GetRecord(txn, RunOutputKey(n, task_id), "output", &output, err)) return false;
    if (output) stored.outputs[task_id] = std::move(*output);
  }
  *run = std::move(stored);
  return true;
}

bool IsDir(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Clears what an earlier go of a task left in its folder (its work and out folders and its
// output file); its input file is rewritten and its logs are kept (attempts go on counting).
void ClearTaskDir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::remove_all(dir + "/work", ec);
  std::filesystem::remove_all(dir + "/out", ec);
  unlink((dir + "/output.json").c_str());
}

}  // namespace

void Orchestrator::OpenRunDirs(const std::vector<Ended>& ended,
                               const std::vector<StoredRun>& left) {
  std::set<uint64_t> stored;
  for (const Ended& run : ended) stored.insert(run.n);
  for (const StoredRun& run : left) stored.insert(run.n);
  std::vector<uint64_t> dirs, unstored;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(options_.runs_dir, ec)) {
    if (std::optional<uint64_t> n = ParseRunId(entry.path().filename().string())) {
      (stored.contains(*n) ? dirs : unstored).push_back(*n);
    }
  }
  // A folder without records: its run's records were deleted and chaind stopped before the
  // folder went, or its run was never stored (a crash before its first commit; its number
  // will be given again).
  RemoveDirs(std::move(unstored));
  std::sort(dirs.begin(), dirs.end());
  for (uint64_t n : dirs) RunDirEnded(n);
}

bool Orchestrator::Open(std::string* err) {
  if (!MakeDir(options_.runs_dir, err)) return false;
  std::vector<StoredRun> left;  // runs a previous chaind left running
  std::vector<Ended> ended;     // the others (and those that do not decode)
  bool ok = store_->Read(
      [&](ReadTxn& txn, std::string* e) {
        std::vector<uint64_t> running;
        bool scanned = txn.Scan(
            Db::kRuns, "r", false,
            [&](std::string_view key, std::string_view value) {
              uint64_t n = RunNumberOfKey(key);
              last_run_ = std::max(last_run_, n);
              json record;
              std::string decode_err;
              bool decoded = DecodeRecord(value, "run record", &record, &decode_err);
              if (decoded && record.value("status", "") == "running") {
                running.push_back(n);
              } else {
                ended.push_back({n, decoded ? record.value("ended_unix_ms", int64_t{0}) : 0});
              }
              return true;
            },
            e);
        for (size_t i = 0; scanned && i < running.size(); ++i) {
          std::optional<StoredRun> run;
          if (!ReadStoredRun(txn, running[i], false, &run, e)) return false;
          if (run) left.push_back(std::move(*run));
        }
        return scanned;
      },
      err);
  if (!ok) return false;
  OpenRunDirs(ended, left);
  // In the order they ended; the runs marked interrupted below end now, after those.
  std::stable_sort(ended.begin(), ended.end(),
                   [](const Ended& a, const Ended& b) { return a.ended_ms < b.ended_ms; });
  for (const Ended& run : ended) RunRecordEnded(run.n, run.ended_ms);
  for (const StoredRun& run : left) RunRecordEnded(run.n, clock_());
  ExpireRuns(SIZE_MAX);
  if (left.empty()) return true;
  Log(LogLevel::kWarning, std::to_string(left.size()) +
                              " run(s) were running when chaind last stopped: marked interrupted");
  for (const StoredRun& run : left) {
    for (const json& task : run.tasks) {
      if (task.contains("process")) runner_->StopOrphan(task["process"]);
    }
    interrupted_.push_back(RunId(run.n));
  }
  return MarkInterrupted(left, err);
}

bool Orchestrator::MarkInterrupted(const std::vector<orchestrator_detail::StoredRun>& runs,
                                   std::string* err) {
  int64_t now = clock_();
  return store_->Write(
      [&](WriteTxn& txn, std::string* e) {
        for (StoredRun run : runs) {
          json counts = json::object();
          for (json& task : run.tasks) {
            std::string state = task.value("state", "");
            if (!IsFinal(ParseTaskState(state).value_or(TaskState::kPending))) {
              task["state"] = state = "cancelled";
              if (task.contains("process")) task["error"] = "chaind stopped while it ran";
              task.erase("process");
              if (!txn.Put(Db::kRuns, RunTaskKey(run.n, task.value("task_id", "")),
                           EncodeValue(1, task.dump()), e)) {
                return false;
              }
            }
            counts[state] = counts.value(state, 0) + 1;
          }
          const std::string error = "chaind stopped while the run was running";
          run.record["status"] = "interrupted";
          run.record["ended_unix_ms"] = now;
          run.record["error"] = error;
          run.record["task_states"] = counts;
          // Its events end as those of any ended run do, so that followers know it ended.
          auto seq = static_cast<uint32_t>(run.events.size() + 1);
          json finished = {{"seq", seq},
                           {"time_unix_ms", now},
                           {"run_id", RunId(run.n)},
                           {"type", "run_finished"},
                           {"status", "interrupted"},
                           {"duration_ms", now - run.record.value("created_unix_ms", now)},
                           {"error", error}};
          if (!txn.Put(Db::kRuns, RunKey(run.n), EncodeValue(1, run.record.dump()), e) ||
              !txn.Put(Db::kRuns, RunEventKey(run.n, seq), EncodeValue(1, finished.dump()), e)) {
            return false;
          }
        }
        return true;
      },
      err);
}

void Orchestrator::ResumeInterrupted() {
  std::vector<std::string> ids;
  ids.swap(interrupted_);
  for (const std::string& id : ids) {
    Resume(id, [id](std::optional<RunError> error, const std::string&) {
      if (error) {
        Log(LogLevel::kWarning, "cannot resume " + id + ": " + error->message);
      } else {
        Log(LogLevel::kInfo, id + " resumed");
      }
    });
  }
}

void Orchestrator::Resume(std::string_view run_id, Accepted accepted, RunParams params) {
  std::optional<StoredRun> stored;
  if (std::optional<RunError> refusal = StoredToResume(run_id, &stored)) {
    return accepted(refusal, "");
  }
  const std::string id(run_id);
  std::shared_ptr<const Plan> plan;
  if (std::optional<RunError> refusal = PlanToResume(id, stored->record, &plan)) {
    return accepted(refusal, "");
  }
  std::shared_ptr<const Chain> definition(plan, &plan->chain);
  std::vector<std::string> missing;
  for (const json& name : stored->record.value("env", json::array())) {
    if (name.is_string() && !params.env.contains(name.get<std::string>())) {
      missing.push_back(name.get<std::string>());
    }
  }
  if (!missing.empty()) {
    std::string names;
    for (const std::string& name : missing) names += (names.empty() ? "" : ", ") + name;
    return accepted(RunError{422, "env_required",
                             id + " was started with values of " + names +
                                 ", which chaind never stores: give them again (chainctl resume " +
                                 id + " --env NAME=VALUE, --env-file or --pass-env)",
                             missing},
                    "");
  }
  if (std::optional<RunError> refusal = RunEnvironment(*plan, params.env, &definition)) {
    return accepted(refusal, "");
  }
  std::string dir = options_.runs_dir + "/" + id;
  if (!IsDir(dir)) {
    return accepted(RunError{409, "files_removed",
                             "the folder of " + id +
                                 " was removed (chaind --keep-run-files), so its tasks' files "
                                 "are gone and it cannot be resumed",
                             nullptr},
                    "");
  }
  Run& run = Restart(std::move(*stored), std::move(plan), dir);
  run.definition = std::move(definition);
  for (const auto& [name, value] : params.env) run.env_names.push_back(name);
  run.no_cache = params.no_cache;
  EmitResumed(run);
  StartRun(run, std::move(accepted));  // the chain's timeout counts from the resume
  MaybeFinishRun(run);                 // every task left may have been decided by the restore
  Dispatch();
}

std::optional<RunError> Orchestrator::StoredToResume(std::string_view run_id,
                                                     std::optional<StoredRun>* stored) {
  const std::string id(run_id);
  if (std::optional<RunError> refusal = Unavailable()) return refusal;
  if (Run* active = Active(run_id)) {
    return RunError{409, "run_running",
                    active->ended ? id + " has just ended and is being stored; try again"
                                  : id + " is running; only an ended run can be resumed",
                    nullptr};
  }
  std::optional<uint64_t> n = ParseRunId(run_id);
  std::string err;
  if (n && !store_->Read([&](ReadTxn& txn,
                             std::string* e) { return ReadStoredRun(txn, *n, true, stored, e); },
                         &err)) {
    return StoreFailure(err);
  }
  if (!*stored || removing_.contains(*n)) return NoRun(id);
  if ((*stored)->record.value("status", "") == "succeeded") {
    return RunError{409, "nothing_to_resume", id + " succeeded: there is nothing to resume",
                    nullptr};
  }
  return std::nullopt;
}

std::optional<RunError> Orchestrator::PlanToResume(const std::string& id, const json& record,
                                                   std::shared_ptr<const Plan>* plan) {
  std::string chain_id = record.value("chain_id", "");
  int version = record.value("chain_version", 0);
  std::optional<ChainVersion> chain;
  std::string err;
  if (!registry_->GetChain(chain_id, version, &chain, &err)) return StoreFailure(err);
  if (!chain) {
    return RunError{409, "chain_gone",
                    "chain " + chain_id + " version " + std::to_string(version) + " of " + id +
                        " is no longer stored, so " + id + " cannot be resumed",
                    nullptr};
  }
  return RunnablePlan(*chain, plan);
}

void Orchestrator::EmitResumed(Run& run) {
  std::vector<std::string> again;
  for (size_t i = 0; i < run.tasks.size(); ++i) {
    if (!IsFinal(run.scheduler->state(static_cast<int>(i)))) {
      again.push_back(run.plan->chain.tasks[i].task_id);
    }
  }
  Emit(run, {{"type", "run_resumed"}, {"resumed", run.resumes}, {"tasks", again}});
  EmitDecided(run, clock_());
}

Orchestrator::Run& Orchestrator::Restart(orchestrator_detail::StoredRun stored,
                                         std::shared_ptr<const Plan> plan, std::string dir) {
  auto run = std::make_unique<Run>();
  run->n = stored.n;
  run->id = RunId(stored.n);
  run->plan = std::move(plan);
  run->definition = std::shared_ptr<const Chain>(run->plan, &run->plan->chain);
  run->input = stored.record.value("input", json::object());
  for (const json& id : stored.record.value("selected", json::array())) {
    int i = id.is_string() ? run->plan->chain.FindTask(id.get<std::string>()) : -1;
    if (i >= 0) run->targets.push_back(i);
  }
  run->scheduler =
      std::make_unique<Scheduler>(run->plan->dag, Weights(*run->plan), run->plan->rules);
  run->tasks.resize(run->plan->chain.tasks.size());
  run->created_ms = stored.record.value("created_unix_ms", int64_t{0});
  run->resumes = stored.record.value("resumed", 0) + 1;
  run->dir = std::move(dir);
  run->events = std::move(stored.events);
  run->sent = run->events.size();

  std::vector<TaskState> states(run->tasks.size(), TaskState::kPending);
  for (const json& record : stored.tasks) {
    std::string task_id = record.value("task_id", "");
    int i = run->plan->chain.FindTask(task_id);
    if (i < 0) continue;
    Run::Task& t = run->task(i);
    t.attempts = record.value("attempts", 0);
    TaskState state = ParseTaskState(record.value("state", "")).value_or(TaskState::kPending);
    auto output = stored.outputs.find(task_id);
    bool succeeded = state == TaskState::kSucceeded || state == TaskState::kCached;
    if (succeeded && output == stored.outputs.end()) {
      state = TaskState::kPending;  // no output stored with it: it runs again
      succeeded = false;
    }
    if (!succeeded && state != TaskState::kSkipped) continue;
    states[Run::Index(i)] = state;
    t.started_ms = record.value("started_unix_ms", int64_t{0});
    t.ended_ms = record.value("ended_unix_ms", int64_t{0});
    t.error = record.value("error", "");
    if (record.contains("cache")) t.cache = record["cache"];
    if (succeeded) {
      t.output = std::move(output->second);
      t.has_files = HasEntries(run->dir + "/" + task_id + "/out");
    }
  }
  run->scheduler->Restore(states);
  for (size_t i = 0; i < run->tasks.size(); ++i) {
    if (!IsFinal(run->scheduler->state(static_cast<int>(i)))) {
      ClearTaskDir(run->dir + "/" + run->plan->chain.tasks[i].task_id);
    }
  }
  std::erase(ended_dirs_, run->n);  // its folder is in use again
  std::erase_if(ended_records_, [n = run->n](const Ended& e) { return e.n == n; });
  Run& r = *run;
  runs_[r.n] = std::move(run);
  return r;
}

}  // namespace chainctl::daemon
