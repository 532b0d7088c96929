#include "daemon/prefetcher.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>
#include <utility>

#include "daemon/log.h"
#include "daemon/work_queue.h"

namespace chainctl::daemon {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr double kAssumedStartupMs = 500;  // before a task's start-up was ever measured
constexpr uint64_t kAssumedMemory = 64ull << 20;
constexpr uint64_t kDefaultKeepAliveMs = 60'000;
constexpr uint64_t kMinKeepAliveMs = 1000;

// A task whose process may be started ahead: it says `prewarm: spawn`, and it asks for no GPU
// (which GPUs it gets is decided at its start, in its environment).
bool SpawnsAhead(const TaskSpec& task) {
  return task.prewarm == PrewarmLevel::kSpawn && task.resource_requirements.gpu == 0;
}

// When a candidate may be needed: early, the 10th percentile of the gaps seen (else the
// median, else now).
double EarlyNeed(const TaskCandidate& c) {
  return c.expected_in_p10_ms.value_or(c.expected_in_ms.value_or(0));
}

uint64_t Cores() { return std::max(1u, std::thread::hardware_concurrency()); }

uint64_t QuarterOfRam() {
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return 4ull << 30;
  return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) / 4;
}

// FNV-1a over the parts of a launch that make two processes interchangeable.
std::string LaunchHash(const TaskLaunch& l) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](std::string_view s) {
    for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
  };
  for (const std::string& a : l.argv) mix(a);
  mix("\x01");
  for (const std::string& e : l.env) {
    if (!e.starts_with("CHAIN_WORKDIR=") && !e.starts_with("CHAIN_CONTEXT_FILE=")) mix(e);
  }
  mix(std::to_string(l.memory_limit_bytes) + "/" + std::to_string(l.cpu_limit_s));
  char out[17];
  snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(h));
  return out;
}

}  // namespace

// A task the plan wants warm, and when.
struct Prefetcher::Desire {
  std::string key;
  std::string chain_id;
  std::shared_ptr<const Chain> chain;
  int task = 0;
  Level level = Level::kStage;
  double probability = 0;
  double need_ms = 0;  // unix ms
  double fire_ms = 0;  // need − start-up − margin
  double score = 0;
  // Whether room is kept for it until it is due. Not for the tasks of a chain already overdue:
  // their need slides with the clock, so they would never come due and hold the room for ever.
  bool holds_room = true;
  const TaskSpec& spec() const { return chain->tasks[static_cast<size_t>(task)]; }
};

// Something warm: a prewarmed process, an idle worker the prefetcher started, or staged inputs.
struct Prefetcher::Entry {
  uint64_t id = 0;
  std::string key;
  Level level = Level::kStage;
  std::string chain_id, task_id;
  TaskRunner::Handle handle = 0;  // kSpawn
  std::string dir;
  int64_t created_ms = 0;
  int64_t expires_ms = 0;
  uint64_t memory = 0;  // estimate, for the budget
  double score = 0;     // of the last plan that wanted it; 0 if none did
  // kStage
  std::vector<std::string> inputs;
  bool staging = false;
  StageResult staged;
};

struct Prefetcher::TaskFigures {
  std::string chain_id, task_id, level;
  uint64_t hits = 0, misses = 0, prewarms = 0, wasted = 0;
  double wasted_cpu_s = 0, wasted_mb_s = 0, saved_ms = 0;
  std::optional<double> startup_ms;  // the last measured start-up of a prewarm
  // Start-ups of prewarms, from the spawn until ready; one taken before it was ready counts as
  // 1.5 x its age then (it had not finished by then), so a late start is not repeated.
  SampleWindow startups;
  uint64_t rss_kb = 0;
  uint64_t staged_bytes = 0;  // of the last staging
  int64_t last_start_ms = 0;
  SampleWindow gaps;              // between starts
  SampleWindow cold_ms, warm_ms;  // mode: worker: request times on a new and on a warm worker
  int64_t seen_ms = 0;            // unix ms of its last start, take or stage: the newest are kept
};

Prefetcher::Prefetcher(uv_loop_t* loop, PrefetchOptions options, PrefetchHooks hooks,
                       PredictionService* predictions, TaskRunner* runner, WorkerPool* workers,
                       InputStager* stager, UnixMsClock clock)
    : loop_(loop),
      options_(std::move(options)),
      hooks_(std::move(hooks)),
      predictions_(predictions),
      runner_(runner),
      workers_(workers),
      stager_(stager),
      clock_(std::move(clock)) {
  if (options_.max_warm == 0) options_.max_warm = Cores();
  if (options_.max_memory_bytes == 0) options_.max_memory_bytes = QuarterOfRam();
  uv_timer_init(loop_, timer_);
  timer_->data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(timer_));
  if (workers_) {
    std::weak_ptr<bool> alive = alive_;
    workers_->OnIdleStopped(
        [this, alive](const std::string& key, bool never_used, double idle_ms, uint64_t rss_kb) {
          if (alive.expired() || !never_used) return;
          for (auto it = entries_.begin(); it != entries_.end(); ++it) {
            if (it->second->key != key || it->second->level != Level::kWorker) continue;
            TaskFigures& f = figures_[key];
            ++f.wasted;
            f.wasted_mb_s += static_cast<double>(rss_kb) / 1024 * idle_ms / 1000;
            entries_.erase(it);
            return;
          }
        });
  }
}

