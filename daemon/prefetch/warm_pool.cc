#include "daemon/prefetch/warm_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>

#include "daemon/util/log.h"
#include "daemon/util/work_queue.h"

namespace chainctl::daemon {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// A prewarm still starting up counts as such (it holds back the next start) for at most twice
// its expected start-up, and at least this long: a slow one then stops holding others back.
constexpr int64_t kMinStartingMs = 1000;

}  // namespace

struct WarmPool::Entry {
  uint64_t id = 0;
  std::string key;
  WarmLevel level = WarmLevel::kStage;
  std::string chain_id, task_id;
  TaskRunner::Handle handle = 0;  // kSpawn
  std::string dir;
  int64_t created_ms = 0;
  int64_t expires_ms = 0;
  int64_t starting_until_ms = 0;    // kSpawn, until ready
  uint64_t memory = 0;              // estimate, for the budget
  double score = 0;                 // of the last plan; 0: unwanted
  bool ready = false;               // kSpawn: blocked reading its input
  std::vector<std::string> inputs;  // kStage
  bool staging = false;
  StageResult staged;
  // Set by Stop: a staging still copying gives up between chunks (it cannot hold chaind's
  // shutdown, which waits for the thread pool).
  std::shared_ptr<std::atomic<bool>> cancel = std::make_shared<std::atomic<bool>>(false);
};

WarmPool::WarmPool(uv_loop_t* loop, std::string dir, WarmPoolHooks hooks, TaskRunner* runner,
                   WorkerPool* workers, InputStager* stager, FigureBook* figures, UnixMsClock clock)
    : loop_(loop),
      dir_(std::move(dir)),
      hooks_(std::move(hooks)),
      runner_(runner),
      workers_(workers),
      stager_(stager),
      figures_(figures),
      clock_(std::move(clock)) {
  if (!workers_) return;
  std::weak_ptr<bool> alive = alive_;
  workers_->OnIdleStopped(
      [this, alive](const std::string& key, bool never_used, double idle_ms, uint64_t rss_kb) {
        if (alive.expired() || !never_used) return;
        for (auto it = entries_.begin(); it != entries_.end(); ++it) {
          if (it->second->key != key || it->second->level != WarmLevel::kWorker) continue;
          TaskFigures& f = (*figures_)[key];
          ++f.wasted;
          f.wasted_mb_s += static_cast<double>(rss_kb) / 1024 * idle_ms / 1000;
          entries_.erase(it);
          return;
        }
      });
}

WarmPool::~WarmPool() {
  *alive_ = false;
  StopAll();
}

