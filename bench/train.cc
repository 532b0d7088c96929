// Training and prediction cost of the predictor (DESIGN.md §5 "Model",
// daemon/prefetch/prediction_service.h). In one run, on a temporary store filled with RECORDS
// synthetic history records (about 50 per run over 10 chains of 10-100 tasks with branches and
// retries; the fill is timed but is not a result), it measures:
//   1. TrainFromHistory over the whole history, against two baselines of the same run: reading
//      every record through History::Find in pages of 10,000 (the decode floor), and
//      Predictor::Learn alone over the same records already in memory and sorted. Median of 3,
//      the three taking turns.
//   2. Per-call latency of PredictTasks (with the chain's ChainShape, and without) and
//      PredictChains with the trained model, contexts taken from the generated runs, against a
//      std::unordered_map<std::string, int> lookup of the context's last task id (for scale).
//      Median over batches, the four taking turns.
//   3. The persisted model: Predictor::ToJson().dump() size, ToJson+dump and parse+FromJson times.
// Prints only; exits 0 unless something fails (store, history, training, model round trip).
//
//   bench_train [--records N=1000000] [--calls N=100000] [--dir DIR (default: a mkdtemp dir,
//   removed at the end)]
#include <stdlib.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/predict/history_record.h"
#include "common/predict/predictor.h"
#include "daemon/prefetch/prediction_service.h"
#include "daemon/store/history.h"
#include "daemon/store/store.h"

using chainctl::ChainShape;
using chainctl::HistoryRecord;
using chainctl::Observation;
using chainctl::Predictor;
using chainctl::PredictorParams;
using chainctl::daemon::History;
using chainctl::daemon::HistoryQuery;
using chainctl::daemon::Store;
using chainctl::daemon::StoreOptions;
using chainctl::daemon::TrainResult;
using Clock = std::chrono::steady_clock;

namespace {

constexpr size_t kFillBatch = 50'000;
constexpr size_t kPageRecords = 10'000;
constexpr int kRounds = 3;
constexpr int kBatches = 10;
constexpr size_t kContextEvery = 20;  // a prediction context from every 20th run

volatile size_t g_sink = 0;  // results of timed calls go here, so that they are not optimised away
std::string g_temp_dir;      // removed at the end, also by Die

void Sink(size_t x) { g_sink = g_sink + x; }

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

[[noreturn]] void Die(const std::string& what) {
  fprintf(stderr, "bench_train: %s\n", what.c_str());
  if (!g_temp_dir.empty()) std::filesystem::remove_all(g_temp_dir);
  exit(1);
}

// A small deterministic generator (splitmix64), so every run makes the same history.
class Rng {
 public:
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }  // [0, 1)
  double Between(double lo, double hi) { return lo + (hi - lo) * Uniform(); }
  size_t Below(size_t n) { return static_cast<size_t>(Next() % n); }
  bool Chance(double p) { return Uniform() < p; }

 private:
  uint64_t state_ = 42;
};

// ---- The synthetic history ---------------------------------------------------------------

// A chain's definition: a DAG whose optional tasks (branches taken in some runs only) are
// leaves, and each task's typical duration.
struct ChainDef {
  std::string id;
  ChainShape shape;
  std::vector<bool> optional;
  std::vector<double> mean_s;
};

std::vector<ChainDef> MakeChains(Rng* rng) {
  const char* names[] = {"nightly-etl", "web-build",   "ml-train",   "report-daily",
                         "db-backup",   "ingest-logs", "deploy-api", "index-search",
                         "billing-run", "data-quality"};
  const char* verbs[] = {"fetch",     "extract", "validate", "transform", "join",
                         "aggregate", "train",   "score",    "export",    "notify"};
  std::vector<ChainDef> chains;
  for (size_t c = 0; c < 10; ++c) {
    ChainDef chain{.id = names[c], .shape = {}, .optional = {}, .mean_s = {}};
    size_t n = 10 + 10 * c;  // 10, 20, ..., 100 tasks
    for (size_t i = 0; i < n; ++i) {
      char task[32];
      snprintf(task, sizeof task, "%s-%03zu", verbs[rng->Below(10)], i);
      chain.shape.tasks.push_back(task);
      chain.shape.weights.push_back(1.0);
      chain.optional.push_back(i > 0 && rng->Chance(0.15));
      chain.mean_s.push_back(rng->Between(0.5, 60));
      std::vector<int>& deps = chain.shape.deps.emplace_back();
      for (int k = 0; i > 0 && k < (rng->Chance(0.3) ? 2 : 1); ++k) {
        // One of the last 5 tasks that are not optional (task 0 never is).
        size_t d = i - 1 - rng->Below(std::min<size_t>(i, 5));
        while (chain.optional[d]) --d;
        if (std::find(deps.begin(), deps.end(), static_cast<int>(d)) == deps.end()) {
          deps.push_back(static_cast<int>(d));
        }
      }
      chain.shape.needs_all_deps.push_back(true);
    }
    chains.push_back(std::move(chain));
  }
  return chains;
}