Prefetcher::~Prefetcher() { Shutdown(); }

bool Prefetcher::Open(std::string* err) {
  std::error_code ec;
  fs::remove_all(options_.dir, ec);
  fs::create_directories(options_.dir, ec);
  if (ec) {
    *err = "cannot make " + options_.dir + ": " + ec.message();
    return false;
  }
  ReadMeasurements();
  return true;
}

void Prefetcher::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  *alive_ = false;
  // The timer outlives the prefetcher until the loop has closed it.
  uv_close(reinterpret_cast<uv_handle_t*>(timer_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  std::vector<uint64_t> ids;
  for (const auto& [id, entry] : entries_) ids.push_back(id);
  for (uint64_t id : ids) Stop(id, false);
  queue_.clear();
  WriteMeasurements();
}

// --- measurements kept across restarts ---

// {"format": 1, "tasks": {KEY: {chain_id, task_id, level, seen_ms, startups, rss_kb,
// staged_bytes, gaps, cold_ms, warm_ms}}}: what was measured, not this daemon's counts; of the
// measurements_kept tasks seen last (keys of old definitions would pile up otherwise).
json Prefetcher::Measurements() const {
  std::vector<std::pair<const std::string*, const TaskFigures*>> kept;
  for (const auto& [key, f] : figures_) {
    if (f.startups.size() + f.gaps.size() + f.cold_ms.size() == 0 && f.staged_bytes == 0) continue;
    kept.emplace_back(&key, &f);
  }
  auto newer = [](const auto& a, const auto& b) { return a.second->seen_ms > b.second->seen_ms; };
  std::stable_sort(kept.begin(), kept.end(), newer);
  if (kept.size() > options_.measurements_kept) kept.resize(options_.measurements_kept);
  json tasks = json::object();
  for (auto [key, figures] : kept) {
    const TaskFigures& f = *figures;
    tasks[*key] = {{"chain_id", f.chain_id},
                   {"seen_ms", f.seen_ms},
                   {"task_id", f.task_id},
                   {"level", f.level},
                   {"startups", f.startups.ToJson()},
                   {"rss_kb", f.rss_kb},
                   {"staged_bytes", f.staged_bytes},
                   {"gaps", f.gaps.ToJson()},
                   {"cold_ms", f.cold_ms.ToJson()},
                   {"warm_ms", f.warm_ms.ToJson()}};
  }
  return {{"format", 1}, {"tasks", std::move(tasks)}};
}

bool Prefetcher::LoadMeasurements(const json& j, std::string* err) {
  if (!j.is_object() || j.value("format", json()) != 1 || !j.contains("tasks") ||
      !j["tasks"].is_object()) {
    *err = "not a measurements file of format 1";
    return false;
  }
  std::map<std::string, TaskFigures> loaded;
  try {
    for (const auto& [key, t] : j["tasks"].items()) {
      TaskFigures& f = loaded[key];
      f.chain_id = t.at("chain_id").get<std::string>();
      f.task_id = t.at("task_id").get<std::string>();
      f.level = t.at("level").get<std::string>();
      f.seen_ms = t.at("seen_ms").get<int64_t>();
      f.rss_kb = t.at("rss_kb").get<uint64_t>();
      f.staged_bytes = t.at("staged_bytes").get<uint64_t>();
      for (auto [name, window] :
           {std::pair{"startups", &f.startups}, std::pair{"gaps", &f.gaps},
            std::pair{"cold_ms", &f.cold_ms}, std::pair{"warm_ms", &f.warm_ms}}) {
        if (!window->FromJson(t.at(name), err)) {
          *err = key + ": " + name + ": " + *err;
          return false;
        }
      }
    }
  } catch (const json::exception& e) {
    *err = e.what();
    return false;
  }
  figures_ = std::move(loaded);
  return true;
}

void Prefetcher::ReadMeasurements() {
  const std::string& path = options_.measurements_file;
  if (path.empty() || !options_.enabled) return;
  std::ifstream in(path);
  if (!in) return;  // a first start
  std::string err;
  if (!LoadMeasurements(json::parse(in, nullptr, false), &err)) {
    Log(LogLevel::kWarning, "prefetch: ignoring " + path + " (" + err + ")");
  }
}

// Written whole to a temporary file, then renamed over the old one.
void Prefetcher::WriteMeasurements() const {
  const std::string& path = options_.measurements_file;
  if (path.empty() || !options_.enabled) return;
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << Measurements().dump() << '\n';
    if (!out.flush()) {
      Log(LogLevel::kWarning, "prefetch: cannot write " + tmp);
      return;
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) Log(LogLevel::kWarning, "prefetch: cannot write " + path + ": " + ec.message());
}

std::string Prefetcher::KeyOf(const std::string& chain_id, const TaskSpec& task) const {
  TaskLaunch launch = hooks_.warm_launch(task, options_.dir);
  return chain_id + "/" + task.task_id + "#" + LaunchHash(launch);
}

std::string Prefetcher::WorkerKey(const std::string& chain_id, const TaskSpec& task) const {
  return KeyOf(chain_id, task);
}

Prefetcher::TaskFigures& Prefetcher::Figures(const std::string& key, const std::string& chain_id,
                                             const std::string& task_id) {
  TaskFigures& f = figures_[key];
  f.chain_id = chain_id;
  f.task_id = task_id;
  f.seen_ms = clock_();
  return f;
}

// --- watching ---

void Prefetcher::RunProgress(const std::string& run_id, const std::string& chain_id,
                             std::shared_ptr<const Chain> chain,
                             const std::vector<std::string>& started) {
  if (!options_.enabled || shut_down_) return;
  ActiveRun& run = runs_[run_id];
  if (run.started.empty() && !started.empty()) last_run_start_ms_ = clock_();
  run.chain = std::move(chain);
  run.chain_id = chain_id;
  if (!started.empty() && started.size() > run.started.size()) {
    run.last_start_ms = clock_();
    const TaskSpec* spec = nullptr;
    int i = run.chain->FindTask(started.back());
    if (i >= 0) spec = &run.chain->tasks[static_cast<size_t>(i)];
    if (spec) {
      TaskFigures& f = Figures(KeyOf(chain_id, *spec), chain_id, spec->task_id);
      int64_t now = clock_();
      if (f.last_start_ms > 0) f.gaps.Add(static_cast<double>(now - f.last_start_ms));
      f.last_start_ms = now;
    }
  }
  run.started = started;
  Plan();
}

void Prefetcher::RunEnded(const std::string& run_id, const std::string& chain_id,
                          int64_t started_ms) {
  if (!options_.enabled || shut_down_) return;
  runs_.erase(run_id);
  recent_chains_.push_back(chain_id);
  if (recent_chains_.size() > 2) recent_chains_.erase(recent_chains_.begin());
  last_run_start_ms_ = std::max(last_run_start_ms_, started_ms);
  Plan();
}

// --- planning ---

// The candidates after `started` in a run of `chain`, along the most likely path.
void Prefetcher::Want(const std::shared_ptr<const Chain>& chain, const std::string& chain_id,
                      std::vector<std::string> started, double p0, double need_ms,
                      std::vector<Desire>* out) {
  std::optional<ChainShape> shape = predictions_->ShapeOf(chain_id);
  double p_path = p0;
  for (size_t depth = 0; depth < options_.lookahead; ++depth) {
    std::vector<TaskCandidate> candidates =
        predictions_->model().PredictTasks(chain_id, started, shape ? &*shape : nullptr);
    const TaskCandidate* best = nullptr;
    bool known = depth > 0 && predictions_->model().KnowsChain(chain_id);
    for (const TaskCandidate& c : candidates) {
      if (c.unlikely) continue;
      // Beyond the next start, only what the chain's history has seen: the model has no "the
      // run ends here", so after the last task it would spread over the tasks never run.
      if (known && !predictions_->model().KnowsTask(chain_id, c.task_id)) continue;
      double p = p_path * c.probability;
      if (p < options_.min_probability) continue;
      int i = chain->FindTask(c.task_id);
      if (i < 0) continue;
      AddDesires(chain, chain_id, i, p, need_ms + EarlyNeed(c), out);
      if (!best) best = &c;
    }
    if (!best) return;
    p_path *= best->probability;
    need_ms += EarlyNeed(*best);
    started.push_back(best->task_id);
  }
}

void Prefetcher::AddDesires(const std::shared_ptr<const Chain>& chain, const std::string& chain_id,
                            int index, double p, double need_ms, std::vector<Desire>* out) {
  const TaskSpec& task = chain->tasks[static_cast<size_t>(index)];
  if (task.prewarm == PrewarmLevel::kOff) return;
  Desire d{.key = KeyOf(chain_id, task),
           .chain_id = chain_id,
           .chain = chain,
           .task = index,
           .level = Level::kStage,
           .probability = p,
           .need_ms = need_ms};
  double startup = StartupMs(d.key);
  double mb = static_cast<double>(MemoryOf(d.key, task)) / (1 << 20);
  double idle_s = ((1 - p) * static_cast<double>(KeepAliveMs(d.key)) +
                   static_cast<double>(options_.margin_ms)) /
                  1000;
  d.fire_ms = need_ms - startup - static_cast<double>(options_.margin_ms);
  if (task.mode == TaskMode::kWorker && workers_) {
    d.level = Level::kWorker;
  } else if (SpawnsAhead(task)) {
    d.level = Level::kSpawn;
  }
  if (d.level != Level::kStage) {
    d.score = p * startup - options_.cost_ms_per_mb_s * mb * idle_s;
    if (d.score > 0) out->push_back(d);
  }
  if (!task.input_files.empty() && stager_) {  // staged data: bytes, not memory
    Desire s = d;
    s.key = "stage:" + d.key;
    s.level = Level::kStage;
    s.score = p;
    out->push_back(std::move(s));
  }
}

void Prefetcher::Plan() {
  if (shut_down_) return;
  std::erase_if(taken_, [this](const std::pair<TaskRunner::Handle, std::string>& t) {
    if (!runner_->Locate(t.first).is_null()) return false;
    std::error_code ec;
    fs::remove_all(t.second, ec);
    return true;
  });
  std::vector<Desire> desires;
  double now = static_cast<double>(clock_());
  for (const auto& [run_id, run] : runs_) {
    // Needs count from the run's last start, the time the model's gaps are measured from.
    Want(run.chain, run.chain_id, run.started, 1.0, static_cast<double>(run.last_start_ms),
         &desires);
  }
  if (!recent_chains_.empty()) {
    for (const ChainCandidate& c : predictions_->model().PredictChains(recent_chains_)) {
      if (c.probability < options_.min_probability) continue;
      std::shared_ptr<const Chain> chain = hooks_.latest_chain(c.chain_id);
      if (!chain) continue;
      // Early (the 10th percentile of the gaps between runs): a run sooner than usual is one
      // whose start-up is worth saving too.
      double expected = static_cast<double>(last_run_start_ms_) +
                        c.expected_in_p10_ms.value_or(c.expected_in_ms.value_or(0));
      size_t first = desires.size();
      Want(chain, c.chain_id, {}, c.probability, std::max(now, expected), &desires);
      if (expected < now) {
        for (size_t i = first; i < desires.size(); ++i) desires[i].holds_room = false;
      }
    }
  }
  TrimCache(now);
  auto by_score = [](const Desire& a, const Desire& b) { return a.score > b.score; };
  std::stable_sort(desires.begin(), desires.end(), by_score);
  // A second warm entry of a task is only needed if both its desires come true: its score
  // is weighed by the probability of the first (the branches of a router: one entry each
  // before a second of any).
  std::map<std::string, double> before;
  for (Desire& d : desires) {
    auto [it, fresh] = before.try_emplace(d.key, 1.0);
    d.score *= it->second;
    it->second *= d.probability;
  }
  std::stable_sort(desires.begin(), desires.end(), by_score);
  // Entries still wanted keep living; each desire is met by at most one entry.
  for (auto& [id, entry] : entries_) entry->score = 0;
  queue_.clear();
  std::set<uint64_t> used;
  // Idle workers that served before (not the prefetcher's entries) meet worker desires too.
  std::map<std::string, size_t> idle_workers;
  auto pooled = [&](const Desire& d) {
    if (d.level != Level::kWorker || !workers_) return false;
    auto [it, fresh] = idle_workers.try_emplace(d.key, 0);
    if (fresh) {
      size_t ours = 0;
      for (const auto& [id, entry] : entries_) ours += entry->key == d.key;
      size_t idle = workers_->idle(d.key);
      it->second = idle > ours ? idle - ours : 0;
    }
    if (it->second == 0) return false;
    --it->second;
    return true;
  };
  int64_t now_ms = clock_();
  for (Desire& d : desires) {
    bool met = pooled(d);
    for (auto& [id, entry] : entries_) {
      if (met) break;
      if (entry->key != d.key || used.count(id)) continue;
      used.insert(id);
      entry->score = d.score;
      // Wanted now (it would be started now if it were not there): it lives on.
      if (d.fire_ms <= static_cast<double>(now_ms)) {
        entry->expires_ms =
            std::max(entry->expires_ms, now_ms + static_cast<int64_t>(KeepAliveMs(d.key)));
      }
      met = true;
      break;
    }
    if (!met) queue_.push_back(std::move(d));
  }
  Reconcile();
}

// Starts what is due from the queue, best first, within the budgets.
// The input cache's TTL: entries unused longer go, on the thread pool, at most once a minute.
void Prefetcher::TrimCache(double now) {
  if (!stager_ || now < next_trim_ms_) return;
  next_trim_ms_ = now + 60'000;
  InputStager* stager = stager_;
  QueueWork(
      loop_, [stager] { stager->Trim(); }, [] {});
}

void Prefetcher::Reconcile() {
  if (shut_down_) return;
  Expire();
  double now = static_cast<double>(clock_());
  double next = -1;
  // Processes kept for better candidates not due yet: a worse one due now does not take their
  // place only to be evicted when they come.
  size_t reserved = 0;
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (it->fire_ms > now) {
      next = next < 0 ? it->fire_ms : std::min(next, it->fire_ms);
      reserved += it->level != Level::kStage && it->holds_room;
      ++it;
      continue;
    }
    // With nothing reserved, Start may still make room by evicting a clearly worse entry.
    if (it->level != Level::kStage && reserved > 0 &&
        WarmProcesses() + reserved + 1 > options_.max_warm) {
      ++it;
      continue;
    }
    if (Start(*it)) {
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
  int64_t expiry = 0;
  for (const auto& [id, entry] : entries_) {
    if (entry->staging) continue;  // its end plans again
    if (expiry == 0 || entry->expires_ms < expiry) expiry = entry->expires_ms;
  }
  if (expiry > 0 && (next < 0 || static_cast<double>(expiry) < next)) {
    next = static_cast<double>(expiry);
  }
  if (next >= 0) ArmTimer(static_cast<int64_t>(std::ceil(next)));
}

void Prefetcher::ArmTimer(int64_t at_ms) {
  int64_t wait = std::max<int64_t>(0, at_ms - clock_());
  uv_timer_start(timer_, OnTimer, static_cast<uint64_t>(wait), 0);
}

// A plan, not only the queue: an entry whose keep-alive ends lives on if a run still wants it.
void Prefetcher::OnTimer(uv_timer_t* timer) { static_cast<Prefetcher*>(timer->data)->Plan(); }

void Prefetcher::Expire() {
  int64_t now = clock_();
  std::vector<uint64_t> expired;
  for (const auto& [id, entry] : entries_) {
    if (entry->expires_ms <= now && !entry->staging) expired.push_back(id);
  }
  for (uint64_t id : expired) Stop(id, true);
}

// Budgets: is there room for `d`, if need be by stopping idle entries scored lower?
bool Prefetcher::MakeRoom(const Desire& d) {
  auto fits = [&] {
    if (d.level == Level::kStage) {
      return StagedBytes() + figures_[d.key].staged_bytes <= options_.max_staged_bytes;
    }
    return WarmProcesses() + 1 <= options_.max_warm &&
           WarmMemory() + MemoryOf(d.key, d.spec()) <= options_.max_memory_bytes;
  };
  while (!fits()) {
    Entry* victim = nullptr;
    for (auto& [id, entry] : entries_) {
      // Only for a clearly better candidate (no churn between near equals), never the same task.
      bool same_kind = (entry->level == Level::kStage) == (d.level == Level::kStage);
      if (!same_kind || entry->staging || entry->key == d.key || entry->score >= 0.8 * d.score) {
        continue;
      }
      if (!victim || entry->score < victim->score) victim = entry.get();
    }
    if (!victim) return false;
    Stop(victim->id, true);
  }
  return true;
}

bool Prefetcher::Start(const Desire& d) {
  if (!MakeRoom(d)) return false;
  const TaskSpec& task = d.spec();
  auto entry = std::make_unique<Entry>();
  entry->id = next_entry_++;
  entry->key = d.key;
  entry->level = d.level;
  entry->chain_id = d.chain_id;
  entry->task_id = task.task_id;
  entry->dir = options_.dir + "/" + std::to_string(entry->id);
  entry->created_ms = clock_();
  entry->expires_ms = entry->created_ms + static_cast<int64_t>(KeepAliveMs(d.key));
  entry->score = d.score;
  entry->memory = d.level == Level::kStage ? 0 : MemoryOf(d.key, task);
  std::error_code ec;
  fs::create_directories(entry->dir, ec);
  TaskFigures& f = Figures(d.key, d.chain_id, task.task_id);
  f.level = d.level == Level::kStage ? "stage" : d.level == Level::kSpawn ? "spawn" : "worker";
  std::string err;
  uint64_t id = entry->id;
  if (d.level == Level::kSpawn) {
    std::weak_ptr<bool> alive = alive_;
    entry->handle = runner_->Prewarm(
        hooks_.warm_launch(task, entry->dir),
        [this, alive, id](TaskResult cost) {
          if (!alive.expired()) ProcessEnded(id, std::move(cost));
        },
        &err);
    if (entry->handle == 0) {
      Log(LogLevel::kWarning,
          "prefetch: cannot prewarm " + d.chain_id + "/" + task.task_id + ": " + err);
      fs::remove_all(entry->dir, ec);
      return true;  // dropped from the queue: it would fail again
    }
  } else if (d.level == Level::kWorker) {
    if (!workers_->Prewarm(d.key, hooks_.worker_launch(d.chain_id, task), KeepAliveMs(d.key),
                           &err)) {
      Log(LogLevel::kWarning,
          "prefetch: cannot start a worker for " + d.chain_id + "/" + task.task_id + ": " + err);
      return true;
    }
  } else {
    entry->inputs = task.input_files;
    entry->staging = true;
    InputStager* stager = stager_;
    std::string dest = entry->dir + "/files";
    auto result = std::make_shared<StageResult>();
    std::weak_ptr<bool> alive = alive_;
    QueueWork(
        loop_,
        [stager, inputs = entry->inputs, dest, result] { *result = stager->Stage(inputs, dest); },
        [this, alive, id, result] {
          if (alive.expired()) return;
          auto it = entries_.find(id);
          if (it == entries_.end()) return;
          Entry& e = *it->second;
          e.staging = false;
          e.staged = std::move(*result);
          figures_[e.key].staged_bytes = e.staged.bytes;
          if (!e.staged.ok || StagedBytes() > options_.max_staged_bytes) {
            if (!e.staged.ok)
              Log(LogLevel::kWarning, "prefetch: staging " + e.key + ": " + e.staged.error);
            Stop(id, false);
          }
          Reconcile();
        });
  }
  ++f.prewarms;
  Log(LogLevel::kDebug, "prefetch: prewarm " + d.key + " p=" + std::to_string(d.probability) +
                            " need in " +
                            std::to_string(d.need_ms - static_cast<double>(clock_())));
  entries_.emplace(id, std::move(entry));
  // MakeRoom made room: this is a bug if it shows (the e2e tests look for it).
  if (WarmProcesses() > options_.max_warm || StagedBytes() > options_.max_staged_bytes) {
    Log(LogLevel::kError, "prefetch: over budget: " + Stats()["warm"].dump());
  }
  return true;
}

// An entry goes: its process stopped (or its worker), its folder removed; `wasted` counts it.
void Prefetcher::Stop(uint64_t id, bool wasted) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  std::unique_ptr<Entry> entry = std::move(it->second);
  entries_.erase(it);
  TaskFigures& f = figures_[entry->key];
  TaskResult cost;
  if (entry->level == Level::kSpawn) {
    TaskRunner::WarmState state = runner_->Warm(entry->handle);
    if (state.ready_ms) LearnStartup(f, state);
    cost = runner_->StopWarm(entry->handle);
  } else if (entry->level == Level::kWorker && workers_) {
    workers_->StopIdle(entry->key);
  }
  if (wasted) {
    if (entry->level != Level::kStage) {
      CountWaste(f, cost);
    } else {
      ++f.wasted;
    }
  }
  std::error_code ec;
  fs::remove_all(entry->dir, ec);
}

void Prefetcher::LearnStartup(TaskFigures& f, const TaskRunner::WarmState& state) {
  if (state.ready_ms) {
    f.startup_ms = *state.ready_ms;
    f.rss_kb = state.rss_kb;
    f.startups.Add(*state.ready_ms);
  } else {
    f.startups.Add(1.5 * state.age_ms);
  }
}

void Prefetcher::CountWaste(TaskFigures& f, const TaskResult& cost) {
  ++f.wasted;
  f.wasted_cpu_s += cost.cpu_s;
  double seconds = static_cast<double>(cost.end_unix_ms - cost.start_unix_ms) / 1000;
  f.wasted_mb_s += static_cast<double>(cost.max_rss_kb) / 1024 * std::max(0.0, seconds);
}

// A prewarmed process ended by itself before any run took it: it was not what its task
// promised (to wait for its input), so it is waste.
void Prefetcher::ProcessEnded(uint64_t id, TaskResult cost) {
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  Log(LogLevel::kWarning, "prefetch: the prewarmed " + it->second->key +
                              " ended before its input came" +
                              (cost.error.empty() ? std::string() : ": " + cost.error));
  TaskFigures& f = figures_[it->second->key];
  CountWaste(f, cost);
  std::error_code ec;
  fs::remove_all(it->second->dir, ec);
  entries_.erase(it);
}

// --- taking ---

TaskRunner::Handle Prefetcher::TakeProcess(const std::string& chain_id, const TaskSpec& task,
                                           std::string* context_file) {
  if (!options_.enabled || !SpawnsAhead(task) || task.mode == TaskMode::kWorker) return 0;
  std::string key = KeyOf(chain_id, task);
  TaskFigures& f = Figures(key, chain_id, task.task_id);
  f.level = "spawn";
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    Entry& e = *it->second;
    if (e.key != key || e.level != Level::kSpawn) continue;
    TaskRunner::WarmState state = runner_->Warm(e.handle);
    if (!state.alive) continue;
    LearnStartup(f, state);
    ++f.hits;
    f.saved_ms += state.ready_ms.value_or(state.age_ms);
    TaskRunner::Handle handle = e.handle;
    *context_file = e.dir + "/context.json";
    taken_.emplace_back(handle, e.dir);  // its folder goes once its attempt has ended
    entries_.erase(it);                  // RunProgress, which follows the start, plans anew
    return handle;
  }
  ++f.misses;
  Log(LogLevel::kDebug, "prefetch: miss " + key + " (queue " + std::to_string(queue_.size()) +
                            ", warm " + std::to_string(WarmProcesses()) + ")");
  return 0;
}

