#include "daemon/prefetch/prediction_service.h"

#include <algorithm>
#include <chrono>
#include <tuple>
#include <unordered_map>

#include "daemon/util/log.h"
#include "daemon/util/work_queue.h"

namespace chainctl::daemon {
namespace {

constexpr std::string_view kCurrentKey = "current";
constexpr uint64_t kCheckEveryMs = 1000;

// A history record as training needs it: ids interned, 48 bytes instead of a few hundred.
struct Compact {
  uint32_t chain, run, task;
  int64_t start_ms, end_ms;
  double startup_ms;  // < 0: unknown
  int8_t cold;        // -1 unknown, 0, 1
};

class Interner {
 public:
  uint32_t Id(const std::string& s) {
    auto [it, fresh] = ids_.try_emplace(s, static_cast<uint32_t>(names_.size()));
    if (fresh) names_.push_back(&it->first);
    return it->second;
  }
  const std::string& Name(uint32_t id) const { return *names_[id]; }

 private:
  std::unordered_map<std::string, uint32_t> ids_;
  std::vector<const std::string*> names_;  // into ids_' keys, which do not move
};

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

ChainShape ShapeOfDefinition(const nlohmann::json& definition) {
  ChainShape shape;
  const nlohmann::json& tasks = definition.value("tasks", nlohmann::json::array());
  std::unordered_map<std::string, int> index;
  for (const nlohmann::json& t : tasks) {
    index.emplace(t.value("task_id", ""), static_cast<int>(shape.tasks.size()));
    shape.tasks.push_back(t.value("task_id", ""));
    shape.weights.push_back(t.value("prefetch_weight", 1.0));
    shape.needs_all_deps.push_back(t.value("trigger_rule", "all_success") == "all_success");
  }
  for (const nlohmann::json& t : tasks) {
    std::vector<int>& deps = shape.deps.emplace_back();
    for (const nlohmann::json& d : t.value("dependencies", nlohmann::json::array())) {
      auto it = index.find(d.get<std::string>());
      if (it != index.end()) deps.push_back(it->second);
    }
  }
  return shape;
}

bool TrainFromHistory(History* history, const PredictorParams& params, size_t page_records,
                      Predictor* model, TrainResult* result) {
  auto start = std::chrono::steady_clock::now();
  Interner ids;
  std::vector<Compact> records;
  HistoryQuery query{.limit = page_records};
  std::vector<HistoryRecord> page;
  for (;;) {
    page.clear();
    if (!history->Find(query, &page, &result->error)) return false;
    for (const HistoryRecord& r : page) {
      records.push_back({ids.Id(r.chain_id), ids.Id(r.run_id), ids.Id(r.task_id), r.start_unix_ms,
                         r.end_unix_ms, r.startup_ms.value_or(-1.0),
                         static_cast<int8_t>(r.cold ? (*r.cold ? 1 : 0) : -1)});
      result->through_seq = std::max(result->through_seq, r.seq);
    }
    if (page.size() < page_records) break;
    query.after_seq = page.back().seq;
  }
  std::stable_sort(records.begin(), records.end(), [&ids](const Compact& a, const Compact& b) {
    if (a.start_ms != b.start_ms) return a.start_ms < b.start_ms;
    if (a.end_ms != b.end_ms) return a.end_ms < b.end_ms;
    return a.task != b.task && ids.Name(a.task) < ids.Name(b.task);
  });
  *model = Predictor(params);
  for (const Compact& r : records) {
    Observation o{.chain_id = ids.Name(r.chain),
                  .run_id = ids.Name(r.run),
                  .task_id = ids.Name(r.task),
                  .start_ms = r.start_ms,
                  .end_ms = r.end_ms};
    if (r.cold >= 0) o.cold = r.cold == 1;
    if (r.startup_ms >= 0) o.startup_ms = r.startup_ms;
    model->Learn(o);
  }
  result->records = records.size();
  result->seconds = SecondsSince(start);
  result->ok = true;
  return true;
}

PredictionService::PredictionService(uv_loop_t* loop, Store* store, History* history,
                                     Registry* registry, PredictionOptions options)
    : loop_(loop),
      store_(store),
      history_(history),
      registry_(registry),
      options_(options),
      model_(std::make_unique<Predictor>(options.params)) {}

PredictionService::~PredictionService() {
  *alive_ = false;
  Shutdown();
}

bool PredictionService::Open(std::string* err) {
  std::string value;
  bool found = false;
  if (!store_->Read(
          [&](ReadTxn& txn, std::string* e) {
            return txn.Get(Db::kModel, kCurrentKey, &value, &found, e);
          },
          err)) {
    return false;
  }
  bool current = false;
  if (found) {
    uint8_t version = 0;
    std::string_view payload;
    std::string why;
    nlohmann::json stored;
    Predictor model;
    bool read = DecodeValue(value, 1, "the model", &version, &payload, &why);
    if (read) {
      stored = nlohmann::json::parse(payload, nullptr, false);
      if (stored.is_discarded()) why = "not JSON";
      read = !stored.is_discarded() && Predictor::FromJson(stored["model"], &model, &why);
    }
    if (!read) {
      Log(LogLevel::kWarning, "the stored model does not read (" + why + "): training anew");
    } else {
      current = model.params().ToJson() == options_.params.ToJson();
      *model_ = std::move(model);
      last_.ok = true;
      last_.version = stored.value("version", uint64_t{0});
      last_.records = stored.value("records", uint64_t{0});
      last_.through_seq = stored.value("through_seq", uint64_t{0});
      last_.seconds = stored.value("seconds", 0.0);
      last_.trained_unix_ms = stored.value("trained_unix_ms", int64_t{0});
      if (!current) Log(LogLevel::kInfo, "model parameters changed: training anew");
    }
  }
  std::vector<HistoryRecord> newest;
  if (!history_->Find({.limit = 1, .newest_first = true}, &newest, err)) return false;
  uint64_t last_seq = newest.empty() ? 0 : newest[0].seq;
  timer_ = new uv_timer_t;
  uv_timer_init(loop_, timer_);
  timer_->data = this;
  uv_timer_start(timer_, OnTimer, kCheckEveryMs, kCheckEveryMs);
  uv_unref(reinterpret_cast<uv_handle_t*>(timer_));
  // A model of other parameters is replaced; none is needed while the history is empty.
  if ((found && !current) || last_seq > last_.through_seq) StartTraining();
  return true;
}

void PredictionService::Shutdown() {
  stopped_ = true;
  if (timer_) {
    uv_close(reinterpret_cast<uv_handle_t*>(timer_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    timer_ = nullptr;
  }
}

void PredictionService::Observe(const HistoryRecord& record) {
  model_->Learn(ObservationOf(record));
  if (training_) since_start_.push_back(record);
  if (observed_since_training_++ == 0) first_untrained_ms_ = RealUnixMs();
  MaybeTrain();
}

void PredictionService::Train(std::function<void(const TrainResult&)> done) {
  if (stopped_) {
    done({.error = "chaind is shutting down"});
    return;
  }
  if (training_) {
    again_ = true;
    next_waiting_.push_back(std::move(done));
    return;
  }
  waiting_.push_back(std::move(done));
  StartTraining();
}

void PredictionService::OnTimer(uv_timer_t* timer) {
  static_cast<PredictionService*>(timer->data)->MaybeTrain();
}

void PredictionService::MaybeTrain() {
  if (training_ || stopped_ || observed_since_training_ == 0) return;
  // A training reads the whole history: it waits for a tenth of what the last one read, so
  // that all trainings together read ~11 times the records appended, not (records)^2 / every.
  bool enough = observed_since_training_ >= std::max(options_.train_every, last_.records / 10);
  bool due = RealUnixMs() - first_untrained_ms_ >= static_cast<int64_t>(options_.train_interval_ms);
  if (enough || due) StartTraining();
}

void PredictionService::StartTraining() {
  training_ = true;
  observed_since_training_ = 0;
  since_start_.clear();
  auto model = std::make_shared<std::unique_ptr<Predictor>>(std::make_unique<Predictor>());
  auto result = std::make_shared<TrainResult>();
  History* history = history_;
  Store* store = store_;
  PredictionOptions options = options_;
  uint64_t version = last_.version + 1;
  QueueWork(
      loop_,
      [history, store, options, version, model, result] {
        if (!TrainFromHistory(history, options.params, options.page_records, model->get(),
                              result.get())) {
          return;
        }
        result->version = version;
        result->trained_unix_ms = RealUnixMs();
        nlohmann::json stored = {
            {"version", version},         {"trained_unix_ms", result->trained_unix_ms},
            {"records", result->records}, {"through_seq", result->through_seq},
            {"seconds", result->seconds}, {"model", (*model)->ToJson()}};
        std::string value = EncodeValue(1, stored.dump());
        result->ok = store->Write(
            [&value](WriteTxn& txn, std::string* err) {
              return txn.Put(Db::kModel, kCurrentKey, value, err);
            },
            &result->error);
      },
      [this, alive = alive_, model, result] {
        if (*alive) Finished(std::move(*model), *result);
      });
}

void PredictionService::Finished(std::unique_ptr<Predictor> model, const TrainResult& result) {
  training_ = false;
  if (result.ok && !stopped_) {
    for (const HistoryRecord& r : since_start_) model->Learn(ObservationOf(r));
    model_ = std::move(model);
    last_ = result;
    Log(LogLevel::kInfo, "model " + std::to_string(result.version) + " trained on " +
                             std::to_string(result.records) + " records in " +
                             std::to_string(result.seconds) + " s");
  } else if (!result.ok) {
    Log(LogLevel::kWarning, "model training failed: " + result.error);
  }
  since_start_.clear();
  std::vector<std::function<void(const TrainResult&)>> done;
  done.swap(waiting_);
  waiting_.swap(next_waiting_);
  for (auto& d : done) d(result);
  if (again_ && !stopped_) {
    again_ = false;
    StartTraining();
  }
}

std::optional<ChainShape> PredictionService::ShapeOf(const std::string& chain_id) {
  std::optional<ChainVersion> version;
  std::string err;
  if (!registry_->GetChain(chain_id, 0, &version, &err) || !version) return std::nullopt;
  auto it = shapes_.find(chain_id);
  if (it != shapes_.end() && it->second.first == version->version) return it->second.second;
  if (shapes_.size() >= 256) shapes_.clear();
  ChainShape shape = ShapeOfDefinition(version->definition);
  shapes_[chain_id] = {version->version, shape};
  return shape;
}

nlohmann::json PredictionService::Status() const {
  return {{"version", last_.version},
          {"trained_unix_ms", last_.trained_unix_ms},
          {"records", last_.records},
          {"through_seq", last_.through_seq},
          {"seconds", last_.seconds},
          {"training", training_},
          {"observed_since_training", observed_since_training_},
          {"observations", model_->observations()},
          {"chains", model_->chains()},
          {"contexts", model_->contexts()},
          {"params", model_->params().ToJson()}};
}

}  // namespace chainctl::daemon