// The order in which one run starts its chain's tasks: a topological order, mostly the ready
// task with the lowest index, sometimes another ready one; optional tasks run in 70% of runs.
std::vector<size_t> RunOrder(const ChainDef& chain, Rng* rng) {
  size_t n = chain.shape.tasks.size();
  std::vector<bool> runs(n), done(n);
  for (size_t i = 0; i < n; ++i) runs[i] = !chain.optional[i] || rng->Chance(0.7);
  std::vector<size_t> order;
  for (;;) {
    std::vector<size_t> ready;
    for (size_t i = 0; i < n; ++i) {
      bool deps_done = std::all_of(chain.shape.deps[i].begin(), chain.shape.deps[i].end(),
                                   [&](int d) { return done[static_cast<size_t>(d)]; });
      if (runs[i] && !done[i] && deps_done) ready.push_back(i);
    }
    if (ready.empty()) return order;
    size_t next = rng->Chance(0.7) ? ready[0] : ready[rng->Below(ready.size())];
    done[next] = true;
    order.push_back(next);
  }
}

// A generated record, compact, for the learn-only baseline (ids: indices into the chains'
// tasks and into Generated::run_ids).
struct Kept {
  uint32_t chain, run, task;
  int64_t start_ms, end_ms;
  double startup_ms;  // < 0: unknown
  int8_t cold;        // -1: unknown
};

// A context of a prediction, taken from a generated run: its chain, the tasks it had started
// and the chains of the two runs before it.
struct Context {
  size_t chain;
  std::vector<std::string> started;
  std::vector<std::string> previous_chains;
};

struct Generated {
  std::vector<ChainDef> chains;
  std::vector<std::string> run_ids;
  std::vector<Kept> kept;
  std::vector<Context> contexts;
};

HistoryRecord MakeRecord(const ChainDef& chain, const std::string& run_id, size_t task,
                         int64_t start_ms, bool first_in_run, int attempt, Rng* rng) {
  HistoryRecord r;
  r.run_id = run_id;
  r.chain_id = chain.id;
  r.task_id = chain.shape.tasks[task];
  r.chain_version = 1;
  r.task_version = 1;
  r.attempt = attempt;
  double seconds = chain.mean_s[task] * rng->Between(0.5, 1.5);
  r.start_unix_ms = start_ms;
  r.end_unix_ms = start_ms + static_cast<int64_t>(seconds * 1000);
  bool failed = attempt == 1 && rng->Chance(0.02);  // then retried once
  r.status = failed ? "failed" : "succeeded";
  if (failed) r.cause = "exit 1";
  r.cpu_s = seconds * rng->Between(0.3, 0.9);
  if (first_in_run || rng->Chance(0.4)) {
    r.cold = first_in_run || rng->Chance(0.1);
    r.startup_ms = *r.cold ? rng->Between(500, 1500) : rng->Between(5, 50);
  }
  if (rng->Chance(0.5)) r.max_rss_kb = 20'000 + static_cast<int64_t>(rng->Below(500'000));
  return r;
}

// Appends a batch to the history (one transaction, fsync) and empties it.
void Flush(History* history, std::vector<HistoryRecord>* batch) {
  std::string err;
  if (!history->AppendNow(batch, &err)) Die("AppendNow: " + err);
  batch->clear();
}

