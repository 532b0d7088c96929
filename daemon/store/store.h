// The persistent store of chaind: one LMDB environment in the state directory, with one named
// database per kind of record (DESIGN.md §1 "store", §5 "persist with versions").
//
// Threads. A Store is safe to use from any number of threads at once: the environment is
// opened with MDB_NOTLS, so a read transaction is not tied to the thread that began it.
// chaind runs writes (which fsync at commit) on libuv thread-pool threads and reads on the
// loop thread; readers never wait for writers (LMDB MVCC), except for the rare moment when
// the map is grown (below). Writes of this process are serialised by `write_mu_`.
//
// Growth. The map is sparse and starts at StoreOptions::initial_map_size. A write that meets
// MDB_MAP_FULL is aborted, the map size is doubled and the write is run again. LMDB requires
// that no transaction of the process is open while the size changes: every transaction (read
// or write) holds `resize_mu_` shared for its whole life, the resize holds it exclusive.
// Hence transactions do not nest: Read or Write called from inside a Read or Write callback
// fails (it would deadlock a resize); and a resize waits for the open read transactions to
// end, so keep read callbacks short. A map grown by another process (MDB_MAP_RESIZED) is
// adopted the same way. Files: DIR/data.mdb (sparse) and DIR/lock.mdb.
//
// Layout, store format version 2 (kStoreFormatVersion; version 1 had runs and history empty,
// and is renumbered 2 at open). Every value is an envelope:
//   byte 0      the value's own format version (uint8), refused by DecodeValue if newer
//               than the reader knows
//   bytes 1..   the payload of that version ("JSON" below: CanonicalJson, content_hash.h)
// Keys hold ids as raw bytes; "\0" is one zero byte; BE32 is a 4-byte big-endian uint32 and
// BE64 an 8-byte big-endian uint64 (so LMDB's byte order is numeric order and all records of
// one id are adjacent, oldest first). "empty" is a value of zero bytes (no envelope).
//
//   database  key                        value (envelope version: payload)
//   --------  -------------------------  ---------------------------------------------------
//   meta      "format_version"           1: store format version, ASCII decimal ("1")
//   chains    chain_id "\0" BE32(ver)    1: JSON {"content_hash": hex SHA-256 of the chain's
//                                           canonical JSON without chain_id,
//                                           "created_unix_ms": int, "definition":
//                                           ChainToJson(chain) with chain_id set}
//                                           ver = 1, 2, ... per chain_id
//   tasks     task_id "\0" BE32(ver)     1: JSON {"content_hash": hex SHA-256 of the task's
//                                           canonical JSON, "created_unix_ms": int,
//                                           "definition": ChainToJson(chain)["tasks"][i],
//                                           "used_by": [[chain_id, chain version], ...]}
//                                           ver = 1, 2, ... per task_id, one per content
//   runs      "r" BE64(n)                1: JSON run record of run "run-<n>" (orchestrator.h;
//                                           n = 1, 2, ... in trigger order)
//             "t" BE64(n) task_id        1: JSON state of a task of run n (orchestrator.h)
//             "o" BE64(n) task_id        1: JSON output of a succeeded task of run n
//             "e" BE64(n) BE32(seq)      1: JSON event seq (1, 2, ...) of run n, one NDJSON line
//                                           (run_keys.h)
//   history   "m"                        1: JSON {"count": records kept, "next_seq": the seq
//                                           the next record gets} (absent = {0, 1})
//             "s" BE64(seq)              1: JSON HistoryRecordToJson(record) without "seq"
//                                           (history.h); seq = 1, 2, ... in append order,
//                                           never reused; the oldest go first (retention)
//             tag id "\0" BE64(seq)      empty: one key per record in each of 3 indexes:
//                                           tag "r" with the record's run_id, "t" with its
//                                           task_id, "c" with its chain_id
//   model     "current"                  1: JSON {"version", "trained_unix_ms", "records",
//                                           "through_seq", "seconds", "model"}: the last
//                                           trained predictor (prediction_service.h). Filled
//                                           from format 2 on: the database was reserved and
//                                           empty, and no older chaind reads it, so the
//                                           format stays 2
//
// Rule for changes: a change of any key or value layout adds a row here and bumps
// kStoreFormatVersion, so an older chaind refuses the store at open instead of misreading a
// record; the newer chaind keeps reading the older value versions (or migrates them at open).
#pragma once

#include <lmdb.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>

