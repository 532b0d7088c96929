#include "daemon/history.h"

#include <cmath>
#include <utility>

#include "daemon/content_hash.h"

namespace chainctl::daemon {
namespace {

using nlohmann::json;

// Value versions of the records (layout: history.h, store.h).
constexpr uint8_t kMetaValueVersion = 1;
constexpr uint8_t kRecordValueVersion = 1;
constexpr std::string_view kMetaKey = "m";
constexpr char kRecordTag = 's', kRunTag = 'r', kTaskTag = 't', kChainTag = 'c';
constexpr size_t kMaxIdBytes = 256;  // index keys stay far below LMDB's 511-byte limit
constexpr size_t kSeqBytes = 8;
// JSONL times above this many seconds (year ~33,658) are refused: ms must fit int64 exactly.
constexpr double kMaxSeconds = 1e12;

bool Fail(std::string* err, std::string message) {
  *err = std::move(message);
  return false;
}

// Keys.

void AppendBe64(uint64_t v, std::string* out) {
  for (int shift = 56; shift >= 0; shift -= 8) out->push_back(static_cast<char>(v >> shift));
}

// The seq in the last 8 bytes of `key`, which must be `prefix_size` + 8 bytes long.
bool SeqOfKey(std::string_view key, size_t prefix_size, uint64_t* seq) {
  if (key.size() != prefix_size + kSeqBytes) return false;
  *seq = 0;
  for (size_t i = prefix_size; i < key.size(); ++i) *seq = *seq << 8 | static_cast<uint8_t>(key[i]);
  return true;
}

std::string RecordKey(uint64_t seq) {
  std::string key(1, kRecordTag);
  AppendBe64(seq, &key);
  return key;
}

std::string IndexPrefix(char tag, std::string_view id) {
  std::string prefix(1, tag);
  prefix.append(id);
  prefix.push_back('\0');
  return prefix;
}

std::string IndexKey(char tag, std::string_view id, uint64_t seq) {
  std::string key = IndexPrefix(tag, id);
  AppendBe64(seq, &key);
  return key;
}

bool KeySafe(std::string_view id) {
  return !id.empty() && id.size() <= kMaxIdBytes && id.find('\0') == std::string_view::npos;
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
         ReadCount(j, "bytes_staged", &r->bytes_staged, err);
}

bool CheckId(std::string_view name, const std::string& id, std::string* err) {
  if (KeySafe(id)) return true;
  std::string what = id.empty()                ? "is empty"
                     : id.size() > kMaxIdBytes ? "is longer than 256 bytes"
                                               : "contains a NUL character";
  return Fail(err, Quoted(name) + " " + what);
}

// The stored form.

struct Meta {
  uint64_t count = 0;
  uint64_t next_seq = 1;
};

bool ReadMeta(ReadTxn& txn, Meta* meta, std::string* err) {
  std::string value;
  bool found = false;
  if (!txn.Get(Db::kHistory, kMetaKey, &value, &found, err)) return false;
  if (!found) return true;
  uint8_t version = 0;
  std::string_view payload;
  if (!DecodeValue(value, kMetaValueVersion, "history meta", &version, &payload, err)) {
    return false;
  }
  json j = json::parse(payload, nullptr, false);
  int64_t count = 0, next_seq = 0;
  if (j.is_discarded() || !j.is_object() ||
      !ReadInt(j, "count", true, 0, std::numeric_limits<int64_t>::max(), &count, err) ||
      !ReadInt(j, "next_seq", true, 1, std::numeric_limits<int64_t>::max(), &next_seq, err)) {
    return Fail(err, "history meta: corrupt record in the store");
  }
  *meta = {static_cast<uint64_t>(count), static_cast<uint64_t>(next_seq)};
  return true;
}

bool WriteMeta(WriteTxn& txn, const Meta& meta, std::string* err) {
  json j = {{"count", meta.count}, {"next_seq", meta.next_seq}};
  return txn.Put(Db::kHistory, kMetaKey, EncodeValue(kMetaValueVersion, CanonicalJson(j)), err);
}

bool DecodeRecord(uint64_t seq, std::string_view value, HistoryRecord* r, std::string* err) {
  std::string what = "history record " + std::to_string(seq);
  uint8_t version = 0;
  std::string_view payload;
  if (!DecodeValue(value, kRecordValueVersion, what, &version, &payload, err)) return false;
  json j = json::parse(payload, nullptr, false);
  if (j.is_discarded()) return Fail(err, what + ": corrupt record in the store");
  if (!HistoryRecordFromJson(j, r, err)) {
    return Fail(err, what + ": corrupt record in the store: " + *err);
  }
  r->seq = seq;
  return true;
}

bool GetRecord(ReadTxn& txn, uint64_t seq, HistoryRecord* r, std::string* err) {
  std::string value;
  bool found = false;
  if (!txn.Get(Db::kHistory, RecordKey(seq), &value, &found, err)) return false;
  if (!found)
    return Fail(err, "history: an index names record " + std::to_string(seq) + ", absent");
  return DecodeRecord(seq, value, r, err);
}

bool PutRecord(WriteTxn& txn, const HistoryRecord& r, std::string* err) {
  json j = HistoryRecordToJson(r);
  j.erase("seq");
  return txn.Put(Db::kHistory, RecordKey(r.seq), EncodeValue(kRecordValueVersion, CanonicalJson(j)),
                 err) &&
         txn.Put(Db::kHistory, IndexKey(kRunTag, r.run_id, r.seq), "", err) &&
         txn.Put(Db::kHistory, IndexKey(kTaskTag, r.task_id, r.seq), "", err) &&
         txn.Put(Db::kHistory, IndexKey(kChainTag, r.chain_id, r.seq), "", err);
}

bool DeleteRecord(WriteTxn& txn, const HistoryRecord& r, std::string* err) {
  bool existed = false;
  return txn.Delete(Db::kHistory, RecordKey(r.seq), &existed, err) &&
         txn.Delete(Db::kHistory, IndexKey(kRunTag, r.run_id, r.seq), &existed, err) &&
         txn.Delete(Db::kHistory, IndexKey(kTaskTag, r.task_id, r.seq), &existed, err) &&
         txn.Delete(Db::kHistory, IndexKey(kChainTag, r.chain_id, r.seq), &existed, err);
}

// Deletes up to `n` of the oldest records; `*removed` says how many there were.
bool DropOldest(WriteTxn& txn, uint64_t n, uint64_t* removed, std::string* err) {
  std::vector<HistoryRecord> oldest;
  bool ok = true;
  bool scanned = txn.Scan(
      Db::kHistory, std::string(1, kRecordTag), /*reverse=*/false,
      [&](std::string_view key, std::string_view value) {
        uint64_t seq = 0;
        if (!SeqOfKey(key, 1, &seq)) return ok = Fail(err, "history: malformed key in the store");
        ok = DecodeRecord(seq, value, &oldest.emplace_back(), err);
        return ok && oldest.size() < n;
      },
      err);
  if (!scanned || !ok) return false;
  for (const HistoryRecord& r : oldest) {
    if (!DeleteRecord(txn, r, err)) return false;
  }
  *removed = oldest.size();
  return true;
}

// Queries.

// What Find walks: an index (keys prefix + BE64(seq) naming records) or the records.
struct Walk {
  std::string prefix;
  bool index = false;
};

Walk ChooseWalk(const HistoryQuery& q) {
  if (!q.run_id.empty()) return {IndexPrefix(kRunTag, q.run_id), true};
  if (!q.task_id.empty()) return {IndexPrefix(kTaskTag, q.task_id), true};
  if (!q.chain_id.empty()) return {IndexPrefix(kChainTag, q.chain_id), true};
  return {std::string(1, kRecordTag), false};
}

// Whether a query can match anything at all; sets the seq range [*first, *last] it allows.
bool CanMatch(const HistoryQuery& q, uint64_t* first, uint64_t* last) {
  for (const std::string* id : {&q.run_id, &q.task_id, &q.chain_id}) {
    if (!id->empty() && !KeySafe(*id)) return false;
  }
  if (q.limit == 0 || q.after_seq == std::numeric_limits<uint64_t>::max() || q.before_seq == 1 ||
      q.since_unix_ms >= q.until_unix_ms) {
    return false;
  }
  *first = q.after_seq + 1;
  *last = q.before_seq == 0 ? std::numeric_limits<uint64_t>::max() : q.before_seq - 1;
  return *first <= *last;
}

bool Matches(const HistoryQuery& q, const HistoryRecord& r) {
  return (q.run_id.empty() || r.run_id == q.run_id) &&
         (q.task_id.empty() || r.task_id == q.task_id) &&
         (q.chain_id.empty() || r.chain_id == q.chain_id) && r.start_unix_ms >= q.since_unix_ms &&
         r.start_unix_ms < q.until_unix_ms;
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
  // chainctl extras (history.h).
  if (r.status == "cancelled") j["cancelled"] = true;
  if (r.attempt != 1) j["attempt"] = r.attempt;
  if (r.chain_version != 0) j["chain_version"] = r.chain_version;
  if (r.task_version != 0) j["task_version"] = r.task_version;
  if (!r.cause.empty()) j["cause"] = r.cause;
  SetIfKnown("startup_ms", r.startup_ms, &j);
  SetIfKnown("max_rss_kb", r.max_rss_kb, &j);
  SetIfKnown("bytes_staged", r.bytes_staged, &j);
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

History::History(Store* store, uint64_t retention)
    : store_(store), retention_(retention < 1 ? 1 : retention) {}

bool History::Append(WriteTxn& txn, std::vector<HistoryRecord>* records, std::string* err) {
  for (size_t i = 0; i < records->size(); ++i) {
    if (!ValidateHistoryRecord((*records)[i], err)) {
      return Fail(err, "history record " + std::to_string(i + 1) + " of " +
                           std::to_string(records->size()) + ": " + *err);
    }
  }
  Meta meta;
  if (!ReadMeta(txn, &meta, err)) return false;
  for (HistoryRecord& r : *records) {
    r.seq = meta.next_seq++;
    if (!PutRecord(txn, r, err)) return false;
    ++meta.count;
  }
  if (meta.count > retention_) {
    uint64_t removed = 0;
    if (!DropOldest(txn, meta.count - retention_, &removed, err)) return false;
    meta.count -= removed;
  }
  return WriteMeta(txn, meta, err);
}

bool History::AppendNow(std::vector<HistoryRecord> records, std::string* err) {
  return store_->Write([&](WriteTxn& txn, std::string* e) { return Append(txn, &records, e); },
                       err);
}

bool History::Find(const HistoryQuery& q, std::vector<HistoryRecord>* out, std::string* err) {
  out->clear();
  uint64_t first = 0, last = 0;
  if (!CanMatch(q, &first, &last)) return true;
  const Walk walk = ChooseWalk(q);
  std::string from = walk.prefix;
  AppendBe64(q.newest_first ? last : first, &from);
  auto visit = [&](ReadTxn& txn, std::string_view key, std::string_view value, std::string* e,
                   bool* ok) {
    uint64_t seq = 0;
    if (!SeqOfKey(key, walk.prefix.size(), &seq)) {
      return *ok = Fail(e, "history: malformed key in the store");
    }
    if (seq < first || seq > last) return false;  // past the other end of the seq range
    HistoryRecord r;
    *ok = walk.index ? GetRecord(txn, seq, &r, e) : DecodeRecord(seq, value, &r, e);
    if (!*ok) return false;
    records_decoded_.fetch_add(1, std::memory_order_relaxed);
    if (Matches(q, r)) out->push_back(std::move(r));
    return out->size() < q.limit;
  };
  return store_->Read(
      [&](ReadTxn& txn, std::string* e) {
        out->clear();
        bool ok = true;
        bool scanned = txn.ScanFrom(
            Db::kHistory, walk.prefix, from, q.newest_first,
            [&](std::string_view key, std::string_view value) {
              return visit(txn, key, value, e, &ok);
            },
            e);
        return scanned && ok;
      },
      err);
}

bool History::Count(uint64_t* count, std::string* err) {
  Meta meta;
  bool ok =
      store_->Read([&](ReadTxn& txn, std::string* e) { return ReadMeta(txn, &meta, e); }, err);
  *count = meta.count;
  return ok;
}

}  // namespace chainctl::daemon