void Prefetcher::WorkerServed(const std::string& key, bool cold, double duration_ms) {
  if (!options_.enabled) return;
  TaskFigures& f = figures_[key];
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
    double saved = f.cold_ms.Quantile(0.5) - f.warm_ms.Quantile(0.5);
    f.saved_ms += std::max(0.0, saved);
    f.startup_ms = std::max(0.0, saved);
  }
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->second->key == key && it->second->level == Level::kWorker) {
      entries_.erase(it);  // the pool has it now
      break;
    }
  }
}

void Prefetcher::StageInputs(const std::string& chain_id, const TaskSpec& task,
                             const std::string& dest, std::function<void(StageResult)> done) {
  std::string key = "stage:" + KeyOf(chain_id, task);
  TaskFigures& f = Figures(key, chain_id, task.task_id);
  f.level = "stage";
  std::string from;
  StageResult staged;
  if (options_.enabled) {
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      Entry& e = *it->second;
      if (e.key != key || e.staging || !e.staged.ok) continue;
      from = e.dir;
      staged = std::move(e.staged);
      entries_.erase(it);
      break;
    }
  }
  InputStager* stager = stager_;
  auto result = std::make_shared<StageResult>();
  auto hit = std::make_shared<bool>(false);
  std::vector<std::string> inputs = task.input_files;
  QueueWork(
      loop_,
      [stager, inputs, dest, from, staged = std::move(staged), result, hit] {
        std::string why;
        std::error_code ec;
        if (!from.empty() && stager->StillFresh(inputs, staged, &why)) {
          fs::create_directories(fs::path(dest).parent_path(), ec);
          fs::rename(from + "/files", dest, ec);
          if (!ec) {
            *hit = true;
            *result = staged;
            result->bytes_copied = 0;
          }
        }
        if (!from.empty()) fs::remove_all(from, ec);
        if (!*hit) *result = stager->Stage(inputs, dest);
      },
      [this, key, hit, result, done = std::move(done)] {
        TaskFigures& fig = figures_[key];
        if (options_.enabled) ++(*hit ? fig.hits : fig.misses);
        fig.staged_bytes = result->bytes;
        done(std::move(*result));
        Plan();
      });
}

