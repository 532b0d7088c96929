#include "daemon/store/registry.h"

#include <algorithm>
#include <chrono>
#include <set>

#include "daemon/util/content_hash.h"

namespace chainctl::daemon {
namespace {

// Value versions of the records (layout table: store.h).
constexpr uint8_t kChainValueVersion = 1;
constexpr uint8_t kTaskValueVersion = 1;
constexpr size_t kMaxIdBytes = 256;  // keys stay far below LMDB's 511-byte limit

// Ids become key prefixes: "\0" ends them. Validated ids (1-64 of [A-Za-z0-9_.-]) always pass.
bool KeySafe(std::string_view id) {
  return !id.empty() && id.size() <= kMaxIdBytes && id.find('\0') == std::string_view::npos;
}

std::string IdPrefix(std::string_view id) { return std::string(id) + '\0'; }

std::string VersionedKey(std::string_view id, int version) {
  std::string key = IdPrefix(id);
  auto v = static_cast<uint32_t>(version);
  for (int shift = 24; shift >= 0; shift -= 8) key.push_back(static_cast<char>(v >> shift));
  return key;
}

bool SplitKey(std::string_view key, std::string_view* id, int* version) {
  if (key.size() < 6 || key[key.size() - 5] != '\0') return false;
  uint32_t v = 0;
  for (size_t i = key.size() - 4; i < key.size(); ++i) v = v << 8 | static_cast<uint8_t>(key[i]);
  *id = key.substr(0, key.size() - 5);
  *version = static_cast<int>(v);
  return true;
}

std::string EncodeChain(const ChainVersion& c) {
  nlohmann::json j = {{"content_hash", c.content_hash},
                      {"created_unix_ms", c.created_unix_ms},
                      {"definition", c.definition}};
  return EncodeValue(kChainValueVersion, CanonicalJson(j));
}

std::string EncodeTask(const TaskVersion& t) {
  nlohmann::json j = {{"content_hash", t.content_hash},
                      {"created_unix_ms", t.created_unix_ms},
                      {"definition", t.definition},
                      {"used_by", t.used_by}};
  return EncodeValue(kTaskValueVersion, CanonicalJson(j));
}

// Unwraps the envelope and parses the JSON payload of a record of `kind` under `key`.
bool DecodeRecord(std::string_view kind, std::string_view key, std::string_view value,
                  uint8_t max_version, std::string_view* id, int* version, nlohmann::json* j,
                  std::string* err) {
  if (!SplitKey(key, id, version)) {
    *err = "malformed " + std::string(kind) + " key in the store";
    return false;
  }
  std::string what = std::string(kind) + " " + std::string(*id) + " v" + std::to_string(*version);
  uint8_t value_version = 0;
  std::string_view payload;
  if (!DecodeValue(value, max_version, what, &value_version, &payload, err)) return false;
  *j = nlohmann::json::parse(payload, nullptr, false);
  if (j->is_discarded() || !j->is_object()) {
    *err = what + ": corrupt record in the store";
    return false;
  }
  return true;
}

bool DecodeChain(std::string_view key, std::string_view value, ChainVersion* c, std::string* err) {
  std::string_view id;
  nlohmann::json j;
  if (!DecodeRecord("chain", key, value, kChainValueVersion, &id, &c->version, &j, err)) {
    return false;
  }
  try {
    c->chain_id = id;
    c->content_hash = j.at("content_hash").get<std::string>();
    c->created_unix_ms = j.at("created_unix_ms").get<int64_t>();
    c->definition = j.at("definition");
  } catch (const nlohmann::json::exception& e) {
    *err = "chain " + c->chain_id + ": corrupt record in the store: " + e.what();
    return false;
  }
  return true;
}

bool DecodeTask(std::string_view key, std::string_view value, TaskVersion* t, std::string* err) {
  std::string_view id;
  nlohmann::json j;
  if (!DecodeRecord("task", key, value, kTaskValueVersion, &id, &t->version, &j, err)) {
    return false;
  }
  try {
    t->task_id = id;
    t->content_hash = j.at("content_hash").get<std::string>();
    t->created_unix_ms = j.at("created_unix_ms").get<int64_t>();
    t->definition = j.at("definition");
    t->used_by = j.at("used_by").get<std::vector<std::pair<std::string, int>>>();
  } catch (const nlohmann::json::exception& e) {
    *err = "task " + t->task_id + ": corrupt record in the store: " + e.what();
    return false;
  }
  return true;
}

template <typename Record>
using Decoder = bool (*)(std::string_view, std::string_view, Record*, std::string*);

// Decodes the records of `db` whose keys start with `prefix`, newest version first within an
// id (ids in descending order); with `latest_only`, only the newest version of each id.
template <typename Record>
bool NewestFirst(ReadTxn& txn, Db db, std::string_view prefix, bool latest_only,
                 Decoder<Record> decode, std::vector<Record>* out, std::string* err) {
  out->clear();
  bool ok = true;
  std::string last_id;
  bool scanned = txn.Scan(
      db, prefix, /*reverse=*/true,
      [&](std::string_view key, std::string_view value) {
        std::string_view id;
        int version = 0;
        if (!SplitKey(key, &id, &version)) {
          *err = std::string("malformed key in the store's ") + DbName(db) + " database";
          return ok = false;
        }
        if (latest_only && !out->empty() && id == last_id) return true;
        last_id = id;
        out->emplace_back();
        return ok = decode(key, value, &out->back(), err);
      },
      err);
  return scanned && ok;
}

bool LatestChain(ReadTxn& txn, const std::string& id, std::optional<ChainVersion>* latest,
                 std::string* err) {
  std::vector<ChainVersion> versions;
  latest->reset();
  if (!NewestFirst(txn, Db::kChains, IdPrefix(id), true, DecodeChain, &versions, err)) {
    return false;
  }
  if (!versions.empty()) *latest = std::move(versions.front());
  return true;
}

// Records that chain version `use` contains `definition` (hash `hash`): adds `use` to the task
// version with that content, or makes one.
bool AddTaskUse(WriteTxn& txn, const nlohmann::json& definition, const std::string& hash,
                const std::pair<std::string, int>& use, int64_t now, std::string* err) {
  const std::string& task_id = definition["task_id"].get_ref<const std::string&>();
  std::vector<TaskVersion> versions;
  if (!NewestFirst(txn, Db::kTasks, IdPrefix(task_id), false, DecodeTask, &versions, err)) {
    return false;
  }
  for (TaskVersion& t : versions) {
    if (t.content_hash != hash) continue;
    if (std::find(t.used_by.begin(), t.used_by.end(), use) != t.used_by.end()) return true;
    t.used_by.push_back(use);
    return txn.Put(Db::kTasks, VersionedKey(task_id, t.version), EncodeTask(t), err);
  }
  TaskVersion t{task_id, versions.empty() ? 1 : versions.front().version + 1, hash, now, definition,
                {use}};
  return txn.Put(Db::kTasks, VersionedKey(task_id, t.version), EncodeTask(t), err);
}

// Drops chain `chain_id` from the used_by of every version of `task_id`.
bool DropTaskUses(WriteTxn& txn, const std::string& task_id, const std::string& chain_id,
                  std::string* err) {
  std::vector<TaskVersion> versions;
  if (!NewestFirst(txn, Db::kTasks, IdPrefix(task_id), false, DecodeTask, &versions, err)) {
    return false;
  }
  for (TaskVersion& t : versions) {
    auto removed = std::erase_if(t.used_by, [&](const auto& use) { return use.first == chain_id; });
    if (removed > 0 && !txn.Put(Db::kTasks, VersionedKey(task_id, t.version), EncodeTask(t), err)) {
      return false;
    }
  }
  return true;
}

void AddTaskIds(const nlohmann::json& chain_definition, std::set<std::string>* task_ids) {
  const nlohmann::json* tasks = chain_definition.is_object() && chain_definition.contains("tasks")
                                    ? &chain_definition["tasks"]
                                    : nullptr;
  if (tasks == nullptr || !tasks->is_array()) return;
  for (const nlohmann::json& task : *tasks) {
    if (task.is_object() && task.contains("task_id") && task["task_id"].is_string()) {
      task_ids->insert(task["task_id"].get<std::string>());
    }
  }
}

// What PutChain stores, computed before its transaction.
struct PreparedChain {
  std::string chain_id;
  std::string hash;                      // of the canonical JSON without chain_id
  nlohmann::json definition;             // ChainToJson form with chain_id
  std::vector<std::string> task_hashes;  // of definition["tasks"][i]
};

bool Prepare(const Chain& chain, PreparedChain* c, std::string* err) {
  c->definition = ChainToJson(chain);
  c->definition.erase("chain_id");
  if (!JsonContentHash(c->definition, &c->hash, err)) return false;
  c->chain_id = chain.chain_id.empty() ? "chain-" + c->hash.substr(0, 12) : chain.chain_id;
  if (!KeySafe(c->chain_id)) {
    *err = "chain id \"" + c->chain_id + "\" cannot be stored";
    return false;
  }
  for (const TaskSpec& task : chain.tasks) {
    if (!KeySafe(task.task_id)) {
      *err = "task id \"" + task.task_id + "\" cannot be stored";
      return false;
    }
  }
  for (const nlohmann::json& task : c->definition["tasks"]) {
    if (!JsonContentHash(task, &c->task_hashes.emplace_back(), err)) return false;
  }
  c->definition["chain_id"] = c->chain_id;
  return true;
}

}  // namespace

int64_t RealUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool Registry::PutChain(const Chain& chain, ChainVersion* out, bool* created, std::string* err) {
  PreparedChain c;
  if (!Prepare(chain, &c, err)) return false;
  const int64_t now = clock_();
  auto write = [&](WriteTxn& txn, std::string* werr) {
    std::optional<ChainVersion> latest;
    if (!LatestChain(txn, c.chain_id, &latest, werr)) return false;
    if (latest && latest->content_hash == c.hash) {
      *out = std::move(*latest);
      *created = false;
      return true;
    }
    ChainVersion v{c.chain_id, latest ? latest->version + 1 : 1, c.hash, now, c.definition};
    if (!txn.Put(Db::kChains, VersionedKey(c.chain_id, v.version), EncodeChain(v), werr)) {
      return false;
    }
    const nlohmann::json& tasks = c.definition["tasks"];
    for (size_t i = 0; i < c.task_hashes.size(); ++i) {
      if (!AddTaskUse(txn, tasks[i], c.task_hashes[i], {c.chain_id, v.version}, now, werr)) {
        return false;
      }
    }
    *out = std::move(v);
    *created = true;
    return true;
  };
  return store_->Write(write, err);
}

bool Registry::GetChain(const std::string& chain_id, int version, std::optional<ChainVersion>* out,
                        std::string* err) {
  out->reset();
  if (!KeySafe(chain_id) || version < 0) return true;
  return store_->Read(
      [&](ReadTxn& txn, std::string* rerr) {
        if (version == 0) return LatestChain(txn, chain_id, out, rerr);
        std::string key = VersionedKey(chain_id, version), value;
        bool found = false;
        if (!txn.Get(Db::kChains, key, &value, &found, rerr)) return false;
        if (!found) return true;
        return DecodeChain(key, value, &out->emplace(), rerr);
      },
      err);
}

bool Registry::ListChains(std::vector<ChainVersion>* out, std::string* err) {
  bool ok = store_->Read(
      [&](ReadTxn& txn, std::string* rerr) {
        return NewestFirst(txn, Db::kChains, "", true, DecodeChain, out, rerr);
      },
      err);
  std::reverse(out->begin(), out->end());
  return ok;
}

bool Registry::ListChainVersions(const std::string& chain_id, std::vector<int>* versions,
                                 std::string* err) {
  versions->clear();
  if (!KeySafe(chain_id)) return true;
  return store_->Read(
      [&](ReadTxn& txn, std::string* rerr) {
        return txn.Scan(
            Db::kChains, IdPrefix(chain_id), /*reverse=*/false,
            [&](std::string_view key, std::string_view) {
              std::string_view id;
              int version = 0;
              if (SplitKey(key, &id, &version)) versions->push_back(version);
              return true;
            },
            rerr);
      },
      err);
}

bool Registry::DeleteChain(const std::string& chain_id, bool* existed, std::string* err) {
  *existed = false;
  if (!KeySafe(chain_id)) return true;
  auto write = [&](WriteTxn& txn, std::string* werr) {
    std::vector<ChainVersion> versions;
    if (!NewestFirst(txn, Db::kChains, IdPrefix(chain_id), false, DecodeChain, &versions, werr)) {
      return false;
    }
    std::set<std::string> task_ids;
    for (const ChainVersion& v : versions) {
      bool deleted = false;
      if (!txn.Delete(Db::kChains, VersionedKey(chain_id, v.version), &deleted, werr)) {
        return false;
      }
      AddTaskIds(v.definition, &task_ids);
    }
    for (const std::string& task_id : task_ids) {
      if (!DropTaskUses(txn, task_id, chain_id, werr)) return false;
    }
    *existed = !versions.empty();
    return true;
  };
  return store_->Write(write, err);
}

bool Registry::GetTask(const std::string& task_id, std::vector<TaskVersion>* versions,
                       std::string* err) {
  versions->clear();
  if (!KeySafe(task_id)) return true;
  return store_->Read(
      [&](ReadTxn& txn, std::string* rerr) {
        return NewestFirst(txn, Db::kTasks, IdPrefix(task_id), false, DecodeTask, versions, rerr);
      },
      err);
}

bool Registry::ListTasks(std::vector<TaskVersion>* latest, std::string* err) {
  bool ok = store_->Read(
      [&](ReadTxn& txn, std::string* rerr) {
        return NewestFirst(txn, Db::kTasks, "", true, DecodeTask, latest, rerr);
      },
      err);
  std::reverse(latest->begin(), latest->end());
  return ok;
}

}  // namespace chainctl::daemon
