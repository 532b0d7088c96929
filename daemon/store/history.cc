#include "daemon/store/history.h"

#include <limits>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <utility>

#include "daemon/util/content_hash.h"

namespace chainctl::daemon {
namespace {

using nlohmann::json;

// Value versions of the records (layout: history.h, store.h).
constexpr uint8_t kMetaValueVersion = 1;
constexpr uint8_t kRecordValueVersion = 1;
constexpr std::string_view kMetaKey = "m";
constexpr char kRecordTag = 's', kRunTag = 'r', kTaskTag = 't', kChainTag = 'c';
constexpr size_t kSeqBytes = 8;

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
  return !id.empty() && id.size() <= kMaxHistoryIdBytes && id.find('\0') == std::string_view::npos;
}

// The stored form.

// The member `name` of the object `j` if it is an integer in [0, INT64_MAX].
std::optional<uint64_t> UnsignedMember(const json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_number_unsigned()) return std::nullopt;
  uint64_t v = it->get<uint64_t>();
  if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
  return v;
}

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
  std::optional<uint64_t> count, next_seq;
  if (j.is_object()) {
    count = UnsignedMember(j, "count");
    next_seq = UnsignedMember(j, "next_seq");
  }
  if (!count || !next_seq || *next_seq < 1) {
    return Fail(err, "history meta: corrupt record in the store");
  }
  *meta = {*count, *next_seq};
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

// ValidateHistoryRecord of each record; the error says which ("history record 3 of 10: ...").
bool ValidateAll(const std::vector<HistoryRecord>& records, std::string* err) {
  for (size_t i = 0; i < records.size(); ++i) {
    if (!ValidateHistoryRecord(records[i], err)) {
      return Fail(err, "history record " + std::to_string(i + 1) + " of " +
                           std::to_string(records.size()) + ": " + *err);
    }
  }
  return true;
}

// Import keys: two records with the same key are the same attempt (History::Import).
using ImportKey = std::tuple<std::string, std::string, int, int64_t>;  // task, instance, ...

ImportKey KeyOfRecord(const HistoryRecord& r) {
  return {r.task_id, r.instance_id, r.attempt, r.start_unix_ms};
}

// Adds the import keys of the stored records of run `run_id` to `keys`.
bool StoredKeys(ReadTxn& txn, const std::string& run_id, std::set<ImportKey>* keys,
                std::string* err) {
  const std::string prefix = IndexPrefix(kRunTag, run_id);
  bool ok = true;
  bool scanned = txn.Scan(
      Db::kHistory, prefix, /*reverse=*/false,
      [&](std::string_view key, std::string_view) {
        uint64_t seq = 0;
        HistoryRecord r;
        if (!SeqOfKey(key, prefix.size(), &seq)) {
          return ok = Fail(err, "history: malformed key in the store");
        }
        if (!(ok = GetRecord(txn, seq, &r, err))) return false;
        keys->insert(KeyOfRecord(r));
        return true;
      },
      err);
  return scanned && ok;
}

// The records of `input` whose import key is neither stored nor taken by an earlier one.
bool NewRecords(ReadTxn& txn, const std::vector<HistoryRecord>& input,
                std::vector<HistoryRecord>* fresh, std::string* err) {
  std::map<std::string, std::set<ImportKey>> seen;  // by run_id
  fresh->clear();
  for (const HistoryRecord& r : input) {
    auto [run, inserted] = seen.try_emplace(r.run_id);
    if (inserted && !StoredKeys(txn, r.run_id, &run->second, err)) return false;
    if (run->second.insert(KeyOfRecord(r)).second) fresh->push_back(r);
  }
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

History::History(Store* store, uint64_t retention)
    : store_(store), retention_(retention < 1 ? 1 : retention) {}

bool History::Append(WriteTxn& txn, std::vector<HistoryRecord>* records, std::string* err) {
  if (!ValidateAll(*records, err)) return false;
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

bool History::AppendNow(std::vector<HistoryRecord>* records, std::string* err) {
  return store_->Write([&](WriteTxn& txn, std::string* e) { return Append(txn, records, e); }, err);
}

bool History::Import(std::vector<HistoryRecord>* records, size_t* skipped, std::string* err) {
  if (!ValidateAll(*records, err)) return false;  // numbered as given, before the filter
  std::vector<HistoryRecord> input = std::move(*records);
  // The filter runs inside the transaction (a retried one runs it again, from `input`).
  bool ok = store_->Write(
      [&](WriteTxn& txn, std::string* e) {
        return NewRecords(txn, input, records, e) && Append(txn, records, e);
      },
      err);
  *skipped = ok ? input.size() - records->size() : 0;
  if (!ok) *records = std::move(input);
  return ok;
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
