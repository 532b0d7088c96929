#include "daemon/store_writer.h"

#include <memory>

#include "daemon/log.h"
#include "daemon/work_queue.h"

namespace chainctl::daemon {

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

void StoreWriter::Kick() {
  if (in_flight_ || (pending_.empty() && pending_.durable.empty())) return;
  if (pending_.durable.empty() && delay_ms_ > 0) {
    // Nobody waits: gather writes for a moment, so a busy loop commits (and wakes a pool
    // thread, and fsyncs) a few hundred times a second at most, not once per change.
    if (timer_) return;
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
        delay_ms_, 0);
    return;
  }
  Commit();
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
  if (ok) {
    if (!batch.empty()) ++commits_;
    writes_ += batch.puts.size() + batch.ops.size();
  } else {
    Log(LogLevel::kError, "store: a commit of " +
                              std::to_string(batch.puts.size() + batch.ops.size()) +
                              " write(s) failed, they are lost: " + err);
  }
  for (Durable& durable : batch.durable) durable(ok, err);
  Kick();
  if (busy()) return;
  std::vector<std::function<void()>> idle;
  idle.swap(idle_);
  for (auto& fn : idle) fn();
}

}  // namespace chainctl::daemon