// Fills `history` with `records` records, run after run; runs start 30-90 s apart and overlap.
Generated Fill(History* history, size_t records) {
  Rng rng;
  Generated g;
  g.chains = MakeChains(&rng);
  g.kept.reserve(records);
  std::vector<HistoryRecord> batch;
  batch.reserve(kFillBatch + 200);
  std::vector<size_t> run_chains;
  int64_t run_start = 1'767'225'600'000;  // 2026-01-01
  size_t chain = 0;
  while (g.kept.size() < records) {
    chain = rng.Chance(0.6) ? (chain + 1) % g.chains.size() : rng.Below(g.chains.size());
    const ChainDef& def = g.chains[chain];
    char run_id[32];
    snprintf(run_id, sizeof run_id, "run-%06zu", g.run_ids.size() + 1);
    g.run_ids.push_back(run_id);
    run_start += static_cast<int64_t>(rng.Between(30'000, 90'000));
    int64_t t = run_start;
    std::vector<std::string> started;
    for (size_t task : RunOrder(def, &rng)) {
      for (int attempt = 1; attempt <= 2 && g.kept.size() < records; ++attempt) {
        HistoryRecord r = MakeRecord(def, run_id, task, t, started.empty(), attempt, &rng);
        g.kept.push_back({static_cast<uint32_t>(chain), static_cast<uint32_t>(g.run_ids.size() - 1),
                          static_cast<uint32_t>(task), r.start_unix_ms, r.end_unix_ms,
                          r.startup_ms.value_or(-1.0),
                          static_cast<int8_t>(r.cold ? (*r.cold ? 1 : 0) : -1)});
        started.push_back(r.task_id);
        t = r.end_unix_ms + static_cast<int64_t>(rng.Between(50, 2000));
        bool retry = r.status == "failed";
        batch.push_back(std::move(r));
        if (!retry) break;
      }
    }
    if (run_chains.size() % kContextEvery == 0 && !started.empty()) {
      Context c{.chain = chain, .started = {}, .previous_chains = {}};
      c.started.assign(started.begin(),
                       started.begin() + static_cast<std::ptrdiff_t>(rng.Below(started.size())));
      for (size_t k = std::min<size_t>(run_chains.size(), 2); k > 0; --k) {
        c.previous_chains.push_back(g.chains[run_chains[run_chains.size() - k]].id);
      }
      g.contexts.push_back(std::move(c));
    }
    run_chains.push_back(chain);
    if (batch.size() >= kFillBatch) Flush(history, &batch);
  }
  if (!batch.empty()) Flush(history, &batch);
  return g;
}

// ---- 1. Training -----------------------------------------------------------------------

// Baseline (a): every record decoded through History::Find, in pages.
double ReadAll(History* history, size_t expected) {
  auto start = Clock::now();
  HistoryQuery query{.limit = kPageRecords};
  std::vector<HistoryRecord> page;
  size_t total = 0;
  std::string err;
  for (;;) {
    if (!history->Find(query, &page, &err)) Die("Find: " + err);
    total += page.size();
    if (page.size() < kPageRecords) break;
    query.after_seq = page.back().seq;
  }
  double seconds = SecondsSince(start);
  if (total != expected) Die("Find read " + std::to_string(total) + " records");
  return seconds;
}

// The generated records as Observations, sorted as TrainFromHistory sorts them.
std::vector<Observation> SortedObservations(const Generated& g) {
  std::vector<Observation> obs;
  obs.reserve(g.kept.size());
  for (const Kept& k : g.kept) {
    Observation o{.chain_id = g.chains[k.chain].id,
                  .run_id = g.run_ids[k.run],
                  .task_id = g.chains[k.chain].shape.tasks[k.task],
                  .start_ms = k.start_ms,
                  .end_ms = k.end_ms};
    if (k.cold >= 0) o.cold = k.cold == 1;
    if (k.startup_ms >= 0) o.startup_ms = k.startup_ms;
    obs.push_back(o);
  }
  std::stable_sort(obs.begin(), obs.end(), [](const Observation& a, const Observation& b) {
    if (a.start_ms != b.start_ms) return a.start_ms < b.start_ms;
    if (a.end_ms != b.end_ms) return a.end_ms < b.end_ms;
    return a.task_id < b.task_id;
  });
  return obs;
}

