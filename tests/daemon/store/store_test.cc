#include "daemon/store/store.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>
#include <vector>

#include "tests/test_util.h"

namespace chainctl::daemon {
namespace {

std::unique_ptr<Store> OpenOrDie(const std::string& dir, size_t initial_map_size = 1 << 20) {
  std::string err;
  std::unique_ptr<Store> store =
      Store::Open({.dir = dir, .initial_map_size = initial_map_size}, &err);
  EXPECT_NE(store, nullptr) << err;
  return store;
}

bool Put(Store& store, Db db, const std::string& key, const std::string& value) {
  std::string err;
  bool ok =
      store.Write([&](WriteTxn& txn, std::string* e) { return txn.Put(db, key, value, e); }, &err);
  EXPECT_TRUE(ok) << err;
  return ok;
}

// The value at `key`, or "<absent>".
std::string Get(Store& store, Db db, const std::string& key) {
  std::string value = "<absent>", err;
  bool ok = store.Read(
      [&](ReadTxn& txn, std::string* e) {
        bool found = false;
        std::string v;
        if (!txn.Get(db, key, &v, &found, e)) return false;
        if (found) value = v;
        return true;
      },
      &err);
  EXPECT_TRUE(ok) << err;
  return value;
}

// The keys starting with `prefix`, from the first (or, reverse, the last) or from `*from`.
std::vector<std::string> Keys(Store& store, Db db, const std::string& prefix, bool reverse,
                              const std::string* from = nullptr) {
  std::vector<std::string> keys;
  std::string err;
  ReadTxn::Visitor collect = [&](std::string_view key, std::string_view) {
    keys.emplace_back(key);
    return true;
  };
  EXPECT_TRUE(store.Read(
      [&](ReadTxn& txn, std::string* e) {
        return from ? txn.ScanFrom(db, prefix, *from, reverse, collect, e)
                    : txn.Scan(db, prefix, reverse, collect, e);
      },
      &err))
      << err;
  return keys;
}

std::string ValueFor(int writer, int i) {
  return std::string(2000, static_cast<char>('a' + writer)) + std::to_string(i);
}

TEST(Store, ReopenKeepsData) {
  testing::ScopedTempDir tmp;
  const std::string dir = tmp.path() + "/state/store";
  {
    std::unique_ptr<Store> store = OpenOrDie(dir);
    ASSERT_TRUE(store);
    EXPECT_EQ(Get(*store, Db::kMeta, std::string(kFormatVersionKey)),
              EncodeValue(1, std::to_string(kStoreFormatVersion)));
    Put(*store, Db::kTasks, "k", "v1");
    Put(*store, Db::kHistory, "k", "h1");
  }
  std::unique_ptr<Store> store = OpenOrDie(dir);
  ASSERT_TRUE(store);
  EXPECT_EQ(Get(*store, Db::kTasks, "k"), "v1");
  EXPECT_EQ(Get(*store, Db::kHistory, "k"), "h1");
  EXPECT_EQ(Get(*store, Db::kChains, "k"), "<absent>");
  EXPECT_EQ(std::filesystem::status(dir).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_all);
}

TEST(Store, RefusesANewerFormat) {
  testing::ScopedTempDir tmp;
  {
    std::unique_ptr<Store> store = OpenOrDie(tmp.path());
    ASSERT_TRUE(store);
    Put(*store, Db::kMeta, std::string(kFormatVersionKey), EncodeValue(1, "99"));
  }
  std::string err;
  EXPECT_EQ(Store::Open({.dir = tmp.path()}, &err), nullptr);
  EXPECT_EQ(err, "store at " + tmp.path() +
                     " has format version 99; this chaind understands up to 2: upgrade chaind");
}

TEST(Store, RenumbersAFormat1Store) {
  testing::ScopedTempDir tmp;
  {
    std::unique_ptr<Store> store = OpenOrDie(tmp.path());
    ASSERT_TRUE(store);
    Put(*store, Db::kMeta, std::string(kFormatVersionKey), EncodeValue(1, "1"));
    Put(*store, Db::kChains, "kept", "v");
  }
  std::unique_ptr<Store> store = OpenOrDie(tmp.path());
  ASSERT_TRUE(store);
  EXPECT_EQ(Get(*store, Db::kMeta, std::string(kFormatVersionKey)), EncodeValue(1, "2"));
  EXPECT_EQ(Get(*store, Db::kChains, "kept"), "v");
}

TEST(Store, DecodeValueRefusesNewerValues) {
  uint8_t version = 0;
  std::string_view payload;
  std::string err;
  const std::string value = EncodeValue(1, "x");
  ASSERT_TRUE(DecodeValue(value, 1, "thing", &version, &payload, &err));
  EXPECT_EQ(version, 1);
  EXPECT_EQ(payload, "x");
  EXPECT_FALSE(DecodeValue(EncodeValue(3, "x"), 2, "thing", &version, &payload, &err));
  EXPECT_EQ(err,
            "thing: stored value has format version 3; this chaind understands up to 2: "
            "upgrade chaind");
  EXPECT_FALSE(DecodeValue("", 2, "thing", &version, &payload, &err));
  EXPECT_EQ(err, "thing: stored value has no format version");
  EXPECT_FALSE(DecodeValue(EncodeValue(0, "x"), 2, "thing", &version, &payload, &err));
}

TEST(Store, GrowsTheMapWhenFull) {
  testing::ScopedTempDir tmp;
  constexpr size_t kTiny = 64 << 10;
  {
    std::unique_ptr<Store> store = OpenOrDie(tmp.path(), kTiny);
    ASSERT_TRUE(store);
    int calls = 0;
    std::string err;
    ASSERT_TRUE(store->Write(
        [&](WriteTxn& txn, std::string* e) {
          ++calls;
          for (int i = 0; i < 64; ++i) {
            if (!txn.Put(Db::kModel, "big" + std::to_string(i),
                         ValueFor(i % 4, i) + std::string(14000, 'x'), e)) {
              return false;
            }
          }
          return true;
        },
        &err))
        << err;
    EXPECT_GT(calls, 1);  // retried after growing
    for (int i = 0; i < 100; ++i)
      Put(*store, Db::kHistory, "h" + std::to_string(i), ValueFor(1, i) + std::string(30000, 'y'));
    EXPECT_GE(store->map_size(), size_t{4} << 20);
  }
  std::unique_ptr<Store> store = OpenOrDie(tmp.path(), kTiny);
  ASSERT_TRUE(store);
  for (int i = 0; i < 64; ++i) {
    EXPECT_EQ(Get(*store, Db::kModel, "big" + std::to_string(i)),
              ValueFor(i % 4, i) + std::string(14000, 'x'));
  }
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(Get(*store, Db::kHistory, "h" + std::to_string(i)),
              ValueFor(1, i) + std::string(30000, 'y'));
  }
  Put(*store, Db::kModel, "after", std::string(1 << 20, 'z'));  // grows again
  EXPECT_EQ(Get(*store, Db::kModel, "after").size(), size_t{1} << 20);
}

// Writers on several threads grow a tiny map while readers keep reading: nothing is lost and
// no reader sees a torn value.
TEST(Store, ConcurrentWritersAndReadersLoseNothing) {
  testing::ScopedTempDir tmp;
  std::unique_ptr<Store> store = OpenOrDie(tmp.path(), 64 << 10);
  ASSERT_TRUE(store);
  constexpr int kWriters = 4, kWrites = 100;
  std::atomic<int> writers_left = kWriters;
  std::atomic<int> bad_reads = 0, reads = 0;
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < kWrites; ++i) {
        std::string key = std::to_string(w) + "/" + std::to_string(i);
        std::string err;
        if (!store->Write(
                [&](WriteTxn& txn, std::string* e) {
                  return txn.Put(Db::kRuns, key, ValueFor(w, i), e);
                },
                &err)) {
          ADD_FAILURE() << err;
        }
      }
      --writers_left;
    });
  }
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&] {
      while (writers_left > 0) {
        std::string err;
        bool ok = store->Read(
            [&](ReadTxn& txn, std::string* e) {
              return txn.Scan(
                  Db::kRuns, "", false,
                  [&](std::string_view key, std::string_view value) {
                    size_t slash = key.find('/');
                    int w = std::stoi(std::string(key.substr(0, slash)));
                    int i = std::stoi(std::string(key.substr(slash + 1)));
                    if (value != ValueFor(w, i)) ++bad_reads;
                    return true;
                  },
                  e);
            },
            &err);
        if (!ok) ADD_FAILURE() << err;
        ++reads;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(bad_reads, 0);
  EXPECT_GT(store->map_size(), size_t{64} << 10);
  std::vector<std::string> keys = Keys(*store, Db::kRuns, "", false);
  ASSERT_EQ(keys.size(), size_t{kWriters * kWrites});
  for (int w = 0; w < kWriters; ++w) {
    for (int i = 0; i < kWrites; ++i) {
      EXPECT_EQ(Get(*store, Db::kRuns, std::to_string(w) + "/" + std::to_string(i)),
                ValueFor(w, i));
    }
  }
}

TEST(Store, DescriptorsAreCloseOnExec) {
  testing::ScopedTempDir tmp;
  std::unique_ptr<Store> store = OpenOrDie(tmp.path());
  ASSERT_TRUE(store);
  EXPECT_TRUE(fcntl(store->data_fd(), F_GETFD) & FD_CLOEXEC);
  // Every descriptor of this process on a file of the store, not only the one LMDB names.
  int on_store = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    std::string target = std::filesystem::read_symlink(entry.path(), ec).string();
    if (ec || !target.starts_with(tmp.path() + "/")) continue;
    ++on_store;
    int fd = std::stoi(entry.path().filename().string());
    EXPECT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC) << target;
  }
  EXPECT_GE(on_store, 2);  // data.mdb and lock.mdb
}

