#include "daemon/store/store.h"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <filesystem>
#include <utility>

namespace chainctl::daemon {
namespace {

constexpr std::array<const char*, kDbCount> kDbNames = {"meta", "tasks",   "chains",
                                                        "runs", "history", "model"};
constexpr uint8_t kMetaValueVersion = 1;

// Set while this thread is inside a Read or Write callback (see "transactions do not nest").
thread_local bool tls_in_txn = false;

class NestingGuard {
 public:
  bool Enter(std::string* err) {
    if (tls_in_txn) {
      *err = "store transaction started inside another one (not supported)";
      return false;
    }
    tls_in_txn = entered_ = true;
    return true;
  }
  ~NestingGuard() {
    if (entered_) tls_in_txn = false;
  }

 private:
  bool entered_ = false;
};

// Aborts the transaction unless it was committed (Release).
class TxnOwner {
 public:
  explicit TxnOwner(MDB_txn* txn) : txn_(txn) {}
  ~TxnOwner() {
    if (txn_ != nullptr) mdb_txn_abort(txn_);
  }
  MDB_txn* Release() { return std::exchange(txn_, nullptr); }

 private:
  MDB_txn* txn_;
};

MDB_val ToVal(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }
std::string_view FromVal(const MDB_val& v) {
  return std::string_view(static_cast<const char*>(v.mv_data), v.mv_size);
}

// Positions `cursor` on the last key starting with `prefix`, or anywhere before it.
int SeekLast(MDB_cursor* cursor, std::string_view prefix, MDB_val* k, MDB_val* v) {
  std::string after(prefix);  // the smallest key greater than every key with the prefix
  while (!after.empty() && static_cast<unsigned char>(after.back()) == 0xff) after.pop_back();
  if (after.empty()) return mdb_cursor_get(cursor, k, v, MDB_LAST);
  after.back() = static_cast<char>(static_cast<unsigned char>(after.back()) + 1);
  *k = ToVal(after);
  int rc = mdb_cursor_get(cursor, k, v, MDB_SET_RANGE);
  if (rc == MDB_NOTFOUND) return mdb_cursor_get(cursor, k, v, MDB_LAST);
  return rc == 0 ? mdb_cursor_get(cursor, k, v, MDB_PREV) : rc;
}

// Positions `cursor` where a scan of the keys with `prefix` starts: at the first (or, if
// `reverse`, the last) such key, or with `from`, at the first key >= from (the last <= from).
int SeekStart(MDB_cursor* cursor, std::string_view prefix, const std::string_view* from,
              bool reverse, MDB_val* k, MDB_val* v) {
  if (from == nullptr) {
    if (reverse) return SeekLast(cursor, prefix, k, v);
    *k = ToVal(prefix);
    return mdb_cursor_get(cursor, k, v, prefix.empty() ? MDB_FIRST : MDB_SET_RANGE);
  }
  if (from->empty()) return reverse ? MDB_NOTFOUND : mdb_cursor_get(cursor, k, v, MDB_FIRST);
  *k = ToVal(*from);
  int rc = mdb_cursor_get(cursor, k, v, MDB_SET_RANGE);  // the first key >= from
  if (!reverse) return rc;
  if (rc == MDB_NOTFOUND) return mdb_cursor_get(cursor, k, v, MDB_LAST);
  return rc == 0 && FromVal(*k) != *from ? mdb_cursor_get(cursor, k, v, MDB_PREV) : rc;
}

}  // namespace

const char* DbName(Db db) { return kDbNames[static_cast<size_t>(db)]; }

std::string EncodeValue(uint8_t version, std::string_view payload) {
  std::string value(1, static_cast<char>(version));
  value.append(payload);
  return value;
}

bool DecodeValue(std::string_view value, uint8_t max_version, std::string_view what,
                 uint8_t* version, std::string_view* payload, std::string* err) {
  *version = value.empty() ? 0 : static_cast<uint8_t>(value[0]);
  if (*version == 0) {
    *err = std::string(what) + ": stored value has no format version";
    return false;
  }
  if (*version > max_version) {
    *err = std::string(what) + ": stored value has format version " + std::to_string(*version) +
           "; this chaind understands up to " + std::to_string(max_version) + ": upgrade chaind";
    return false;
  }
  *payload = value.substr(1);
  return true;
}

std::unique_ptr<Store> Store::Open(const StoreOptions& options, std::string* err) {
  std::unique_ptr<Store> store(new Store(options));
  if (!store->OpenEnv(err) || !store->OpenDatabases(err)) return nullptr;
  return store;
}

Store::~Store() {
  if (env_ != nullptr) mdb_env_close(env_);
}

bool Store::Fail(std::string* err, std::string_view what, int rc) const {
  *err = "store at " + options_.dir + ": " + std::string(what) + ": " + mdb_strerror(rc);
  return false;
}

bool Store::OpenEnv(std::string* err) {
  std::error_code ec;
  if (std::filesystem::create_directories(options_.dir, ec)) {
    std::filesystem::permissions(options_.dir, std::filesystem::perms::owner_all, ec);
  }
  if (ec) {
    *err = "cannot create the state directory " + options_.dir + ": " + ec.message();
    return false;
  }
  int rc = mdb_env_create(&env_);
  if (rc != 0) return Fail(err, "mdb_env_create", rc);
  if ((rc = mdb_env_set_maxdbs(env_, kDbCount)) != 0 ||
      (rc = mdb_env_set_mapsize(env_, options_.initial_map_size)) != 0) {
    return Fail(err, "configuring the environment", rc);
  }
  if ((rc = mdb_env_open(env_, options_.dir.c_str(), MDB_NOTLS, 0600)) != 0) {
    return Fail(err, "mdb_env_open", rc);
  }
  int fd = -1;
  if ((rc = mdb_env_get_fd(env_, &fd)) != 0) return Fail(err, "mdb_env_get_fd", rc);
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) {
    return Fail(err, "setting FD_CLOEXEC on data.mdb", errno);
  }
  if ((rc = mdb_reader_check(env_, &dead_readers_cleared_)) != 0) {
    return Fail(err, "mdb_reader_check", rc);
  }
  return true;
}