// Baseline (b): learning alone.
double LearnOnly(const std::vector<Observation>& obs, Predictor* model) {
  auto start = Clock::now();
  *model = Predictor(PredictorParams{});
  for (const Observation& o : obs) model->Learn(o);
  return SecondsSince(start);
}

double Train(History* history, Predictor* model, size_t expected) {
  TrainResult result;
  auto start = Clock::now();
  if (!chainctl::daemon::TrainFromHistory(history, PredictorParams{}, kPageRecords, model,
                                          &result)) {
    Die("TrainFromHistory: " + result.error);
  }
  double seconds = SecondsSince(start);
  if (result.records != expected) Die("trained on " + std::to_string(result.records));
  return seconds;
}

// ---- 2. Prediction latency ---------------------------------------------------------------

struct Latency {
  const char* name;
  std::vector<double> micros;  // per call, one per batch
};

template <typename Call>
double MicrosPerCall(size_t calls, const std::vector<Context>& contexts, Call call) {
  auto start = Clock::now();
  for (size_t i = 0; i < calls; ++i) call(contexts[i % contexts.size()]);
  return std::chrono::duration<double, std::micro>(Clock::now() - start).count() /
         static_cast<double>(calls);
}

std::vector<Latency> MeasurePredictions(const Predictor& model, const Generated& g, size_t calls) {
  std::unordered_map<std::string, int> ids{{"begin", 0}};
  for (const ChainDef& c : g.chains) {
    for (const std::string& t : c.shape.tasks) ids.emplace(t, static_cast<int>(ids.size()));
  }
  const std::string begin = "begin";
  std::vector<Latency> rows = {{"PredictTasks, with the chain's ChainShape", {}},
                               {"PredictTasks, without a shape", {}},
                               {"PredictChains, after the 2 runs before", {}},
                               {"baseline: unordered_map find, last task id", {}}};
  size_t per_batch = std::max<size_t>(calls / kBatches, 1);
  for (int b = 0; b < kBatches; ++b) {
    rows[0].micros.push_back(MicrosPerCall(per_batch, g.contexts, [&](const Context& c) {
      Sink(model.PredictTasks(g.chains[c.chain].id, c.started, &g.chains[c.chain].shape).size());
    }));
    rows[1].micros.push_back(MicrosPerCall(per_batch, g.contexts, [&](const Context& c) {
      Sink(model.PredictTasks(g.chains[c.chain].id, c.started, nullptr).size());
    }));
    rows[2].micros.push_back(MicrosPerCall(per_batch, g.contexts, [&](const Context& c) {
      Sink(model.PredictChains(c.previous_chains).size());
    }));
    rows[3].micros.push_back(MicrosPerCall(per_batch, g.contexts, [&](const Context& c) {
      auto it = ids.find(c.started.empty() ? begin : c.started.back());
      Sink(static_cast<size_t>(it == ids.end() ? -1 : it->second));
    }));
  }
  return rows;
}

// ---- Output ------------------------------------------------------------------------------

void PrintTraining(size_t records, const std::vector<double>& read,
                   const std::vector<double>& learn, const std::vector<double>& train) {
  auto row = [](const char* name, const std::vector<double>& s) {
    printf("  %-50s", name);
    for (double x : s) printf(" %7.2f", x);
    printf("   median %6.2f s\n", Median(s));
  };
  printf("training, %d rounds taking turns, seconds:\n", kRounds);
  row("read: History::Find, pages of 10,000", read);
  row("learn only: Predictor::Learn, in memory, sorted", learn);
  row("TrainFromHistory (read, sort, learn)", train);
  double t = Median(train), r = Median(read), l = Median(learn);
  printf(
      "train %.2gM records: %.2f s (goal < 10 s); %.2fx reading them (%.2f s); %.2fx learning"
      " alone (%.2f s)\n",
      static_cast<double>(records) / 1e6, t, t / r, r, t / l, l);
}

void PrintLatency(const std::vector<Latency>& rows, size_t calls, size_t contexts) {
  printf(
      "prediction, %zu calls per figure in %d batches taking turns, cycling %zu contexts from"
      " the runs; microseconds per call (median of the batches):\n",
      calls, kBatches, contexts);
  double base = Median(rows.back().micros);
  for (const Latency& r : rows) {
    double m = Median(r.micros);
    printf("  %-46s %9.3f us  %8.0fx the baseline\n", r.name, m, m / base);
  }
}

