// What the orchestrator keeps of ended runs (issue 15, item 4): the folders of the newest
// keep_run_dirs and the store records (run, tasks, outputs, events) of the newest keep_runs,
// in the order they ended. Each run's end removes at most one run's folder and records, so the
// work per event is bounded; Open removes at once what a smaller limit left over.
#include <filesystem>

#include "daemon/log.h"
#include "daemon/orchestrator.h"
#include "daemon/orchestrator_internal.h"
#include "daemon/run_keys.h"
#include "daemon/work_queue.h"

namespace chainctl::daemon {
namespace {

// Deletes every key of `db` that begins with `prefix`.
bool DeletePrefix(WriteTxn& txn, Db db, const std::string& prefix, std::string* err) {
  std::vector<std::string> keys;
  bool ok = txn.Scan(
      db, prefix, false,
      [&keys](std::string_view key, std::string_view) {
        keys.emplace_back(key);
        return true;
      },
      err);
  for (size_t i = 0; ok && i < keys.size(); ++i) {
    bool existed = false;
    ok = txn.Delete(db, keys[i], &existed, err);
  }
  return ok;
}

// Deletes the records of run n: its run record, task records, outputs and events.
bool DeleteRunRecords(WriteTxn& txn, uint64_t n, std::string* err) {
  bool existed = false;
  return txn.Delete(Db::kRuns, RunKey(n), &existed, err) &&
         DeletePrefix(txn, Db::kRuns, RunTaskPrefix(n), err) &&
         DeletePrefix(txn, Db::kRuns, RunOutputKey(n, ""), err) &&
         DeletePrefix(txn, Db::kRuns, RunEventPrefix(n), err);
}

}  // namespace

void Orchestrator::RunDirEnded(uint64_t n) {
  ended_dirs_.push_back(n);
  std::vector<std::string> old;
  while (ended_dirs_.size() > options_.keep_run_dirs) {
    old.push_back(options_.runs_dir + "/" + RunId(ended_dirs_.front()));
    ended_dirs_.pop_front();
  }
  if (old.empty()) return;
  QueueWork(
      loop_,
      [old = std::move(old)] {
        for (const std::string& dir : old) {
          std::error_code ec;
          std::filesystem::remove_all(dir, ec);
          if (ec) Log(LogLevel::kWarning, "cannot remove " + dir + ": " + ec.message());
        }
      },
      [] {});
}

void Orchestrator::RunRecordEnded(uint64_t n) {
  ended_records_.push_back(n);
  while (ended_records_.size() > options_.keep_runs) {
    uint64_t old = ended_records_.front();
    ended_records_.pop_front();
    // Resume refuses it from now on: the deletion and a resumed run's writes could otherwise
    // meet in one commit.
    removing_.insert(old);
    writer_->Add(
        [old](WriteTxn& txn, std::string* err) { return DeleteRunRecords(txn, old, err); });
    writer_->Sync([this, old](bool, const std::string&) { removing_.erase(old); });
  }
}

RunError Orchestrator::NoRun(std::string_view run_id) const {
  std::optional<uint64_t> n = ParseRunId(run_id);
  std::string message = "no run " + std::string(run_id);
  if (n && *n <= last_run_) {
    message += ": it was removed (chaind keeps the newest " + std::to_string(options_.keep_runs) +
               " ended runs: --keep-runs)";
  }
  return RunError{404, "not_found", message, nullptr};
}

}  // namespace chainctl::daemon