// Opens (creating) the databases in one write transaction, committed only when the format is
// one this chaind understands, so a newer store is left untouched.
bool Store::OpenDatabases(std::string* err) {
  std::lock_guard writer(write_mu_);
  MDB_txn* raw = nullptr;
  int rc = mdb_txn_begin(env_, nullptr, 0, &raw);
  if (rc != 0) return Fail(err, "beginning the opening transaction", rc);
  TxnOwner owner(raw);
  for (size_t i = 0; i < kDbCount; ++i) {
    if ((rc = mdb_dbi_open(raw, kDbNames[i], MDB_CREATE, &dbis_[i])) != 0) {
      return Fail(err, std::string("opening database ") + kDbNames[i], rc);
    }
    if (i == 0) {
      WriteTxn txn(raw, dbis_);
      if (!CheckFormat(txn, err)) return false;
    }
  }
  if ((rc = mdb_txn_commit(owner.Release())) != 0) return Fail(err, "creating databases", rc);
  return true;
}

bool Store::CheckFormat(WriteTxn& txn, std::string* err) {
  std::string value;
  bool found = false;
  if (!txn.Get(Db::kMeta, kFormatVersionKey, &value, &found, err)) return false;
  if (!found) {
    return txn.Put(Db::kMeta, kFormatVersionKey,
                   EncodeValue(kMetaValueVersion, std::to_string(kStoreFormatVersion)), err);
  }
  uint8_t value_version = 0;
  std::string_view payload;
  if (!DecodeValue(value, kMetaValueVersion, "store at " + options_.dir, &value_version, &payload,
                   err)) {
    return false;
  }
  uint32_t format = 0;
  auto [end, ec] = std::from_chars(payload.data(), payload.data() + payload.size(), format);
  if (ec != std::errc() || end != payload.data() + payload.size() || format == 0) {
    *err = "store at " + options_.dir + " has an unreadable format version";
    return false;
  }
  if (format > kStoreFormatVersion) {
    *err = "store at " + options_.dir + " has format version " + std::to_string(format) +
           "; this chaind understands up to " + std::to_string(kStoreFormatVersion) +
           ": upgrade chaind";
    return false;
  }
  if (format == kStoreFormatVersion) return true;
  // Format 1 (chaind of the registry issue) had the runs and history databases reserved and
  // empty: its stores are format 2 stores as they are; only the number moves on.
  return txn.Put(Db::kMeta, kFormatVersionKey,
                 EncodeValue(kMetaValueVersion, std::to_string(kStoreFormatVersion)), err);
}

bool Store::Read(const ReadFn& fn, std::string* err) {
  NestingGuard nesting;
  if (!nesting.Enter(err)) return false;
  for (;;) {
    std::shared_lock lock(resize_mu_);
    MDB_txn* raw = nullptr;
    int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &raw);
    if (rc == MDB_MAP_RESIZED) {
      lock.unlock();
      if (!AdoptSizeOfOtherProcess(err)) return false;
      continue;
    }
    if (rc != 0) return Fail(err, "beginning a read transaction", rc);
    TxnOwner owner(raw);
    ReadTxn txn(raw, dbis_);
    return fn(txn, err);
  }
}

bool Store::Write(const WriteFn& fn, std::string* err) {
  NestingGuard nesting;
  if (!nesting.Enter(err)) return false;
  std::lock_guard writer(write_mu_);
  for (;;) {
    size_t size_seen = 0;
    Attempt attempt;
    {
      std::shared_lock lock(resize_mu_);
      size_seen = MapSizeLocked();
      attempt = TryWrite(fn, err);
    }
    switch (attempt) {
      case Attempt::kDone:
        return true;
      case Attempt::kFailed:
        return false;
      case Attempt::kMapFull:
        if (!Grow(size_seen, err)) return false;
        break;
      case Attempt::kMapResized:
        if (!AdoptSizeOfOtherProcess(err)) return false;
        break;
    }
  }
}