bool WarmPool::Start(const Desire& d) {
  const TaskSpec& task = d.spec();
  auto entry = std::make_unique<Entry>();
  Entry& e = *entry;
  e.id = next_id_++;
  e.key = d.key;
  e.level = d.level;
  e.chain_id = d.view->chain_id;
  e.task_id = task.task_id;
  e.dir = dir_ + "/" + std::to_string(e.id);
  e.created_ms = clock_();
  e.expires_ms = e.created_ms + static_cast<int64_t>(d.keep_alive_ms);
  e.score = d.score;
  e.memory = d.process() ? d.memory : 0;
  std::error_code ec;
  fs::create_directories(e.dir, ec);
  TaskFigures& f = figures_->Touch(d.key, e.chain_id, e.task_id, e.created_ms);
  f.level = ToString(d.level);
  std::string err;
  std::weak_ptr<bool> alive = alive_;
  uint64_t id = e.id;
  if (d.level == WarmLevel::kSpawn) {
    e.starting_until_ms =
        e.created_ms +
        std::max(kMinStartingMs, static_cast<int64_t>(2 * figures_->StartupMs(d.key)));
    TaskRunner::WarmEvents events{.ready =
                                      [this, alive, id](double) {
                                        if (!alive.expired()) Ready(id);
                                      },
                                  .ended =
                                      [this, alive, id](TaskResult cost) {
                                        if (!alive.expired()) ProcessEnded(id, std::move(cost));
                                      }};
    TaskLaunch launch = hooks_.warm_launch(task, e.dir);
    const TaskFigures* measured = figures_->Find(d.key);
    if (measured && measured->startups.size() > 0) {
      launch.ready_hint_ms = static_cast<uint64_t>(measured->startups.Quantile(0.5));
    }
    e.handle = runner_->Prewarm(std::move(launch), std::move(events), &err);
  } else if (d.level == WarmLevel::kWorker) {
    if (!workers_->Prewarm(d.key, hooks_.worker_launch(e.chain_id, task), d.keep_alive_ms, &err)) {
      err = err.empty() ? "cannot start a worker" : err;
    }
  } else {
    StartStaging(e, task);
  }
  if (!err.empty()) {
    Log(LogLevel::kWarning,
        "prefetch: cannot prewarm " + e.chain_id + "/" + e.task_id + ": " + err);
    fs::remove_all(e.dir, ec);
    return false;
  }
  ++f.prewarms;
  Log(LogLevel::kDebug, "prefetch: prewarm " + d.key + " p=" + std::to_string(d.probability) +
                            " need in " +
                            std::to_string(d.need_ms - static_cast<double>(e.created_ms)));
  entries_.emplace(id, std::move(entry));
  return true;
}

void WarmPool::StartStaging(Entry& e, const TaskSpec& task) {
  e.inputs = task.input_files;
  e.staging = true;
  InputStager* stager = stager_;
  std::string dest = e.dir + "/files";
  auto result = std::make_shared<StageResult>();
  std::weak_ptr<bool> alive = alive_;
  uint64_t id = e.id;
  QueueWork(
      loop_,
      [stager, inputs = e.inputs, dest, result, link = task.link_inputs, cancel = e.cancel] {
        *result = stager->Stage(inputs, dest, link, [cancel] { return cancel->load(); });
      },
      [this, alive, id, result] {
        if (alive.expired()) return;
        auto it = entries_.find(id);
        if (it == entries_.end()) return;
        Entry& entry = *it->second;
        entry.staging = false;
        entry.staged = std::move(*result);
        (*figures_)[entry.key].staged_bytes = entry.staged.bytes;
        if (!entry.staged.ok) {
          Log(LogLevel::kWarning, "prefetch: staging " + entry.key + ": " + entry.staged.error);
          Stop(id, false);
        }
        if (hooks_.changed) hooks_.changed();
      });
}

void WarmPool::Stop(uint64_t id, bool wasted) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  std::unique_ptr<Entry> entry = std::move(it->second);
  entries_.erase(it);
  entry->cancel->store(true);
  TaskFigures& f = (*figures_)[entry->key];
  TaskResult cost;
  if (entry->level == WarmLevel::kSpawn && entry->handle) {
    TaskRunner::WarmState state = runner_->Warm(entry->handle);
    if (state.ready_ms) figures_->LearnStartup(f, state);
    cost = runner_->StopWarm(entry->handle);
  } else if (entry->level == WarmLevel::kWorker && workers_) {
    workers_->StopIdle(entry->key);
  }
  if (wasted) {
    if (entry->level != WarmLevel::kStage) {
      figures_->CountWaste(f, cost);
    } else {
      ++f.wasted;
    }
  }
  std::error_code ec;
  fs::remove_all(entry->dir, ec);
}

void WarmPool::StopAll() {
  while (!entries_.empty()) Stop(entries_.begin()->first, false);
  for (const auto& [handle, dir] : taken_) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  taken_.clear();
}

void WarmPool::Extend(uint64_t id, int64_t until_ms) {
  auto it = entries_.find(id);
  if (it != entries_.end()) it->second->expires_ms = std::max(it->second->expires_ms, until_ms);
}

