#include "daemon/store/store_writer.h"

#include <algorithm>
#include <chrono>
#include <iterator>
#include <memory>

#include "daemon/util/log.h"
#include "daemon/util/work_queue.h"

namespace chainctl::daemon {
namespace {

int64_t UnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void StoreWriter::Put(Db db, std::string key, std::string value) {
  std::pair<Db, std::string> where{db, std::move(key)};
  pending_.later.erase(where);
  pending_.puts[std::move(where)] = std::move(value);
  Kick();
}

void StoreWriter::PutLater(Db db, std::string key, MakeValue value) {
  std::pair<Db, std::string> where{db, std::move(key)};
  pending_.puts.erase(where);
  pending_.later[std::move(where)] = std::move(value);
  Kick();
}

void StoreWriter::Delete(Db db, std::string key) {
  std::pair<Db, std::string> where{db, std::move(key)};
  pending_.later.erase(where);
  pending_.puts[std::move(where)] = std::nullopt;
  Kick();
}

void StoreWriter::Add(Op op) {
  pending_.ops.push_back(std::move(op));
  Kick();
}

void StoreWriter::Sync(Durable durable) {
  if (!busy()) return durable(true, "");
  pending_.durable.push_back(std::move(durable));
  Kick();
}

void StoreWriter::WhenIdle(std::function<void()> idle) {
  if (!busy()) return idle();
  idle_.push_back(std::move(idle));
}

void StoreWriter::GiveUpOnFailure() {
  give_up_ = true;
  if (degraded() && !in_flight_) Commit();  // the retry, now
}

void StoreWriter::Kick() {
  if (in_flight_ || (pending_.empty() && pending_.durable.empty())) return;
  if (degraded() && !give_up_) return;  // the retry timer commits everything pending
  if (pending_.durable.empty() && delay_ms_ > 0) {
    // Nobody waits: gather writes for a moment, so a busy loop commits (and wakes a pool
    // thread, and fsyncs) a few hundred times a second at most, not once per change.
    if (!timer_) StartTimer(delay_ms_);
    return;
  }
  Commit();
}

void StoreWriter::StartTimer(uint64_t ms) {
  CloseTimer();
  timer_ = new uv_timer_t;
  uv_timer_init(loop_, timer_);
  timer_->data = this;
  uv_timer_start(
      timer_,
      [](uv_timer_t* timer) {
        auto* self = static_cast<StoreWriter*>(timer->data);
        self->CloseTimer();
        self->Commit();
      },
      ms, 0);
}

void StoreWriter::CloseTimer() {
  if (!timer_) return;
  uv_timer_stop(timer_);
  uv_close(reinterpret_cast<uv_handle_t*>(timer_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  timer_ = nullptr;
}

void StoreWriter::Commit() {
  CloseTimer();
  if (in_flight_ || (pending_.empty() && pending_.durable.empty())) return;
  in_flight_ = true;
  struct Commit {
    Batch batch;
    bool ok = false;
    std::string err;
  };
  for (auto& [where, make] : pending_.later) {
    if (std::optional<std::string> value = make()) pending_.puts[where] = std::move(*value);
  }
  pending_.later.clear();
  auto commit = std::make_shared<Commit>();
  in_flight_writes_ = pending_.puts.size() + pending_.ops.size();
  commit->batch = std::move(pending_);
  pending_ = Batch{};
  Store* store = store_;
  QueueWork(
      loop_,
      [commit, store] {
        if (commit->batch.empty()) {
          commit->ok = true;
          return;
        }
        commit->ok = store->Write(
            [&](WriteTxn& txn, std::string* err) {
              for (const auto& [where, value] : commit->batch.puts) {
                bool existed = false;
                bool ok = value ? txn.Put(where.first, where.second, *value, err)
                                : txn.Delete(where.first, where.second, &existed, err);
                if (!ok) return false;
              }
              for (const Op& op : commit->batch.ops) {
                if (!op(txn, err)) return false;
              }
              return true;
            },
            &commit->err);
      },
      [this, commit] { Committed(std::move(commit->batch), commit->ok, commit->err); });
}

void StoreWriter::Committed(Batch batch, bool ok, const std::string& err) {
  in_flight_ = false;
  size_t count = batch.puts.size() + batch.ops.size();
  if (!ok && !give_up_) return Failed(std::move(batch), err);
  if (ok) {
    if (!batch.empty()) ++commits_;
    writes_ += count;
    if (degraded()) Recovered();
  } else {
    Log(LogLevel::kError, "store: a commit of " + std::to_string(count) +
                              " write(s) failed while chaind stops, they are lost: " + err);
  }
  for (Durable& durable : batch.durable) durable(ok, err);
  Kick();
  if (busy()) return;
  std::vector<std::function<void()>> idle;
  idle.swap(idle_);
  for (auto& fn : idle) fn();
}

void StoreWriter::Failed(Batch batch, const std::string& err) {
  ++failed_tries_;
  if (!degraded()) {
    failing_since_ms_ = UnixMs();
    retry_ms_ = kFirstRetryMs;
    Log(LogLevel::kError,
        "store: a commit of " + std::to_string(batch.puts.size() + batch.ops.size()) +
            " write(s) failed: " + err +
            "; chaind is degraded: its writes are kept and retried until the store takes them, "
            "and new runs and chain writes are refused (507) meanwhile");
  } else {
    retry_ms_ = std::min(2 * retry_ms_, kMaxRetryMs);
    Log(LogLevel::kDebug, "store: retry " + std::to_string(failed_tries_) + " failed: " + err);
  }
  failure_ = err.empty() ? "a commit failed" : err;
  // The failed writes are older than the pending ones: a pending write of the same key wins.
  for (auto& [where, value] : batch.puts) {
    if (!pending_.later.count(where)) pending_.puts.try_emplace(where, std::move(value));
  }
  std::move(pending_.ops.begin(), pending_.ops.end(), std::back_inserter(batch.ops));
  pending_.ops = std::move(batch.ops);
  std::move(pending_.durable.begin(), pending_.durable.end(), std::back_inserter(batch.durable));
  pending_.durable = std::move(batch.durable);
  StartTimer(retry_ms_);
}

std::string StoreWriter::DegradedMessage() const {
  return "the store cannot write (" + failure_ + ") for " +
         std::to_string((UnixMs() - failing_since_ms_) / 1000) + " s; " +
         std::to_string(unstored()) +
         " write(s) wait for a retry: new runs and chain writes are refused until it can (is "
         "the state directory's disk full?)";
}

void StoreWriter::Recovered() {
  int64_t now = UnixMs();
  Log(LogLevel::kInfo, "store: writes are stored again after " + std::to_string(failed_tries_) +
                           " failed commit(s) in " + std::to_string(now - failing_since_ms_) +
                           " ms; chaind is no longer degraded");
  failure_.clear();
  failed_tries_ = 0;
  failing_since_ms_ = 0;
}

}  // namespace chainctl::daemon
