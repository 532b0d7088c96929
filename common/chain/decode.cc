// JSON document -> Chain. Values of the wrong type are skipped here: the
// schema check has reported them.
#include <cmath>

#include "common/chain/internal.h"
#include "common/json_pointer.h"

namespace chainctl::internal {
namespace {

using nlohmann::json;

class Decoder {
 public:
  explicit Decoder(Reporter* report) : report_(report) {}

  Chain Decode(const json& root);

 private:
  TaskSpec DecodeTask(const json& j, const std::string& at);
  void DecodeResources(const json& j, const std::string& at, ResourceRequirements* r);
  void DecodeRetry(const json& j, const std::string& at, RetryPolicy* r);
  void DecodeWhen(const json& j, const std::string& at, std::vector<Condition>* out);
  std::optional<Condition> DecodeCondition(const json& j, const std::string& at);

  // Field readers: true if `key` is present with the right type.
  static const json* Field(const json& obj, const char* key) {
    auto it = obj.find(key);
    return it == obj.end() ? nullptr : &*it;
  }
  static void String(const json& obj, const char* key, std::string* out) {
    const json* v = Field(obj, key);
    if (v && v->is_string()) *out = v->get<std::string>();
  }
  static void Strings(const json& obj, const char* key, std::vector<std::string>* out) {
    const json* v = Field(obj, key);
    if (!v || !v->is_array()) return;
    for (const json& s : *v) {
      if (s.is_string()) out->push_back(s.get<std::string>());
    }
  }
  static void StringMap(const json& obj, const char* key, std::map<std::string, std::string>* out) {
    const json* v = Field(obj, key);
    if (!v || !v->is_object()) return;
    for (const auto& [k, s] : v->items()) {
      if (s.is_string()) (*out)[k] = s.get<std::string>();
    }
  }
  void Duration(const json& obj, const char* key, const std::string& at, bool positive,
                std::optional<chainctl::Duration>* out);
  void Size(const json& obj, const char* key, const std::string& at, uint64_t* out);
  template <typename E>
  static void Enum(const json& obj, const char* key, std::optional<E> (*parse)(std::string_view),
                   E* out) {
    const json* v = Field(obj, key);
    if (!v || !v->is_string()) return;
    if (auto e = parse(v->get<std::string>())) *out = *e;
  }