void MeasureModel(const Predictor& model) {
  std::vector<double> dump_s, load_s;
  std::string text;
  for (int r = 0; r < kRounds; ++r) {
    auto start = Clock::now();
    text = model.ToJson().dump();
    dump_s.push_back(SecondsSince(start));
    start = Clock::now();
    Predictor back;
    std::string err;
    if (!Predictor::FromJson(nlohmann::json::parse(text), &back, &err)) Die("FromJson: " + err);
    load_s.push_back(SecondsSince(start));
    if (back.observations() != model.observations()) Die("FromJson lost observations");
  }
  printf(
      "persisted model: %zu bytes of JSON (%.1f MiB; %zu chains, %zu contexts); ToJson+dump"
      " %.3f s, parse+FromJson %.3f s (median of %d)\n",
      text.size(), static_cast<double>(text.size()) / (1 << 20), model.chains(), model.contexts(),
      Median(dump_s), Median(load_s), kRounds);
}

// ---- main --------------------------------------------------------------------------------

struct Args {
  size_t records = 1'000'000;
  size_t calls = 100'000;
  std::string dir;  // "": a temporary one
};

Args ParseArgs(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    const char* value = i + 1 < argc ? argv[i + 1] : nullptr;
    if (arg == "--records" && value) {
      a.records = strtoull(value, nullptr, 10);
    } else if (arg == "--calls" && value) {
      a.calls = strtoull(value, nullptr, 10);
    } else if (arg == "--dir" && value) {
      a.dir = value;
    } else {
      fprintf(stderr, "usage: bench_train [--records N=1000000] [--calls N=100000] [--dir DIR]\n");
      exit(2);
    }
    ++i;
  }
  if (a.records == 0 || a.calls == 0) Die("--records and --calls must be > 0");
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  Args args = ParseArgs(argc, argv);
  std::string dir = args.dir;
  if (dir.empty()) {
    const char* base = getenv("TMPDIR");
    dir = std::string(base && *base ? base : "/tmp") + "/chainctl-bench-train.XXXXXX";
    if (!mkdtemp(dir.data())) Die("mkdtemp: " + std::string(strerror(errno)));
    g_temp_dir = dir;
  }
  std::string err;
  std::unique_ptr<Store> store = Store::Open(StoreOptions{.dir = dir + "/store"}, &err);
  if (!store) Die("Store::Open: " + err);
  History history(store.get(),
                  std::max<uint64_t>(chainctl::daemon::kDefaultHistoryRetention, args.records));

  auto fill_start = Clock::now();
  Generated g = Fill(&history, args.records);
  double fill_s = SecondsSince(fill_start);
  std::error_code ec;
  auto mdb_bytes = std::filesystem::file_size(dir + "/store/data.mdb", ec);
  printf(
      "bench_train: %zu history records, %zu runs of %zu chains (10-100 tasks); filled in"
      " %.1f s with AppendNow in batches of %zu (not a result); data.mdb %.0f MiB\n",
      g.kept.size(), g.run_ids.size(), g.chains.size(), fill_s, kFillBatch,
      ec ? 0.0 : static_cast<double>(mdb_bytes) / (1 << 20));

  std::vector<Observation> sorted = SortedObservations(g);
  std::vector<double> read_s, learn_s, train_s;
  Predictor learned, trained;
  for (int r = 0; r < kRounds; ++r) {
    read_s.push_back(ReadAll(&history, g.kept.size()));
    learn_s.push_back(LearnOnly(sorted, &learned));
    train_s.push_back(Train(&history, &trained, g.kept.size()));
  }
  if (learned.observations() != trained.observations()) Die("learn-only and trained models differ");
  PrintTraining(g.kept.size(), read_s, learn_s, train_s);

  PrintLatency(MeasurePredictions(trained, g, args.calls), args.calls, g.contexts.size());
  MeasureModel(trained);
  store.reset();
  if (!g_temp_dir.empty()) std::filesystem::remove_all(g_temp_dir);
  return 0;
}
