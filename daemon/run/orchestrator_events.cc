// A run's events and records, and the read side (orchestrator.h): Emit stores each event and
// hands it to the run's followers (those of one loop turn together, a run_finished only once
// stored); SaveRun and SaveTask rewrite the records at the next commit; GetRun, ListRuns,
// GetOutput, Follow and LogPath answer from the runs in memory, else from the store.
#include <functional>

#include "common/json_text.h"
#include "daemon/run/orchestrator.h"
#include "daemon/run/orchestrator_internal.h"
#include "daemon/store/run_keys.h"

namespace chainctl::daemon {

using nlohmann::json;
using orchestrator_detail::DecodeRecord;
using orchestrator_detail::GetRecord;
using orchestrator_detail::ReadEvents;
using orchestrator_detail::ReadTaskRecords;
using orchestrator_detail::StoreFailure;

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
  const Run::Task& t = run.tasks[Run::Index(i)];
  json task = {{"task_id", run.spec(i).task_id},
               {"index", i},
               {"state", ToString(run.scheduler->state(i))},
               {"attempts", t.attempts}};
  if (t.started_ms) task["started_unix_ms"] = t.started_ms;
  if (t.ended_ms) task["ended_unix_ms"] = t.ended_ms;
  if (!t.error.empty()) task["error"] = t.error;
  if (!t.process.is_null()) task["process"] = t.process;
  if (!t.cache.is_null()) task["cache"] = t.cache;
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
  if (!run.env_names.empty()) record["env"] = run.env_names;  // names only: values are secrets
  if (!run.targets.empty()) record["selected"] = run.TargetIds();
  if (run.no_cache) record["no_cache"] = true;
  if (run.status == "succeeded") {
    const std::vector<int>& leaves = run.targets.empty() ? plan.dag.leaves : run.targets;
    auto output_of = [&](int leaf) { return run.tasks[Run::Index(leaf)].output.value_or(nullptr); };
    if (leaves.size() == 1) {
      record["output"] = output_of(leaves[0]);
    } else {
      json output = json::object();
      for (int leaf : leaves) output[plan.chain.tasks[Run::Index(leaf)].task_id] = output_of(leaf);
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

}  // namespace chainctl::daemon