// --- estimates ---

uint64_t Prefetcher::KeepAliveMs(const std::string& key) const {
  auto it = figures_.find(key);
  uint64_t keep = kDefaultKeepAliveMs;
  if (it != figures_.end() && it->second.gaps.size() >= 2) {
    keep = static_cast<uint64_t>(1.5 * it->second.gaps.Quantile(0.99));
  }
  return std::clamp<uint64_t>(keep, std::min(kMinKeepAliveMs, options_.ttl_ms), options_.ttl_ms);
}

double Prefetcher::StartupMs(const std::string& key) const {
  auto it = figures_.find(key);
  return it != figures_.end() && it->second.startups.size() > 0 ? it->second.startups.Quantile(0.9)
                                                                : kAssumedStartupMs;
}

uint64_t Prefetcher::MemoryOf(const std::string& key, const TaskSpec& task) const {
  auto it = figures_.find(key);
  if (it != figures_.end() && it->second.rss_kb > 0) return it->second.rss_kb * 1024;
  if (task.resource_requirements.memory_bytes > 0) return task.resource_requirements.memory_bytes;
  return kAssumedMemory;
}

size_t Prefetcher::WarmProcesses() const {
  size_t n = 0;
  for (const auto& [id, e] : entries_) n += e->level != Level::kStage;
  return n;
}