// One try under resize_mu_ shared.
Store::Attempt Store::TryWrite(const WriteFn& fn, std::string* err) {
  MDB_txn* raw = nullptr;
  int rc = mdb_txn_begin(env_, nullptr, 0, &raw);
  if (rc == MDB_MAP_RESIZED) return Attempt::kMapResized;
  if (rc != 0) {
    Fail(err, "beginning a write transaction", rc);
    return Attempt::kFailed;
  }
  TxnOwner owner(raw);
  WriteTxn txn(raw, dbis_);
  bool ok = fn(txn, err);
  if (txn.map_full_) return Attempt::kMapFull;
  if (!ok) return Attempt::kFailed;
  rc = mdb_txn_commit(owner.Release());
  if (rc == MDB_MAP_FULL) return Attempt::kMapFull;
  if (rc != 0) {
    Fail(err, "committing", rc);
    return Attempt::kFailed;
  }
  return Attempt::kDone;
}

bool Store::Grow(size_t size_seen, std::string* err) {
  std::unique_lock lock(resize_mu_);  // waits until no transaction is open
  size_t size = MapSizeLocked();
  if (size > size_seen) return true;  // grown meanwhile (adopted from another process)
  if (size >= options_.max_map_size) {
    *err = "store at " + options_.dir + " is full: its map reached max_map_size (" +
           std::to_string(options_.max_map_size) + " bytes)";
    return false;
  }
  size_t next = size > options_.max_map_size / 2 ? options_.max_map_size : 2 * size;
  int rc = mdb_env_set_mapsize(env_, next);
  return rc == 0 || Fail(err, "growing the map to " + std::to_string(next) + " bytes", rc);
}

bool Store::AdoptSizeOfOtherProcess(std::string* err) {
  std::unique_lock lock(resize_mu_);
  int rc = mdb_env_set_mapsize(env_, 0);  // 0: take the size another process set
  return rc == 0 || Fail(err, "adopting the map size of another process", rc);
}

size_t Store::MapSizeLocked() const {
  MDB_envinfo info;
  mdb_env_info(env_, &info);
  return info.me_mapsize;
}

size_t Store::map_size() const {
  std::shared_lock lock(resize_mu_);
  return MapSizeLocked();
}

int Store::data_fd() const {
  int fd = -1;
  mdb_env_get_fd(env_, &fd);
  return fd;
}

bool ReadTxn::Get(Db db, std::string_view key, std::string* value, bool* found, std::string* err) {
  MDB_val k = ToVal(key), v;
  int rc = mdb_get(txn_, Dbi(db), &k, &v);
  *found = rc == 0;
  if (rc == 0) value->assign(FromVal(v));
  if (rc == 0 || rc == MDB_NOTFOUND) return true;
  *err = std::string("reading ") + DbName(db) + ": " + mdb_strerror(rc);
  return false;
}

bool ReadTxn::Scan(Db db, std::string_view prefix, bool reverse, const Visitor& fn,
                   std::string* err) {
  return ScanImpl(db, prefix, nullptr, reverse, fn, err);
}

bool ReadTxn::ScanFrom(Db db, std::string_view prefix, std::string_view from, bool reverse,
                       const Visitor& fn, std::string* err) {
  return ScanImpl(db, prefix, &from, reverse, fn, err);
}

bool ReadTxn::ScanImpl(Db db, std::string_view prefix, const std::string_view* from, bool reverse,
                       const Visitor& fn, std::string* err) {
  MDB_cursor* cursor = nullptr;
  int rc = mdb_cursor_open(txn_, Dbi(db), &cursor);
  if (rc == 0) {
    std::unique_ptr<MDB_cursor, void (*)(MDB_cursor*)> closer(cursor, mdb_cursor_close);
    MDB_val k, v;
    rc = SeekStart(cursor, prefix, from, reverse, &k, &v);
    while (rc == 0 && FromVal(k).starts_with(prefix) && fn(FromVal(k), FromVal(v))) {
      rc = mdb_cursor_get(cursor, &k, &v, reverse ? MDB_PREV : MDB_NEXT);
    }
  }
  if (rc == 0 || rc == MDB_NOTFOUND) return true;
  *err = std::string("scanning ") + DbName(db) + ": " + mdb_strerror(rc);
  return false;
}

bool WriteTxn::Put(Db db, std::string_view key, std::string_view value, std::string* err) {
  MDB_val k = ToVal(key), v = ToVal(value);
  int rc = mdb_put(txn_, Dbi(db), &k, &v, 0);
  if (rc == 0) return true;
  map_full_ = map_full_ || rc == MDB_MAP_FULL;
  *err = std::string("writing ") + DbName(db) + ": " + mdb_strerror(rc);
  return false;
}

bool WriteTxn::Delete(Db db, std::string_view key, bool* existed, std::string* err) {
  MDB_val k = ToVal(key);
  int rc = mdb_del(txn_, Dbi(db), &k, nullptr);
  *existed = rc == 0;
  if (rc == 0 || rc == MDB_NOTFOUND) return true;
  map_full_ = map_full_ || rc == MDB_MAP_FULL;
  *err = std::string("deleting from ") + DbName(db) + ": " + mdb_strerror(rc);
  return false;
}

}  // namespace chainctl::daemon
