#include "common/chain/chain.h"

#include <array>
#include <utility>

namespace chainctl {
namespace {

template <typename E, size_t N>
using NameTable = std::array<std::pair<E, const char*>, N>;

constexpr NameTable<PrewarmLevel, 3> kPrewarm = {{{PrewarmLevel::kOff, "off"},
                                                  {PrewarmLevel::kStage, "stage"},
                                                  {PrewarmLevel::kSpawn, "spawn"}}};
constexpr NameTable<TaskMode, 2> kMode = {
    {{TaskMode::kOneshot, "oneshot"}, {TaskMode::kWorker, "worker"}}};
constexpr NameTable<TriggerRule, 3> kRule = {{{TriggerRule::kAllSuccess, "all_success"},
                                              {TriggerRule::kAllDone, "all_done"},
                                              {TriggerRule::kOneSuccess, "one_success"}}};
constexpr NameTable<ConditionOp, 10> kOp = {{{ConditionOp::kEq, "eq"},
                                             {ConditionOp::kNe, "ne"},
                                             {ConditionOp::kGt, "gt"},
                                             {ConditionOp::kGe, "ge"},
                                             {ConditionOp::kLt, "lt"},
                                             {ConditionOp::kLe, "le"},
                                             {ConditionOp::kIn, "in"},
                                             {ConditionOp::kExists, "exists"},
                                             {ConditionOp::kNotExists, "not_exists"},
                                             {ConditionOp::kMatches, "matches"}}};

template <typename E, size_t N>
const char* NameOf(const NameTable<E, N>& table, E value) {
  for (const auto& [v, name] : table) {
    if (v == value) return name;
  }
  return "?";
}

template <typename E, size_t N>
std::optional<E> ValueOf(const NameTable<E, N>& table, std::string_view name) {
  for (const auto& [v, n] : table) {
    if (name == n) return v;
  }
  return std::nullopt;
}

nlohmann::json TaskToJson(const TaskSpec& t) {
  const TaskSpec defaults;
  nlohmann::json j = {{"task_id", t.task_id}};
  if (!t.description.empty()) j["description"] = t.description;
  if (!t.executable_code_location.empty())
    j["executable_code_location"] = t.executable_code_location;
  if (!t.command.empty()) j["command"] = t.command;
  if (!t.args.empty()) j["args"] = t.args;
  if (!t.env.empty()) j["env"] = t.env;
  if (t.input_schema != true) j["input_schema"] = t.input_schema;
  if (t.output_schema != true) j["output_schema"] = t.output_schema;
  if (!t.dependencies.empty()) j["dependencies"] = t.dependencies;
  const ResourceRequirements& r = t.resource_requirements;
  nlohmann::json res = nlohmann::json::object();
  if (r.cpu_millis != 0) {
    res["cpu"] = r.cpu_millis % 1000 == 0 ? nlohmann::json(r.cpu_millis / 1000)
                                          : nlohmann::json(std::to_string(r.cpu_millis) + "m");
  }
  if (r.memory_bytes != 0) res["memory"] = FormatSize(r.memory_bytes);
  if (r.gpu != 0) res["gpu"] = r.gpu;
  if (r.timeout) res["timeout"] = FormatDuration(*r.timeout);
  if (r.max_output_bytes != defaults.resource_requirements.max_output_bytes) {
    res["max_output"] = FormatSize(r.max_output_bytes);
  }
  if (!res.empty()) j["resource_requirements"] = res;
  if (t.prefetch_weight != defaults.prefetch_weight) j["prefetch_weight"] = t.prefetch_weight;
  if (t.prewarm != defaults.prewarm) j["prewarm"] = ToString(t.prewarm);
  if (t.mode != defaults.mode) j["mode"] = ToString(t.mode);
  const RetryPolicy& rp = t.retry;
  const RetryPolicy& rd = defaults.retry;
  if (rp.max_attempts != rd.max_attempts || rp.initial_backoff != rd.initial_backoff ||
      rp.max_backoff != rd.max_backoff || rp.multiplier != rd.multiplier) {
    j["retry"] = {{"max_attempts", rp.max_attempts},
                  {"initial_backoff", FormatDuration(rp.initial_backoff)},
                  {"max_backoff", FormatDuration(rp.max_backoff)},
                  {"multiplier", rp.multiplier}};
  }
  if (!t.when.empty()) {
    nlohmann::json when = nlohmann::json::array();
    for (const Condition& c : t.when) {
      nlohmann::json cj = {{"path", c.path}, {"op", ToString(c.op)}};
      if (c.op != ConditionOp::kExists && c.op != ConditionOp::kNotExists) cj["value"] = c.value;
      when.push_back(std::move(cj));
    }
    j["when"] = std::move(when);
  }
  if (t.trigger_rule != defaults.trigger_rule) j["trigger_rule"] = ToString(t.trigger_rule);
  if (!t.input_files.empty()) j["inputs"] = {{"files", t.input_files}};
  if (t.link_inputs) j["inputs"]["link"] = true;
  if (!t.input_map.empty()) j["input_map"] = t.input_map;
  if (!t.working_dir.empty()) j["working_dir"] = t.working_dir;
  if (!t.sources.empty()) j["sources"] = t.sources;
  if (!t.outputs.empty()) j["outputs"] = t.outputs;
  if (t.cache) j["cache"] = *t.cache ? "on" : "off";  // as written: Cached() follows from these
  return j;
}

}  // namespace

const char* ToString(PrewarmLevel v) { return NameOf(kPrewarm, v); }
const char* ToString(TaskMode v) { return NameOf(kMode, v); }
const char* ToString(TriggerRule v) { return NameOf(kRule, v); }
const char* ToString(ConditionOp v) { return NameOf(kOp, v); }
std::optional<PrewarmLevel> ParsePrewarmLevel(std::string_view s) { return ValueOf(kPrewarm, s); }
std::optional<TaskMode> ParseTaskMode(std::string_view s) { return ValueOf(kMode, s); }
std::optional<TriggerRule> ParseTriggerRule(std::string_view s) { return ValueOf(kRule, s); }
std::optional<ConditionOp> ParseConditionOp(std::string_view s) { return ValueOf(kOp, s); }

int Chain::FindTask(std::string_view task_id) const {
  for (size_t i = 0; i < tasks.size(); ++i) {
    if (tasks[i].task_id == task_id) return static_cast<int>(i);
  }
  return -1;
}

nlohmann::json ChainToJson(const Chain& chain) {
  nlohmann::json j = nlohmann::json::object();
  if (!chain.chain_id.empty()) j["chain_id"] = chain.chain_id;
  if (!chain.description.empty()) j["description"] = chain.description;
  if (chain.timeout) j["timeout"] = FormatDuration(*chain.timeout);
  for (auto [key, value] :
       {std::pair{"source_dir", &chain.source_dir}, std::pair{"working_dir", &chain.working_dir},
        std::pair{"env_file", &chain.env_file}}) {
    if (!value->empty()) j[key] = *value;
  }
  j["tasks"] = nlohmann::json::array();
  for (const TaskSpec& t : chain.tasks) j["tasks"].push_back(TaskToJson(t));
  return j;
}

}  // namespace chainctl