uint64_t Prefetcher::WarmMemory() const {
  uint64_t n = 0;
  for (const auto& [id, e] : entries_) n += e->memory;
  return n;
}

uint64_t Prefetcher::StagedBytes() const {
  uint64_t n = 0;
  for (const auto& [id, e] : entries_) {
    if (e->level != Level::kStage) continue;
    if (!e->staging) {
      n += e->staged.bytes;
      continue;
    }
    // Still staging: counted at what the task staged last time.
    auto f = figures_.find(e->key);
    if (f != figures_.end()) n += f->second.staged_bytes;
  }
  return n;
}

// --- figures ---

json Prefetcher::Totals() const {
  uint64_t hits = 0, misses = 0, wasted = 0, prewarms = 0;
  double cpu = 0, mb_s = 0, saved = 0;
  for (const auto& [key, f] : figures_) {
    hits += f.hits;
    misses += f.misses;
    wasted += f.wasted;
    prewarms += f.prewarms;
    cpu += f.wasted_cpu_s;
    mb_s += f.wasted_mb_s;
    saved += f.saved_ms;
  }
  json hit_rate = hits + misses
                      ? json(static_cast<double>(hits) / static_cast<double>(hits + misses))
                      : json(nullptr);
  return {{"hits", hits},
          {"misses", misses},
          {"hit_rate", hit_rate},
          {"prewarms", prewarms},
          {"wasted", {{"prewarms", wasted}, {"cpu_seconds", cpu}, {"mb_seconds", mb_s}}},
          {"startup_saved_ms", saved}};
}

