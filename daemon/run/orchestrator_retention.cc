// What the orchestrator keeps of ended runs (issue 15, item 4), in the order they ended: the
// store records (run, tasks, outputs, events) of the newest keep_runs, none that ended more
// than keep_runs_for_ms ago, and the folders of the newest keep_run_dirs. A run's records are
// deleted in one commit and its folder is removed once that commit succeeded, so no folder
// outlives its records (a crash in between leaves a folder that Open removes). Each run's end
// removes at most two runs (one over the count, one over the age); the expiry timer at most
// 256 per wake-up; Open removes at once what a smaller limit left over.
#include <algorithm>
#include <filesystem>

#include "common/units.h"
#include "daemon/run/orchestrator.h"
#include "daemon/run/orchestrator_internal.h"
#include "daemon/store/run_keys.h"
#include "daemon/util/log.h"
#include "daemon/util/work_queue.h"

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
  std::vector<uint64_t> old;
  while (ended_dirs_.size() > options_.keep_run_dirs) {
    old.push_back(ended_dirs_.front());
    ended_dirs_.pop_front();
  }
  RemoveDirs(std::move(old));
}

void Orchestrator::RemoveDirs(std::vector<uint64_t> runs) {
  if (runs.empty()) return;
  std::vector<std::string> dirs;
  for (uint64_t n : runs) dirs.push_back(options_.runs_dir + "/" + RunId(n));
  QueueWork(
      loop_,
      [dirs = std::move(dirs)] {
        for (const std::string& dir : dirs) {
          std::error_code ec;
          std::filesystem::remove_all(dir, ec);
          if (ec) Log(LogLevel::kWarning, "cannot remove " + dir + ": " + ec.message());
        }
      },
      [] {});
}

void Orchestrator::RunRecordEnded(uint64_t n, int64_t ended_ms) {
  ended_records_.push_back({n, ended_ms});
  while (ended_records_.size() > options_.keep_runs) {
    RemoveRun(ended_records_.front().n);
    ended_records_.pop_front();
  }
  ExpireRuns(1);
}

void Orchestrator::ExpireRuns(size_t most) {
  if (options_.keep_runs_for_ms == 0) return;
  int64_t oldest_kept = clock_() - static_cast<int64_t>(options_.keep_runs_for_ms);
  for (; most > 0 && !ended_records_.empty() && ended_records_.front().ended_ms < oldest_kept;
       --most) {
    RemoveRun(ended_records_.front().n);
    ended_records_.pop_front();
  }
  ArmExpiry();
}

void Orchestrator::RemoveRun(uint64_t n) {
  // Resume refuses it from now on: the deletion and a resumed run's writes could otherwise
  // meet in one commit.
  removing_.insert(n);
  writer_->Add([n](WriteTxn& txn, std::string* err) { return DeleteRunRecords(txn, n, err); });
  writer_->Sync([this, n](bool ok, const std::string&) {
    removing_.erase(n);
    if (!ok) return;  // chaind stops while the store fails: the records and folder stay
    // Its folder, if keep_run_dirs has not removed it yet (then it is among the oldest).
    auto dir = std::find(ended_dirs_.begin(), ended_dirs_.end(), n);
    if (dir != ended_dirs_.end()) {
      ended_dirs_.erase(dir);
      RemoveDirs({n});
    }
  });
}

void Orchestrator::ArmExpiry() {
  if (options_.keep_runs_for_ms == 0 || stopping_) return;
  if (!expiry_) {
    expiry_ = new uv_timer_t;
    uv_timer_init(loop_, expiry_);
    expiry_->data = this;
  }
  if (ended_records_.empty()) {
    uv_timer_stop(expiry_);
    return;
  }
  int64_t due = ended_records_.front().ended_ms + static_cast<int64_t>(options_.keep_runs_for_ms);
  // A clock set back must not put the wake-up off for long: at most an hour ahead.
  int64_t wait = std::clamp<int64_t>(due - clock_() + 1, 0, 3'600'000);
  uv_timer_start(
      expiry_,
      [](uv_timer_t* timer) {
        // A bounded batch per wake-up; the rest at once after it (ArmExpiry again).
        static_cast<Orchestrator*>(timer->data)->ExpireRuns(256);
      },
      static_cast<uint64_t>(wait), 0);
}

void Orchestrator::CloseExpiry() {
  if (!expiry_) return;
  uv_timer_stop(expiry_);
  uv_close(reinterpret_cast<uv_handle_t*>(expiry_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  expiry_ = nullptr;
}

RunError Orchestrator::NoRun(std::string_view run_id) const {
  std::optional<uint64_t> n = ParseRunId(run_id);
  std::string message = "no run " + std::string(run_id);
  if (n && *n <= last_run_) {
    message += ": it was removed (chaind keeps the newest " + std::to_string(options_.keep_runs) +
               " ended runs";
    message += options_.keep_runs_for_ms == 0
                   ? ": --keep-runs)"
                   : ", none older than " + FormatDuration(Duration(options_.keep_runs_for_ms)) +
                         ": --keep-runs, --keep-runs-for)";
  }
  return RunError{404, "not_found", message, nullptr};
}

}  // namespace chainctl::daemon