TEST(Store, FailedWriteLeavesNothing) {
  testing::ScopedTempDir tmp;
  std::unique_ptr<Store> store = OpenOrDie(tmp.path());
  ASSERT_TRUE(store);
  std::string err;
  EXPECT_FALSE(store->Write(
      [](WriteTxn& txn, std::string* e) {
        if (!txn.Put(Db::kTasks, "k", "v", e)) return false;
        *e = "changed my mind";
        return false;
      },
      &err));
  EXPECT_EQ(err, "changed my mind");
  EXPECT_EQ(Get(*store, Db::kTasks, "k"), "<absent>");
}

TEST(Store, TransactionsDoNotNest) {
  testing::ScopedTempDir tmp;
  std::unique_ptr<Store> store = OpenOrDie(tmp.path());
  ASSERT_TRUE(store);
  std::string err, inner_err;
  EXPECT_TRUE(store->Read(
      [&](ReadTxn&, std::string*) {
        EXPECT_FALSE(store->Write([](WriteTxn&, std::string*) { return true; }, &inner_err));
        return true;
      },
      &err));
  EXPECT_EQ(inner_err, "store transaction started inside another one (not supported)");
  Put(*store, Db::kTasks, "k", "v");  // the guard was released
}

TEST(Store, ScansByPrefixInBothDirections) {
  testing::ScopedTempDir tmp;
  std::unique_ptr<Store> store = OpenOrDie(tmp.path());
  ASSERT_TRUE(store);
  const std::string ff = "\xff";
  for (const std::string& key :
       std::vector<std::string>{"a", "ab", "ac", "b", "a" + ff, "a" + ff + ff, ff + "x"}) {
    Put(*store, Db::kChains, key, "v");
  }
  bool deleted = false;
  std::string err;
  ASSERT_TRUE(store->Write(
      [&](WriteTxn& txn, std::string* e) { return txn.Delete(Db::kChains, "ac", &deleted, e); },
      &err));
  EXPECT_TRUE(deleted);
  using V = std::vector<std::string>;
  EXPECT_EQ(Keys(*store, Db::kChains, "a", false), (V{"a", "ab", "a" + ff, "a" + ff + ff}));
  EXPECT_EQ(Keys(*store, Db::kChains, "a", true), (V{"a" + ff + ff, "a" + ff, "ab", "a"}));
  EXPECT_EQ(Keys(*store, Db::kChains, "a" + ff, true), (V{"a" + ff + ff, "a" + ff}));
  EXPECT_EQ(Keys(*store, Db::kChains, ff, true), (V{ff + "x"}));
  EXPECT_EQ(Keys(*store, Db::kChains, "", true).front(), ff + "x");
  EXPECT_EQ(Keys(*store, Db::kChains, "c", true), V{});
  EXPECT_EQ(Keys(*store, Db::kChains, "c", false), V{});
  EXPECT_EQ(Keys(*store, Db::kChains, "0", true), V{});
}