json Prefetcher::Stats() const {
  json j = Totals();
  j["enabled"] = options_.enabled;
  j["queue"] = queue_.size();
  j["warm"] = {{"processes", WarmProcesses()},
               {"memory_bytes", WarmMemory()},
               {"staged_bytes", StagedBytes()}};
  j["budgets"] = {{"processes", options_.max_warm},
                  {"memory_bytes", options_.max_memory_bytes},
                  {"staged_bytes", options_.max_staged_bytes},
                  {"ttl_ms", options_.ttl_ms}};
  return j;
}

json Prefetcher::Status() const {
  json j = Stats();
  json queue = json::array();
  for (const Desire& d : queue_) {
    queue.push_back({{"chain_id", d.chain_id},
                     {"task_id", d.spec().task_id},
                     {"probability", d.probability},
                     {"score", d.score},
                     {"start_in_ms", std::max(0.0, d.fire_ms - static_cast<double>(clock_()))}});
  }
  j["queue"] = std::move(queue);
  json pool = json::array();
  int64_t now = clock_();
  for (const auto& [id, e] : entries_) {
    json entry = {{"chain_id", e->chain_id},
                  {"task_id", e->task_id},
                  {"level", e->level == Level::kStage   ? "stage"
                            : e->level == Level::kSpawn ? "spawn"
                                                        : "worker"},
                  {"age_ms", now - e->created_ms},
                  {"expires_in_ms", std::max<int64_t>(0, e->expires_ms - now)}};
    if (e->level == Level::kSpawn) {
      TaskRunner::WarmState state = runner_->Warm(e->handle);
      entry["ready"] = state.ready_ms.has_value();
      if (state.rss_kb) entry["rss_kb"] = state.rss_kb;
    }
    if (e->level == Level::kStage) {
      entry["staging"] = e->staging;
      entry["bytes"] = e->staged.bytes;
    }
    pool.push_back(std::move(entry));
  }
  j["pool"] = std::move(pool);
  json tasks = json::array();
  for (const auto& [key, f] : figures_) {
    json t = {
        {"chain_id", f.chain_id}, {"task_id", f.task_id},   {"level", f.level},
        {"hits", f.hits},         {"misses", f.misses},     {"prewarms", f.prewarms},
        {"wasted", f.wasted},     {"saved_ms", f.saved_ms}, {"keep_alive_ms", KeepAliveMs(key)}};
    if (f.startup_ms) t["startup_ms"] = *f.startup_ms;
    tasks.push_back(std::move(t));
  }
  j["tasks"] = std::move(tasks);
  return j;
}

