// The predictor in chaind (DESIGN.md §5 "Model"): keeps the current model
// (common/predict/predictor.h), trains a new one from the whole history on the thread pool,
// persists it and swaps it in, and updates the current one online with every record appended
// between trainings.
//
// Training. A training reads every history record (in pages, off the loop), sorts them by
// (start, end, task_id), learns them into a fresh model, stores the model in the `model`
// database (key "current", below) and hands it to the loop, which replays the records observed
// online since the training began and swaps it in. One training at a time; a request during
// one is served by the next. Trainings start:
//   - at Open, when history has records the persisted model has not learned (or its parameters
//     differ from the configured ones);
//   - once train_every records were observed since the last training began, or a tenth of
//     the records the last training read if that is more (the cost of a training grows with
//     the history; this keeps the work of all trainings linear in the records appended);
//   - train_interval_ms after a record observed since the last training, at the latest;
//   - on Train (POST /model/train, `chainctl model train`).
// A record committed while a training starts may be learned twice or not at all until the next
// training; nothing is lost for longer.
//
// Layout of the `model` database (store.h):
//   "current"  1: JSON {"version": 1, 2, ... (each training +1), "trained_unix_ms",
//                 "records": learned, "through_seq": the last history seq learned,
//                 "seconds": training time, "model": Predictor::ToJson()}
//
// Threads: everything here runs on the loop thread; the training's work touches only the store
// (which is thread-safe), the history and its own data.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/predict/history_record.h"
#include "common/predict/predictor.h"
#include "daemon/store/history.h"
#include "daemon/store/registry.h"
#include "daemon/store/store.h"

namespace chainctl::daemon {

struct PredictionOptions {
  PredictorParams params{};
  uint64_t train_every = 1000;  // records observed since the last training began (at least)
  uint64_t train_interval_ms = 600'000;  // at the latest after a record not trained on
  size_t page_records = 10'000;          // history records read per read transaction
};

// What a training did.
struct TrainResult {
  bool ok = false;
  std::string error;
  uint64_t version = 0;      // of the model it made
  uint64_t records = 0;      // learned
  uint64_t through_seq = 0;  // the last history seq learned
  double seconds = 0;        // reading, sorting and learning
  int64_t trained_unix_ms = 0;
};

// Reads the whole history into a fresh model: what a training does, without storing it. Public
// for the benchmark. Blocking.
bool TrainFromHistory(History* history, const PredictorParams& params, size_t page_records,
                      Predictor* model, TrainResult* result);

class PredictionService {
 public:
  // `store`, `history` and `registry` are not owned and outlive the service.
  PredictionService(uv_loop_t* loop, Store* store, History* history, Registry* registry,
                    PredictionOptions options);
  PredictionService(const PredictionService&) = delete;
  PredictionService& operator=(const PredictionService&) = delete;
  ~PredictionService();

  // Reads the persisted model and starts the periodic check; queues a training if the model is
  // behind the history. A model that does not read is logged and replaced by a training.
  bool Open(std::string* err);
  // Stops the periodic check; a training in flight ends, but its model is not swapped in.
  void Shutdown();

  // A record appended to the history: learned online at once.
  void Observe(const HistoryRecord& record);
  // Trains now, or after the training in flight; `done` gets the result on the loop.
  void Train(std::function<void(const TrainResult&)> done);

  const Predictor& model() const { return *model_; }
  uint64_t model_version() const { return last_.version; }  // 0: never trained
  // The definition's shape of the latest version of `chain_id` (cached by version); nullopt if
  // the chain is not in the registry.
  std::optional<ChainShape> ShapeOf(const std::string& chain_id);

  // {"version", "trained_unix_ms", "records", "through_seq", "seconds", "training",
  //  "observed_since_training", "observations", "chains", "contexts", "params"}
  nlohmann::json Status() const;

 private:
  void MaybeTrain();
  void StartTraining();
  void Finished(std::unique_ptr<Predictor> model, const TrainResult& result);
  static void OnTimer(uv_timer_t* timer);

  uv_loop_t* loop_;
  Store* store_;
  History* history_;
  Registry* registry_;
  PredictionOptions options_;
  std::unique_ptr<Predictor> model_;
  TrainResult last_;  // the model's training (version 0: never trained)
  bool training_ = false;
  bool again_ = false;  // another training was asked for during this one
  bool stopped_ = false;
  std::vector<std::function<void(const TrainResult&)>> waiting_, next_waiting_;
  // Records observed since the training in flight began (replayed into its model).
  std::vector<HistoryRecord> since_start_;
  uint64_t observed_since_training_ = 0;
  int64_t first_untrained_ms_ = 0;  // when the oldest record not trained on was observed
  uv_timer_t* timer_ = nullptr;
  std::map<std::string, std::pair<int, ChainShape>> shapes_;  // by chain: version, shape
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// The shape of a stored chain definition (ChainToJson form): tasks, prefetch weights,
// dependencies and trigger rules.
ChainShape ShapeOfDefinition(const nlohmann::json& definition);

}  // namespace chainctl::daemon