void WarmPool::Score(uint64_t id, double score) {
  auto it = entries_.find(id);
  if (it != entries_.end()) it->second->score = score;
}

// A prewarmed process became ready: its start-up is known, and the next start may go.
void WarmPool::Ready(uint64_t id) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  it->second->ready = true;
  if (hooks_.changed) hooks_.changed();
}

// A prewarmed process ended by itself before any run took it: it was not what its task
// promised (to wait for its input), so it is waste.
void WarmPool::ProcessEnded(uint64_t id, TaskResult cost) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  Log(LogLevel::kWarning, "prefetch: the prewarmed " + it->second->key +
                              " ended before its input came" +
                              (cost.error.empty() ? std::string() : ": " + cost.error));
  figures_->CountWaste((*figures_)[it->second->key], cost);
  std::error_code ec;
  fs::remove_all(it->second->dir, ec);
  entries_.erase(it);
  if (hooks_.changed) hooks_.changed();
}

std::vector<WarmEntry> WarmPool::Entries() const {
  std::vector<WarmEntry> out;
  out.reserve(entries_.size());
  for (const auto& [id, e] : entries_) {
    out.push_back({.id = id,
                   .key = e->key,
                   .level = e->level,
                   .memory = e->memory,
                   .staged_bytes = e->level == WarmLevel::kStage ? e->staged.bytes : 0,
                   .busy = e->staging,
                   .starting_until_ms = e->ready ? 0 : e->starting_until_ms,
                   .expires_ms = e->expires_ms});
    // Still staging: counted at what the task staged last time.
    if (e->staging) {
      const TaskFigures* f = figures_->Find(e->key);
      out.back().staged_bytes = f ? f->staged_bytes : 0;
    }
  }
  return out;
}

size_t WarmPool::processes() const {
  return static_cast<size_t>(std::count_if(entries_.begin(), entries_.end(), [](const auto& e) {
    return e.second->level != WarmLevel::kStage;
  }));
}

uint64_t WarmPool::memory() const {
  uint64_t n = 0;
  for (const auto& [id, e] : entries_) n += e->memory;
  return n;
}

uint64_t WarmPool::staged_bytes() const {
  uint64_t n = 0;
  for (const WarmEntry& e : Entries()) n += e.staged_bytes;
  return n;
}

size_t WarmPool::idle_workers(const std::string& key) const {
  if (!workers_) return 0;
  size_t ours = 0;
  for (const auto& [id, e] : entries_) ours += e->key == key;
  size_t idle = workers_->idle(key);
  return idle > ours ? idle - ours : 0;
}

// Taken processes' folders go once their attempt has ended (the runner no longer locates it).
void WarmPool::RemoveTaken() {
  std::erase_if(taken_, [this](const std::pair<TaskRunner::Handle, std::string>& t) {
    if (!runner_->Locate(t.first).is_null()) return false;
    std::error_code ec;
    fs::remove_all(t.second, ec);
    return true;
  });
}

TaskRunner::Handle WarmPool::TakeProcess(const std::string& key, bool count_miss,
                                         std::string* context_file) {
  RemoveTaken();
  TaskFigures& f = (*figures_)[key];
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    Entry& e = *it->second;
    if (e.key != key || e.level != WarmLevel::kSpawn) continue;
    TaskRunner::WarmState state = runner_->Warm(e.handle);
    if (!state.alive) continue;
    figures_->LearnStartup(f, state);
    ++f.hits;
    f.saved_ms += state.ready_ms.value_or(state.age_ms);
    TaskRunner::Handle handle = e.handle;
    *context_file = e.dir + "/context.json";
    taken_.emplace_back(handle, e.dir);
    entries_.erase(it);
    return handle;
  }
  if (!count_miss) return 0;
  f.level = "spawn";
  ++f.misses;
  Log(LogLevel::kDebug, "prefetch: miss " + key + " (warm " + std::to_string(processes()) + ")");
  return 0;
}