std::string Prefetcher::Metrics() const {
  json s = Stats();
  std::ostringstream out;
  auto metric = [&out](const char* name, const char* type, const char* help, const json& value) {
    out << "# HELP chaind_prefetch_" << name << " " << help << "\n# TYPE chaind_prefetch_" << name
        << " " << type << "\nchaind_prefetch_" << name << " "
        << (value.is_null() ? json(0) : value).dump() << "\n";
  };
  metric("hits_total", "counter", "Task starts that took a prewarmed entry.", s["hits"]);
  metric("misses_total", "counter", "Task starts that could have been prewarmed and were not.",
         s["misses"]);
  metric("prewarms_total", "counter", "Prewarms started.", s["prewarms"]);
  metric("wasted_total", "counter", "Prewarms stopped unused.", s["wasted"]["prewarms"]);
  metric("wasted_cpu_seconds_total", "counter", "CPU time of prewarms stopped unused.",
         s["wasted"]["cpu_seconds"]);
  metric("wasted_mb_seconds_total", "counter", "Memory x time of prewarms stopped unused.",
         s["wasted"]["mb_seconds"]);
  metric("startup_saved_seconds_total", "counter", "Start-up time saved by hits.",
         json(s["startup_saved_ms"].get<double>() / 1000));
  metric("queue_length", "gauge", "Prewarms wanted and not yet started.", s["queue"]);
  metric("warm_processes", "gauge", "Prewarmed processes and workers alive.",
         s["warm"]["processes"]);
  metric("warm_memory_bytes", "gauge", "Their memory (estimated).", s["warm"]["memory_bytes"]);
  metric("staged_bytes", "gauge", "Bytes staged ahead.", s["warm"]["staged_bytes"]);
  return out.str();
}

}  // namespace chainctl::daemon