namespace chainctl::daemon {

inline constexpr uint32_t kStoreFormatVersion = 2;
// The meta key holding the store format version.
inline constexpr std::string_view kFormatVersionKey = "format_version";

enum class Db { kMeta, kTasks, kChains, kRuns, kHistory, kModel };
inline constexpr size_t kDbCount = 6;
const char* DbName(Db db);  // "meta", "tasks", ...

// `version` followed by `payload`.
std::string EncodeValue(uint8_t version, std::string_view payload);
// Splits an envelope; fails on a version of 0 (or none) or above `max_version` (the
// message names `what`, e.g. "chain etl v2"). `payload` points into `value`.
bool DecodeValue(std::string_view value, uint8_t max_version, std::string_view what,
                 uint8_t* version, std::string_view* payload, std::string* err);

struct StoreOptions {
  std::string dir;                            // created (mode 0700) if missing
  size_t initial_map_size = size_t{1} << 30;  // sparse file: costs no disk until used
  size_t max_map_size = size_t{1} << 40;      // growth stops here: MDB_MAP_FULL is an error
};

// A transaction's view, valid only inside the callback that received it. string_views given
// out point into the map and die with the transaction: copy what you keep.
class ReadTxn {
 public:
  // `*found` false (and true returned) when the key is absent.
  bool Get(Db db, std::string_view key, std::string* value, bool* found, std::string* err);
  // Calls fn(key, value) for each key starting with `prefix` ("" = all), in ascending key
  // order or, if `reverse`, descending, until fn returns false.
  using Visitor = std::function<bool(std::string_view key, std::string_view value)>;
  bool Scan(Db db, std::string_view prefix, bool reverse, const Visitor& fn, std::string* err);
  // As Scan, but starting at `from` (which starts with `prefix`) instead of at the first key
  // with the prefix: ascending, at the first key >= from; if `reverse`, at the last key <= from.
  bool ScanFrom(Db db, std::string_view prefix, std::string_view from, bool reverse,
                const Visitor& fn, std::string* err);

 protected:
  friend class Store;
  ReadTxn(MDB_txn* txn, const std::array<MDB_dbi, kDbCount>& dbis) : txn_(txn), dbis_(dbis) {}
  MDB_dbi Dbi(Db db) const { return dbis_[static_cast<size_t>(db)]; }
  bool ScanImpl(Db db, std::string_view prefix, const std::string_view* from, bool reverse,
                const Visitor& fn, std::string* err);

  MDB_txn* txn_;
  const std::array<MDB_dbi, kDbCount>& dbis_;
};

class WriteTxn : public ReadTxn {
 public:
  bool Put(Db db, std::string_view key, std::string_view value, std::string* err);
  // `*existed` false (and true returned) when the key was absent.
  bool Delete(Db db, std::string_view key, bool* existed, std::string* err);

 private:
  friend class Store;
  using ReadTxn::ReadTxn;
  bool map_full_ = false;  // set by Put/Delete on MDB_MAP_FULL: Store::Write grows and retries
};

class Store {
 public:
  // Opens (creating if needed) the store in options.dir: creates every named database, clears
  // reader slots of dead processes (mdb_reader_check), makes the data file descriptor
  // close-on-exec, and refuses a store of a newer format version. Call before starting
  // child processes (the descriptor is inheritable until Open returns). At most one Store per
  // directory in a process (LMDB's locks are per process).
  static std::unique_ptr<Store> Open(const StoreOptions& options, std::string* err);
  // Closes the environment. No transaction may be running.
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Runs fn in a read-only snapshot. Returns fn's result (fn sets *err when it fails).
  using ReadFn = std::function<bool(ReadTxn& txn, std::string* err)>;
  bool Read(const ReadFn& fn, std::string* err);

  // Runs fn in a write transaction, committed (durably, with fsync) if fn returns true and
  // aborted otherwise. fn may be run more than once (again after the map is grown), so it
  // must reset whatever it fills in outside the transaction and do nothing else outside it.
  // Blocks: call it from a thread-pool thread, never from the event loop.
  using WriteFn = std::function<bool(WriteTxn& txn, std::string* err)>;
  bool Write(const WriteFn& fn, std::string* err);

  const std::string& dir() const { return options_.dir; }
  size_t map_size() const;  // the current map size in bytes
  int data_fd() const;      // LMDB's descriptor of data.mdb (mdb_env_get_fd)
  // Reader slots of dead processes that Open cleared.
  int dead_readers_cleared() const { return dead_readers_cleared_; }

 private:
  enum class Attempt { kDone, kFailed, kMapFull, kMapResized };

  explicit Store(const StoreOptions& options) : options_(options) {}
  bool OpenEnv(std::string* err);
  bool OpenDatabases(std::string* err);
  bool CheckFormat(WriteTxn& txn, std::string* err);
  Attempt TryWrite(const WriteFn& fn, std::string* err);
  bool Grow(size_t size_seen, std::string* err);   // takes resize_mu_ exclusive
  bool AdoptSizeOfOtherProcess(std::string* err);  // after MDB_MAP_RESIZED
  size_t MapSizeLocked() const;
  bool Fail(std::string* err, std::string_view what, int rc) const;

  StoreOptions options_;
  MDB_env* env_ = nullptr;
  std::array<MDB_dbi, kDbCount> dbis_{};
  int dead_readers_cleared_ = 0;
  mutable std::shared_mutex resize_mu_;  // shared: any open transaction; exclusive: resize
  std::mutex write_mu_;                  // one writer of this process at a time
};

}  // namespace chainctl::daemon
