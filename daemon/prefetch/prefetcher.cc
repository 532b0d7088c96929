#include "daemon/prefetch/prefetcher.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <sstream>
#include <thread>
#include <utility>

#include "daemon/util/log.h"
#include "daemon/util/work_queue.h"

namespace chainctl::daemon {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

uint64_t QuarterOfRam() {
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return 4ull << 30;
  return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) / 4;
}

std::string StageKey(const std::string& key) { return "stage:" + key; }

}  // namespace

// A run being watched. A run of a chain with nothing to prewarm has no frontier nor context.
struct Prefetcher::ActiveRun {
  std::shared_ptr<const ChainView> view;
  std::optional<RunFrontier> frontier;
  std::optional<RunContext> context;
  std::vector<int> started;  // first starts, in order (to rebuild the context of a new model)
  int64_t last_start_ms = 0;
  bool stale = true;  // started something since its last forecast
  std::vector<Forecast> forecasts;
};

// A chain expected to be triggered next, and what its run would start first.
struct Prefetcher::Expected {
  std::shared_ptr<const ChainView> view;
  double expected_ms = 0;  // when its run is expected to start (early)
  std::vector<Forecast> forecasts;
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
      clock_(std::move(clock)),
      figures_(options_.ttl_ms),
      pool_(loop, options_.dir,
            {.warm_launch = hooks_.warm_launch,
             .worker_launch = hooks_.worker_launch,
             .changed = [this] { SchedulePlan(); }},
            runner, workers, stager, &figures_, clock_) {
  if (options_.max_warm == 0) options_.max_warm = PrefetchOptions::kDefaultMaxWarm;
  if (options_.max_memory_bytes == 0) options_.max_memory_bytes = QuarterOfRam();
  if (options_.cores == 0) options_.cores = std::max(1u, std::thread::hardware_concurrency());
  uv_timer_init(loop_, timer_);
  timer_->data = this;
  uv_unref(reinterpret_cast<uv_handle_t*>(timer_));
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
  if (options_.enabled && !options_.measurements_file.empty()) {
    figures_.Read(options_.measurements_file);
  }
  return true;
}

void Prefetcher::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  *alive_ = false;
  // The timer outlives the prefetcher until the loop has closed it.
  uv_close(reinterpret_cast<uv_handle_t*>(timer_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  pool_.StopAll();
  queue_.clear();
  if (options_.enabled && !options_.measurements_file.empty()) {
    figures_.Write(options_.measurements_file, options_.measurements_kept);
  }
}

std::shared_ptr<const ChainView> Prefetcher::ViewOf(const std::string& chain_id,
                                                    const std::shared_ptr<const Chain>& chain) {
  auto it = views_.find(chain.get());
  if (it != views_.end() && it->second->chain_id == chain_id) return it->second;
  if (views_.size() >= 256) {  // views no run nor expectation holds any more
    std::erase_if(views_, [](const auto& v) { return v.second.use_count() == 1; });
  }
  ChainViewHooks view_hooks{
      .warm_launch =
          [this](const TaskSpec& task) { return hooks_.warm_launch(task, options_.dir); },
      .workers = workers_ != nullptr,
      .stager = stager_ != nullptr};
  std::shared_ptr<const ChainView> view = MakeChainView(chain, chain_id, view_hooks);
  views_[chain.get()] = view;
  return view;
}

// --- watching ---

void Prefetcher::TaskStarted(const std::string& run_id, const std::string& chain_id,
                             const std::shared_ptr<const Chain>& chain, int task) {
  if (!options_.enabled || shut_down_) return;
  ++work_.events;
  int64_t now = clock_();
  std::unique_ptr<ActiveRun>& run = runs_[run_id];
  bool fresh = !run;
  if (fresh) {
    run = std::make_unique<ActiveRun>();
    run->view = ViewOf(chain_id, chain);
    last_run_start_ms_ = now;
    expected_stale_ = true;
  }
  const ChainView& view = *run->view;
  const ChainView::Task& t = view.task(task);
  if (!t.key.empty()) {  // the gaps between its starts make its keep-alive
    TaskFigures& f = figures_.Touch(t.key, chain_id, view.spec(task).task_id, now);
    if (t.process != WarmLevel::kStage) f.level = ToString(t.process);
    if (f.last_start_ms > 0) f.gaps.Add(static_cast<double>(now - f.last_start_ms));
    f.last_start_ms = now;
  }
  if (view.prewarms) {
    if (!run->frontier) run->frontier.emplace(view);
    if (!run->frontier->started(task)) {
      run->frontier->Started(task);
      run->started.push_back(task);
      // A context of a model swapped out since the last plan is rebuilt there, from `started`.
      const Predictor& model = predictions_->model();
      bool current = run->context && run->context->model() == &model &&
                     model_seen_.second == predictions_->model_version();
      if (current) {
        model.Advance(&*run->context, view.spec(task).task_id);
      } else {
        run->context.reset();
      }
      run->last_start_ms = now;
      run->stale = true;
    }
  }
  if (fresh || view.prewarms) SchedulePlan();  // else nothing a plan looks at changed
}

void Prefetcher::RunEnded(const std::string& run_id, const std::string& chain_id,
                          int64_t started_ms) {
  if (!options_.enabled || shut_down_) return;
  ++work_.events;
  runs_.erase(run_id);
  recent_chains_.push_back(chain_id);
  if (recent_chains_.size() > 2) recent_chains_.erase(recent_chains_.begin());
  last_run_start_ms_ = std::max(last_run_start_ms_, started_ms);
  expected_stale_ = true;
  SchedulePlan();
}

void Prefetcher::Wake() {
  if (options_.enabled) SchedulePlan();
}

void Prefetcher::SchedulePlan() {
  if (shut_down_ || plan_pending_) return;
  plan_pending_ = true;
  // A plan due keeps the loop alive; a wake-up for later does not (chaind's server does).
  uv_ref(reinterpret_cast<uv_handle_t*>(timer_));
  uv_timer_start(timer_, OnTimer, 0, 0);
}

void Prefetcher::OnTimer(uv_timer_t* timer) {
  auto* self = static_cast<Prefetcher*>(timer->data);
  self->plan_pending_ = false;
  uv_unref(reinterpret_cast<uv_handle_t*>(timer));
  self->Plan();
}

// --- planning ---

// Forecasts what an event or a model swap made stale: the runs that started something, all of
// them after a swap (their contexts are rebuilt from their starts), the chains expected next.
void Prefetcher::Refresh() {
  const Predictor& model = predictions_->model();
  std::pair<const Predictor*, uint64_t> seen{&model, predictions_->model_version()};
  bool swapped = seen != model_seen_;
  model_seen_ = seen;
  ForecastLimits limits{.candidates = options_.max_candidates,
                        .lookahead = options_.lookahead,
                        .min_probability = options_.min_probability};
  for (auto& [id, run] : runs_) {
    if (!run->frontier) continue;
    if (!run->context || swapped) {
      run->context = model.BeginRun(run->view->chain_id);
      for (int t : run->started) model.Advance(&*run->context, run->view->spec(t).task_id);
      run->stale = true;
    }
    if (!run->stale) continue;
    run->stale = false;
    run->forecasts.clear();
    ForecastRun(model, &*run->context, *run->view, *run->frontier, 1.0,
                static_cast<double>(run->last_start_ms), limits, &run->forecasts, &work_.model);
    ++work_.forecasts;
  }
  if (swapped || expected_stale_) ForecastExpected();
}

void Prefetcher::ForecastExpected() {
  expected_stale_ = false;
  expected_.clear();
  if (recent_chains_.empty()) return;
  const Predictor& model = predictions_->model();
  ForecastLimits limits{.candidates = options_.max_candidates,
                        .lookahead = options_.lookahead,
                        .min_probability = options_.min_probability};
  for (const ChainCandidate& c : model.PredictChains(recent_chains_)) {
    if (c.probability < options_.min_probability) continue;
    std::shared_ptr<const Chain> chain = hooks_.latest_chain(c.chain_id);
    if (!chain) continue;
    Expected e{.view = ViewOf(c.chain_id, chain), .expected_ms = 0, .forecasts = {}};
    if (!e.view->prewarms) continue;
    // Early (the 10th percentile of the gaps between runs): a run sooner than usual is one
    // whose start-up is worth saving too.
    e.expected_ms = static_cast<double>(last_run_start_ms_) +
                    c.expected_in_p10_ms.value_or(c.expected_in_ms.value_or(0));
    RunFrontier frontier(*e.view);
    RunContext context = model.BeginRun(c.chain_id);
    ForecastRun(model, &context, *e.view, frontier, c.probability, e.expected_ms, limits,
                &e.forecasts, &work_.model);
    ++work_.forecasts;
    expected_.push_back(std::move(e));
  }
}

// The desires of `forecasts`, their needs `shift_ms` later (a chain already overdue: its need
// slides with the clock, and it holds no room).
bool Prefetcher::MayBeCached(const ChainView& view, int task) const {
  int budget = kCacheAncestors;
  return MayBeCached(view, task, &budget);
}

bool Prefetcher::MayBeCached(const ChainView& view, int task, int* budget) const {
  const TaskSpec& spec = view.spec(task);
  if (!hooks_.expected_hit || !spec.Cached()) return false;
  if (hooks_.expected_hit(view.chain_id, spec) == false) return false;
  for (int dep : view.task(task).deps) {
    if (!view.spec(dep).Cached()) continue;  // taken to give what it gave before
    if (--*budget < 0) return true;
    if (!MayBeCached(view, dep, budget)) return false;  // it runs: this task's input changes
  }
  return true;
}

void Prefetcher::AddDesires(const std::shared_ptr<const ChainView>& shared,
                            const std::vector<Forecast>& forecasts, bool holds_room,
                            double shift_ms, std::vector<Desire>* out) const {
  const ChainView& view = *shared;
  const double margin = static_cast<double>(options_.margin_ms);
  const int64_t now = clock_();
  auto failed = [&](const std::string& key) {
    auto it = failed_until_.find(key);
    return it != failed_until_.end() && it->second > now;
  };
  for (const Forecast& f : forecasts) {
    const ChainView::Task& t = view.task(f.task);
    Desire d{.key = t.key,
             .view = shared,
             .task = f.task,
             .level = t.process,
             .probability = f.probability,
             .need_ms = f.need_ms + shift_ms,
             .holds_room = holds_room};
    if (t.process != WarmLevel::kStage && figures_.Gains(t.key) && !failed(t.key) &&
        !MayBeCached(view, f.task)) {
      double startup = figures_.StartupMs(t.key);
      d.memory = figures_.MemoryOf(t.key, view.spec(f.task));
      d.keep_alive_ms = figures_.KeepAliveMs(t.key);
      double mb = static_cast<double>(d.memory) / (1 << 20);
      double idle_s = ((1 - d.probability) * static_cast<double>(d.keep_alive_ms) + margin) / 1000;
      d.fire_ms = d.need_ms - startup - margin;
      d.score = d.probability * startup - options_.cost_ms_per_mb_s * mb * idle_s;
      if (d.score > 0) out->push_back(d);
    }
    std::string staged = StageKey(t.key);
    if (t.stages && figures_.Gains(staged) && !failed(staged)) {
      Desire s = d;
      s.key = staged;
      s.level = WarmLevel::kStage;
      s.memory = 0;
      s.keep_alive_ms = figures_.KeepAliveMs(t.key);  // the gaps between the task's starts
      const TaskFigures* tf = figures_.Find(staged);
      s.staged_bytes = tf ? tf->staged_bytes : 0;
      s.fire_ms = s.need_ms - figures_.StartupMs(staged) - margin;
      s.score = s.probability;
      out->push_back(std::move(s));
    }
  }
}

void Prefetcher::Plan() {
  if (shut_down_ || !options_.enabled) return;
  ++work_.plans;
  auto start = std::chrono::steady_clock::now();
  Refresh();
  int64_t now = clock_();
  TrimCache(now);
  PlanInput in;
  for (const auto& [id, run] : runs_) AddDesires(run->view, run->forecasts, true, 0, &in.desires);
  for (const Expected& e : expected_) {
    double shift = std::max(0.0, static_cast<double>(now) - e.expected_ms);
    AddDesires(e.view, e.forecasts, shift == 0, shift, &in.desires);
  }
  in.entries = pool_.Entries();
  for (const Desire& d : in.desires) {
    if (d.level == WarmLevel::kWorker && !in.idle_workers.count(d.key)) {
      in.idle_workers[d.key] = pool_.idle_workers(d.key);
    }
  }
  in.budgets = Budgets();
  in.now_ms = now;
  PlanDecision decision = Decide(std::move(in));
  auto decided = std::chrono::steady_clock::now();
  Carry(std::move(decision));
  work_.deciding_s += std::chrono::duration<double>(decided - start).count();
  work_.doing_s +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - decided).count();
}

PlanBudgets Prefetcher::Budgets() const {
  size_t running = runner_->running();
  return {.processes = options_.max_warm,
          .memory = options_.max_memory_bytes,
          .staged = options_.max_staged_bytes,
          .starting = options_.cores > running ? options_.cores - running : 1,
          .lanes = options_.cores};
}

// Does what the planner decided, and sets the timer for its next plan.
void Prefetcher::Carry(PlanDecision decision) {
  for (uint64_t id : decision.expired) pool_.Stop(id, true);
  for (uint64_t id : decision.evicted) pool_.Stop(id, true);
  for (auto [id, score] : decision.scores) pool_.Score(id, score);
  for (auto [id, until] : decision.extended) pool_.Extend(id, until);
  for (const Desire& d : decision.start) {
    if (!pool_.Start(d)) failed_until_[d.key] = clock_() + 60'000;  // it would fail again now
  }
  queue_ = std::move(decision.queue);
  // MakeRoom made room: this is a bug if it shows (the e2e tests look for it).
  if (pool_.processes() > options_.max_warm || pool_.staged_bytes() > options_.max_staged_bytes) {
    Log(LogLevel::kError, "prefetch: over budget: " + Stats()["warm"].dump());
  }
  if (decision.wake_ms >= 0 && !plan_pending_) {
    uint64_t wait = static_cast<uint64_t>(std::max<int64_t>(0, decision.wake_ms - clock_()));
    uv_timer_start(timer_, OnTimer, wait, 0);
  }
}

// The input cache's TTL: entries unused longer go, on the thread pool, at most once a minute.
void Prefetcher::TrimCache(int64_t now) {
  if (!stager_ || now < next_trim_ms_) return;
  next_trim_ms_ = now + 60'000;
  std::erase_if(failed_until_, [now](const auto& f) { return f.second <= now; });
  InputStager* stager = stager_;
  QueueWork(
      loop_, [stager] { stager->Trim(); }, [] {});
}

// --- taking ---

TaskRunner::Handle Prefetcher::TakeProcess(const std::string& chain_id,
                                           const std::shared_ptr<const Chain>& chain, int task,
                                           std::string* context_file) {
  if (!options_.enabled) return 0;
  std::shared_ptr<const ChainView> view = ViewOf(chain_id, chain);
  const ChainView::Task& t = view->task(task);
  if (t.process != WarmLevel::kSpawn) return 0;
  return pool_.TakeProcess(t.key, figures_.Gains(t.key), context_file);
}

std::string Prefetcher::WorkerKey(const std::string& chain_id,
                                  const std::shared_ptr<const Chain>& chain, int task) {
  return ViewOf(chain_id, chain)->task(task).key;
}

void Prefetcher::WorkerServed(const std::string& key, bool cold, double duration_ms) {
  if (options_.enabled) pool_.WorkerServed(key, cold, duration_ms);
}

void Prefetcher::StageInputs(const std::string& chain_id, const std::shared_ptr<const Chain>& chain,
                             int task, const std::string& dest, StageCancelled cancelled,
                             std::function<void(StageResult)> done) {
  std::shared_ptr<const ChainView> view = ViewOf(chain_id, chain);
  const ChainView::Task& t = view->task(task);
  pool_.StageInputs(StageKey(t.key), chain_id, view->spec(task), dest, options_.enabled && t.stages,
                    std::move(cancelled), std::move(done));
}

// --- figures ---

json Prefetcher::Stats() const {
  json j = figures_.Totals();
  j["enabled"] = options_.enabled;
  j["queue"] = queue_.size();
  j["warm"] = {{"processes", pool_.processes()},
               {"memory_bytes", pool_.memory()},
               {"staged_bytes", pool_.staged_bytes()}};
  j["budgets"] = {{"processes", options_.max_warm},
                  {"memory_bytes", options_.max_memory_bytes},
                  {"staged_bytes", options_.max_staged_bytes},
                  {"ttl_ms", options_.ttl_ms}};
  j["planning"] = {{"events", work_.events},
                   {"plans", work_.plans},
                   {"forecasts", work_.forecasts},
                   {"predictions", work_.model.predictions},
                   {"candidates", work_.model.candidates},
                   {"deciding_seconds", work_.deciding_s},
                   {"doing_seconds", work_.doing_s}};
  return j;
}

json Prefetcher::Status() const {
  json j = Stats();
  json queue = json::array();
  for (const Desire& d : queue_) {
    queue.push_back({{"chain_id", d.view->chain_id},
                     {"task_id", d.spec().task_id},
                     {"level", ToString(d.level)},
                     {"probability", d.probability},
                     {"score", d.score},
                     {"start_in_ms", std::max(0.0, d.fire_ms - static_cast<double>(clock_()))}});
  }
  j["queue"] = std::move(queue);
  j["pool"] = pool_.Json();
  j["tasks"] = figures_.Tasks();
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
  metric("plans_total", "counter", "Plans made (events are coalesced into them).",
         s["planning"]["plans"]);
  metric("candidates_scored_total", "counter", "Candidates the model scored for plans.",
         s["planning"]["candidates"]);
  metric("plan_seconds_total", "counter", "Time plans spent deciding (not starting prewarms).",
         s["planning"]["deciding_seconds"]);
  metric("queue_length", "gauge", "Prewarms wanted and not yet started.", s["queue"]);
  metric("warm_processes", "gauge", "Prewarmed processes and workers alive.",
         s["warm"]["processes"]);
  metric("warm_memory_bytes", "gauge", "Their memory (estimated).", s["warm"]["memory_bytes"]);
  metric("staged_bytes", "gauge", "Bytes staged ahead.", s["warm"]["staged_bytes"]);
  return out.str();
}

}  // namespace chainctl::daemon