void WarmPool::WorkerServed(const std::string& key, bool cold, double duration_ms) {
  TaskFigures& f = (*figures_)[key];
  f.level = "worker";
  f.seen_ms = clock_();
  (cold ? f.cold_ms : f.warm_ms).Add(duration_ms);
  if (cold) {
    ++f.misses;
    return;
  }
  ++f.hits;
  // What a warm worker saves: a cold request's time over a warm one's (medians), once both
  // were seen.
  if (f.cold_ms.size() > 0) {
    double saved = std::max(0.0, f.cold_ms.Quantile(0.5) - f.warm_ms.Quantile(0.5));
    f.saved_ms += saved;
    f.startup_ms = saved;
  }
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->second->key == key && it->second->level == WarmLevel::kWorker) {
      entries_.erase(it);  // the pool has it now
      break;
    }
  }
}

void WarmPool::StageInputs(const std::string& key, const std::string& chain_id,
                           const TaskSpec& task, const std::string& dest, bool count_miss,
                           StageCancelled cancelled, std::function<void(StageResult)> done) {
  TaskFigures& f = figures_->Touch(key, chain_id, task.task_id, clock_());
  f.level = "stage";
  std::string from;
  StageResult staged;
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    Entry& e = *it->second;
    if (e.key != key || e.staging || !e.staged.ok) continue;
    from = e.dir;
    staged = std::move(e.staged);
    entries_.erase(it);
    break;
  }
  struct Outcome {
    StageResult result;
    bool hit = false;
    double ms = 0;  // a staging's time (a miss)
  };
  auto outcome = std::make_shared<Outcome>();
  QueueWork(
      loop_,
      [stager = stager_, inputs = task.input_files, link = task.link_inputs, dest, from,
       staged = std::move(staged), outcome, cancelled = std::move(cancelled)] {
        std::string why;
        std::error_code ec;
        if (!from.empty() && stager->StillFresh(inputs, staged, &why)) {
          fs::create_directories(fs::path(dest).parent_path(), ec);
          fs::rename(from + "/files", dest, ec);
          if (!ec) {
            outcome->hit = true;
            outcome->result = staged;
            outcome->result.bytes_copied = 0;
          }
        }
        if (!from.empty()) fs::remove_all(from, ec);
        if (outcome->hit) return;
        auto start = std::chrono::steady_clock::now();
        outcome->result = stager->Stage(inputs, dest, link, cancelled);
        outcome->ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                .count();
      },
      [this, alive = std::weak_ptr<bool>(alive_), key, count_miss, outcome,
       done = std::move(done)] {
        if (!alive.expired()) {
          TaskFigures& fig = (*figures_)[key];
          if (outcome->hit) ++fig.hits;
          if (!outcome->hit && count_miss) ++fig.misses;
          if (!outcome->hit && outcome->result.ok) fig.stage_ms.Add(outcome->ms);
          fig.staged_bytes = outcome->result.bytes;
        }
        done(std::move(outcome->result));
      });
}

json WarmPool::Json() const {
  json pool = json::array();
  int64_t now = clock_();
  for (const auto& [id, e] : entries_) {
    json entry = {{"chain_id", e->chain_id},
                  {"task_id", e->task_id},
                  {"level", ToString(e->level)},
                  {"age_ms", now - e->created_ms},
                  {"expires_in_ms", std::max<int64_t>(0, e->expires_ms - now)}};
    if (e->level == WarmLevel::kSpawn) {
      TaskRunner::WarmState state = runner_->Warm(e->handle);
      entry["ready"] = state.ready_ms.has_value();
      if (state.rss_kb) entry["rss_kb"] = state.rss_kb;
    }
    if (e->level == WarmLevel::kStage) {
      entry["staging"] = e->staging;
      entry["bytes"] = e->staged.bytes;
    }
    pool.push_back(std::move(entry));
  }
  return pool;
}

}  // namespace chainctl::daemon