TEST(Store, ScansFromAKeyInBothDirections) {
  testing::ScopedTempDir tmp;
  std::unique_ptr<Store> store = OpenOrDie(tmp.path());
  ASSERT_TRUE(store);
  for (const std::string& key : std::vector<std::string>{"a", "b1", "b3", "b5", "c"}) {
    Put(*store, Db::kChains, key, "v");
  }
  auto keys_from = [&](const std::string& prefix, const std::string& from, bool reverse) {
    return Keys(*store, Db::kChains, prefix, reverse, &from);
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(keys_from("b", "b3", false), (V{"b3", "b5"}));
  EXPECT_EQ(keys_from("b", "b2", false), (V{"b3", "b5"}));
  EXPECT_EQ(keys_from("b", "b6", false), V{});
  EXPECT_EQ(keys_from("b", "b3", true), (V{"b3", "b1"}));
  EXPECT_EQ(keys_from("b", "b4", true), (V{"b3", "b1"}));
  EXPECT_EQ(keys_from("b", "b9", true), (V{"b5", "b3", "b1"}));
  EXPECT_EQ(keys_from("b", "b0", true), V{});
  EXPECT_EQ(keys_from("c", "c", true), V{"c"});
  EXPECT_EQ(keys_from("c", "cz", true), V{"c"});  // past the last key of the database
  EXPECT_EQ(keys_from("", "b4", true), (V{"b3", "b1", "a"}));
}

}  // namespace
}  // namespace chainctl::daemon
