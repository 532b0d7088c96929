#include "common/predict/history_record.h"

#include <cmath>
#include <limits>
#include <string_view>
#include <utility>

namespace chainctl {
namespace {

using nlohmann::json;

// JSONL times above this many seconds (year ~33,658) are refused: ms must fit int64 exactly.
constexpr double kMaxSeconds = 1e12;

bool Fail(std::string* err, std::string message) {
  *err = std::move(message);
  return false;
}

bool KeySafe(std::string_view id) {
  return !id.empty() && id.size() <= kMaxHistoryIdBytes && id.find('\0') == std::string_view::npos;
}

// Members of JSON objects.

std::string Quoted(std::string_view name) { return "\"" + std::string(name) + "\""; }

bool Missing(const char* name, std::string* err) {
  return Fail(err, "missing required field " + Quoted(name));
}

bool Mistyped(const char* name, std::string_view expected, std::string* err) {
  return Fail(err, "field " + Quoted(name) + " must be " + std::string(expected));
}

const json* Member(const json& j, const char* name) {
  auto it = j.find(name);
  return it == j.end() ? nullptr : &*it;
}

// `v` as an int64, if it is an integer in range.
std::optional<int64_t> AsInt64(const json& v) {
  if (v.is_number_unsigned()) {
    auto u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  return std::nullopt;
}

// Each Read* leaves *out unchanged when the member is absent (an error if `required`).
bool ReadString(const json& j, const char* name, bool required, std::string* out,
                std::string* err) {
  const json* v = Member(j, name);
  if (v == nullptr) return !required || Missing(name, err);
  if (!v->is_string()) return Mistyped(name, "a string", err);
  *out = v->get<std::string>();
  return true;
}

bool ReadBool(const json& j, const char* name, std::optional<bool>* out, std::string* err) {
  const json* v = Member(j, name);
  if (v == nullptr) return true;
  if (!v->is_boolean()) return Mistyped(name, "true or false", err);
  *out = v->get<bool>();
  return true;
}

// An integer in [min, max]; min is 0 or 1.
bool ReadInt(const json& j, const char* name, bool required, int64_t min, int64_t max, int64_t* out,
             std::string* err) {
  const json* v = Member(j, name);
  if (v == nullptr) return !required || Missing(name, err);
  std::optional<int64_t> value = AsInt64(*v);
  if (!value || *value < min || *value > max) {
    return Mistyped(name, min == 0 ? "a non-negative integer" : "an integer of at least 1", err);
  }
  *out = *value;
  return true;
}

bool ReadInt(const json& j, const char* name, int min, int* out, std::string* err) {
  int64_t v = *out;
  if (!ReadInt(j, name, false, min, std::numeric_limits<int>::max(), &v, err)) return false;
  *out = static_cast<int>(v);
  return true;
}

bool ReadCount(const json& j, const char* name, std::optional<uint64_t>* out, std::string* err) {
  const json* v = Member(j, name);
  if (v == nullptr) return true;
  if (!v->is_number_unsigned() && !(v->is_number_integer() && v->get<int64_t>() >= 0)) {
    return Mistyped(name, "a non-negative integer", err);
  }
  *out = v->get<uint64_t>();
  return true;
}

bool ReadCount(const json& j, const char* name, std::optional<int64_t>* out, std::string* err) {
  int64_t v = 0;
  if (!ReadInt(j, name, false, 0, std::numeric_limits<int64_t>::max(), &v, err)) return false;
  if (Member(j, name) != nullptr) *out = v;
  return true;
}

// A finite number >= 0.
bool ReadAmount(const json& j, const char* name, std::optional<double>* out, std::string* err) {
  const json* v = Member(j, name);
  if (v == nullptr) return true;
  if (!v->is_number() || !std::isfinite(v->get<double>()) || v->get<double>() < 0) {
    return Mistyped(name, "a non-negative number", err);
  }
  *out = v->get<double>();
  return true;
}

// Seconds since the epoch (JSONL v1) as ms.
bool ReadSeconds(const json& j, const char* name, int64_t* ms, std::string* err) {
  const json* v = Member(j, name);
  if (v == nullptr) return Missing(name, err);
  if (!v->is_number() || !(v->get<double>() >= 0 && v->get<double>() <= kMaxSeconds)) {
    return Mistyped(name, "a number of seconds since the Unix epoch", err);
  }
  *ms = std::llround(v->get<double>() * 1000);
  return true;
}

template <typename T>
void SetIfKnown(const char* name, const std::optional<T>& value, json* j) {
  if (value) (*j)[name] = *value;
}

// Fields the API form and JSONL v1 share.

bool ReadIds(const json& j, HistoryRecord* r, std::string* err) {
  return ReadString(j, "run_id", true, &r->run_id, err) &&
         ReadString(j, "chain_id", true, &r->chain_id, err) &&
         ReadString(j, "task_id", true, &r->task_id, err) &&
         ReadString(j, "instance_id", false, &r->instance_id, err);
}

bool ReadAttemptInfo(const json& j, HistoryRecord* r, std::string* err) {
  return ReadInt(j, "chain_version", 0, &r->chain_version, err) &&
         ReadInt(j, "task_version", 0, &r->task_version, err) &&
         ReadInt(j, "attempt", 1, &r->attempt, err) &&
         ReadString(j, "cause", false, &r->cause, err);
}

bool ReadMeasurements(const json& j, HistoryRecord* r, std::string* err) {
  return ReadBool(j, "cold", &r->cold, err) && ReadAmount(j, "startup_ms", &r->startup_ms, err) &&
         ReadAmount(j, "cpu_s", &r->cpu_s, err) &&
         ReadCount(j, "max_rss_kb", &r->max_rss_kb, err) &&
         ReadCount(j, "bytes_in", &r->bytes_in, err) &&
         ReadCount(j, "bytes_out", &r->bytes_out, err) &&
         ReadCount(j, "bytes_staged", &r->bytes_staged, err) &&
         ReadBool(j, "cached", &r->cached, err);
}

bool CheckId(std::string_view name, const std::string& id, std::string* err) {
  if (KeySafe(id)) return true;
  std::string what = id.empty()                       ? "is empty"
                     : id.size() > kMaxHistoryIdBytes ? "is longer than 256 bytes"
                                                      : "contains a NUL character";
  return Fail(err, Quoted(name) + " " + what);
}

}  // namespace

bool ValidateHistoryRecord(const HistoryRecord& r, std::string* err) {
  if (!CheckId("run_id", r.run_id, err) || !CheckId("chain_id", r.chain_id, err) ||
      !CheckId("task_id", r.task_id, err)) {
    return false;
  }
  if (r.status != "succeeded" && r.status != "failed" && r.status != "cancelled") {
    return Fail(err, "\"status\" must be \"succeeded\", \"failed\" or \"cancelled\"");
  }
  if (r.attempt < 1) return Fail(err, "\"attempt\" must be at least 1");
  if (r.chain_version < 0 || r.task_version < 0) return Fail(err, "versions must not be negative");
  if (r.start_unix_ms < 0) return Fail(err, "\"start_unix_ms\" must not be negative");
  if (r.end_unix_ms < r.start_unix_ms) {
    return Fail(err, "\"end_unix_ms\" (" + std::to_string(r.end_unix_ms) +
                         ") is before \"start_unix_ms\" (" + std::to_string(r.start_unix_ms) + ")");
  }
  return true;
}

json HistoryRecordToJson(const HistoryRecord& r) {
  json j = {{"seq", r.seq},
            {"run_id", r.run_id},
            {"chain_id", r.chain_id},
            {"task_id", r.task_id},
            {"chain_version", r.chain_version},
            {"task_version", r.task_version},
            {"attempt", r.attempt},
            {"start_unix_ms", r.start_unix_ms},
            {"end_unix_ms", r.end_unix_ms},
            {"status", r.status},
            {"cause", r.cause}};
  if (!r.instance_id.empty()) j["instance_id"] = r.instance_id;
  SetIfKnown("cold", r.cold, &j);
  SetIfKnown("startup_ms", r.startup_ms, &j);
  SetIfKnown("cpu_s", r.cpu_s, &j);
  SetIfKnown("max_rss_kb", r.max_rss_kb, &j);
  SetIfKnown("bytes_in", r.bytes_in, &j);
  SetIfKnown("bytes_out", r.bytes_out, &j);
  SetIfKnown("bytes_staged", r.bytes_staged, &j);
  SetIfKnown("cached", r.cached, &j);
  return j;
}

bool HistoryRecordFromJson(const json& j, HistoryRecord* record, std::string* err) {
  if (!j.is_object()) return Fail(err, "a history record must be a JSON object");
  HistoryRecord r;
  std::optional<uint64_t> seq;
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  if (!ReadCount(j, "seq", &seq, err) || !ReadIds(j, &r, err) ||
      !ReadInt(j, "start_unix_ms", true, 0, kMax, &r.start_unix_ms, err) ||
      !ReadInt(j, "end_unix_ms", true, 0, kMax, &r.end_unix_ms, err) ||
      !ReadString(j, "status", true, &r.status, err) || !ReadAttemptInfo(j, &r, err) ||
      !ReadMeasurements(j, &r, err) || !ValidateHistoryRecord(r, err)) {
    return false;
  }
  r.seq = seq.value_or(0);
  *record = std::move(r);
  return true;
}

json ToJsonlV1(const HistoryRecord& r) {
  json j = {{"run_id", r.run_id},
            {"chain_id", r.chain_id},
            {"task_id", r.task_id},
            {"start", static_cast<double>(r.start_unix_ms) / 1000},
            {"end", static_cast<double>(r.end_unix_ms) / 1000},
            {"status", r.status == "succeeded" ? "succeeded" : "failed"}};
  if (!r.instance_id.empty()) j["instance_id"] = r.instance_id;
  SetIfKnown("cold", r.cold, &j);
  SetIfKnown("bytes_in", r.bytes_in, &j);
  SetIfKnown("bytes_out", r.bytes_out, &j);
  SetIfKnown("cpu_s", r.cpu_s, &j);
  // chainctl extras (history_record.h).
  if (r.status == "cancelled") j["cancelled"] = true;
  if (r.attempt != 1) j["attempt"] = r.attempt;
  if (r.chain_version != 0) j["chain_version"] = r.chain_version;
  if (r.task_version != 0) j["task_version"] = r.task_version;
  if (!r.cause.empty()) j["cause"] = r.cause;
  SetIfKnown("startup_ms", r.startup_ms, &j);
  SetIfKnown("max_rss_kb", r.max_rss_kb, &j);
  SetIfKnown("bytes_staged", r.bytes_staged, &j);
  SetIfKnown("cached", r.cached, &j);
  return j;
}

bool FromJsonlV1(const json& j, HistoryRecord* record, std::string* err) {
  if (!j.is_object()) return Fail(err, "a history record must be a JSON object");
  HistoryRecord r;
  std::optional<bool> cancelled;
  if (!ReadIds(j, &r, err) || !ReadSeconds(j, "start", &r.start_unix_ms, err) ||
      !ReadSeconds(j, "end", &r.end_unix_ms, err) ||
      !ReadString(j, "status", true, &r.status, err)) {
    return false;
  }
  if (r.status != "succeeded" && r.status != "failed") {
    return Fail(err, "field \"status\" must be \"succeeded\" or \"failed\"");
  }
  if (r.end_unix_ms < r.start_unix_ms) {
    return Fail(err, "\"end\" (" + j.at("end").dump() + ") is before \"start\" (" +
                         j.at("start").dump() + ")");
  }
  if (!ReadBool(j, "cancelled", &cancelled, err) || !ReadAttemptInfo(j, &r, err) ||
      !ReadMeasurements(j, &r, err)) {
    return false;
  }
  if (cancelled.value_or(false)) {
    if (r.status != "failed") return Fail(err, "a cancelled record must have status \"failed\"");
    r.status = "cancelled";
  }
  if (!ValidateHistoryRecord(r, err)) return false;
  *record = std::move(r);
  return true;
}

}  // namespace chainctl