  Reporter* report_;
};

void Decoder::Duration(const json& obj, const char* key, const std::string& at, bool positive,
                       std::optional<chainctl::Duration>* out) {
  const json* v = Field(obj, key);
  if (!v || !v->is_string()) return;
  std::string err;
  std::string here = at + "/" + key;
  auto d = ParseDuration(v->get<std::string>(), &err);
  if (!d) {
    report_->At(here, err);
  } else if (positive && d->count() == 0) {
    report_->At(here, std::string(key) + " must be longer than 0");
  } else {
    *out = d;
  }
}

void Decoder::Size(const json& obj, const char* key, const std::string& at, uint64_t* out) {
  const json* v = Field(obj, key);
  std::string here = at + "/" + key;
  if (v && v->is_number_integer()) {
    if (v->is_number_unsigned() || v->get<int64_t>() >= 0) {
      *out = v->get<uint64_t>();
    } else {
      report_->At(here, "size must not be negative");
    }
  } else if (v && v->is_string()) {
    std::string err;
    if (auto bytes = ParseSize(v->get<std::string>(), &err)) {
      *out = *bytes;
    } else {
      report_->At(here, err);
    }
  }
}

Chain Decoder::Decode(const json& root) {
  Chain chain;
  if (!root.is_object()) return chain;
  String(root, "chain_id", &chain.chain_id);
  String(root, "description", &chain.description);
  Duration(root, "timeout", "", true, &chain.timeout);
  String(root, "source_dir", &chain.source_dir);
  String(root, "working_dir", &chain.working_dir);
  String(root, "env_file", &chain.env_file);
  const json* tasks = Field(root, "tasks");
  if (tasks && tasks->is_array()) {
    for (size_t i = 0; i < tasks->size(); ++i) {
      chain.tasks.push_back(DecodeTask((*tasks)[i], "/tasks/" + std::to_string(i)));
    }
  }
  return chain;
}

TaskSpec Decoder::DecodeTask(const json& j, const std::string& at) {
  TaskSpec t;
  if (!j.is_object()) return t;
  String(j, "task_id", &t.task_id);
  String(j, "description", &t.description);
  String(j, "executable_code_location", &t.executable_code_location);
  String(j, "command", &t.command);
  Strings(j, "args", &t.args);
  StringMap(j, "env", &t.env);
  String(j, "working_dir", &t.working_dir);
  for (auto [key, schema] :
       {std::pair{"input_schema", &t.input_schema}, std::pair{"output_schema", &t.output_schema}}) {
    const json* v = Field(j, key);
    if (v && (v->is_object() || v->is_boolean())) *schema = *v;
  }
  Strings(j, "dependencies", &t.dependencies);
  if (const json* r = Field(j, "resource_requirements"); r && r->is_object()) {
    DecodeResources(*r, at + "/resource_requirements", &t.resource_requirements);
  }
  if (const json* w = Field(j, "prefetch_weight"); w && w->is_number()) {
    t.prefetch_weight = w->get<double>();
  }
  Enum(j, "prewarm", ParsePrewarmLevel, &t.prewarm);
  Enum(j, "mode", ParseTaskMode, &t.mode);
  if (const json* r = Field(j, "retry"); r && r->is_object()) {
    DecodeRetry(*r, at + "/retry", &t.retry);
  }
  if (const json* w = Field(j, "when")) DecodeWhen(*w, at + "/when", &t.when);
  Enum(j, "trigger_rule", ParseTriggerRule, &t.trigger_rule);
  if (const json* in = Field(j, "inputs"); in && in->is_object()) {
    Strings(*in, "files", &t.input_files);
    if (const json* link = Field(*in, "link"); link && link->is_boolean()) {
      t.link_inputs = link->get<bool>();
    }
  }
  StringMap(j, "input_map", &t.input_map);
  Strings(j, "sources", &t.sources);  // globs: their grammar is checked in check.cc
  Strings(j, "outputs", &t.outputs);
  if (const json* c = Field(j, "cache")) {  // on | off | true | false (the schema's enum)
    if (c->is_boolean()) t.cache = c->get<bool>();
    if (*c == "on" || *c == "off") t.cache = *c == "on";
  }
  return t;
}

void Decoder::DecodeResources(const json& j, const std::string& at, ResourceRequirements* r) {
  if (const json* cpu = Field(j, "cpu")) {
    std::string err;
    std::optional<int64_t> millis;
    if (cpu->is_number()) millis = CpuFromCores(cpu->get<double>(), &err);
    if (cpu->is_string()) millis = ParseCpu(cpu->get<std::string>(), &err);
    if (millis) r->cpu_millis = *millis;
    if (!err.empty()) report_->At(at + "/cpu", err);
  }
  Size(j, "memory", at, &r->memory_bytes);
  if (const json* gpu = Field(j, "gpu"); gpu && gpu->is_number_integer() && *gpu >= 0) {
    r->gpu = gpu->get<int>();
  }
  Duration(j, "timeout", at, true, &r->timeout);
  Size(j, "max_output", at, &r->max_output_bytes);
  if (Field(j, "max_output") && r->max_output_bytes == 0) {
    report_->At(at + "/max_output", "max_output must be above 0");
  }
}

void Decoder::DecodeRetry(const json& j, const std::string& at, RetryPolicy* r) {
  if (const json* n = Field(j, "max_attempts"); n && n->is_number_integer()) {
    r->max_attempts = static_cast<int>(std::clamp<int64_t>(n->get<int64_t>(), 1, 100));
  }
  std::optional<chainctl::Duration> initial, max;
  Duration(j, "initial_backoff", at, false, &initial);
  Duration(j, "max_backoff", at, false, &max);
  if (initial) r->initial_backoff = *initial;
  if (max) r->max_backoff = *max;
  if (r->max_backoff < r->initial_backoff && (initial || max)) {
    report_->At(at + (max ? "/max_backoff" : "/initial_backoff"),
                "max_backoff (" + FormatDuration(r->max_backoff) +
                    ") is shorter than initial_backoff (" + FormatDuration(r->initial_backoff) +
                    ")");
  }
  if (const json* m = Field(j, "multiplier"); m && m->is_number()) {
    r->multiplier = m->get<double>();
  }
}

void Decoder::DecodeWhen(const json& j, const std::string& at, std::vector<Condition>* out) {
  if (j.is_object()) {
    if (auto c = DecodeCondition(j, at)) out->push_back(*c);
  } else if (j.is_array()) {
    for (size_t i = 0; i < j.size(); ++i) {
      if (auto c = DecodeCondition(j[i], at + "/" + std::to_string(i))) out->push_back(*c);
    }
  }
}

std::optional<Condition> Decoder::DecodeCondition(const json& j, const std::string& at) {
  if (!j.is_object()) return std::nullopt;
  const json* path = Field(j, "path");
  const json* op_name = Field(j, "op");
  if (!path || !path->is_string() || !op_name || !op_name->is_string()) return std::nullopt;
  auto op = ParseConditionOp(op_name->get<std::string>());
  if (!op) return std::nullopt;
  Condition c{path->get<std::string>(), *op, nullptr};
  const json* value = Field(j, "value");
  const std::string op_text = "op \"" + op_name->get<std::string>() + "\"";
  switch (c.op) {
    case ConditionOp::kExists:
    case ConditionOp::kNotExists:
      if (value) report_->AtKey(at + "/value", op_text + " takes no value");
      break;
    case ConditionOp::kIn:
      if (!value || !value->is_array()) {
        report_->At(value ? at + "/value" : at, op_text + " needs a list as its value");
      }
      break;
    case ConditionOp::kMatches:
      if (!value || !value->is_string()) {
        report_->At(value ? at + "/value" : at, op_text + " needs a regular expression string");
      }
      break;
    case ConditionOp::kGt:
    case ConditionOp::kGe:
    case ConditionOp::kLt:
    case ConditionOp::kLe:
      if (!value || !(value->is_number() || value->is_string())) {
        report_->At(value ? at + "/value" : at, op_text + " needs a number or a string value");
      }
      break;
    case ConditionOp::kEq:
    case ConditionOp::kNe:
      if (!value) report_->At(at, op_text + " needs a value");
      break;
  }
  if (value) c.value = *value;
  return c;
}

}  // namespace

Chain DecodeChain(const nlohmann::json& root, Reporter* report) {
  return Decoder(report).Decode(root);
}

}  // namespace chainctl::internal
