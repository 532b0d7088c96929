#include "daemon/store/registry.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <thread>

#include "daemon/util/content_hash.h"
#include "tests/test_util.h"

namespace chainctl::daemon {
namespace {

using Uses = std::vector<std::pair<std::string, int>>;

TaskSpec Task(const std::string& id, const std::string& command,
              std::vector<std::string> dependencies = {}) {
  TaskSpec t;
  t.task_id = id;
  t.command = command;
  t.dependencies = std::move(dependencies);
  return t;
}

Chain MakeChain(const std::string& id, std::vector<TaskSpec> tasks) {
  Chain c;
  c.chain_id = id;
  c.tasks = std::move(tasks);
  return c;
}

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  void Reopen() {
    registry_.reset();
    store_.reset();
    std::string err;
    store_ = Store::Open({.dir = tmp_.path() + "/store"}, &err);
    ASSERT_TRUE(store_) << err;
    registry_ = std::make_unique<Registry>(store_.get(), [this] { return now_ms_; });
  }

  ChainVersion Put(const Chain& chain, bool expect_created) {
    ChainVersion v;
    bool created = !expect_created;
    std::string err;
    EXPECT_TRUE(registry_->PutChain(chain, &v, &created, &err)) << err;
    EXPECT_EQ(created, expect_created);
    return v;
  }

  std::optional<ChainVersion> Get(const std::string& id, int version = 0) {
    std::optional<ChainVersion> v;
    std::string err;
    EXPECT_TRUE(registry_->GetChain(id, version, &v, &err)) << err;
    return v;
  }

  std::vector<int> Versions(const std::string& id) {
    std::vector<int> versions;
    std::string err;
    EXPECT_TRUE(registry_->ListChainVersions(id, &versions, &err)) << err;
    return versions;
  }

  std::vector<TaskVersion> TaskVersions(const std::string& id) {
    std::vector<TaskVersion> versions;
    std::string err;
    EXPECT_TRUE(registry_->GetTask(id, &versions, &err)) << err;
    return versions;
  }

  testing::ScopedTempDir tmp_;
  int64_t now_ms_ = 1000;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Registry> registry_;
};

TEST_F(RegistryTest, StoresAChain) {
  Chain chain = MakeChain("etl", {Task("extract", "x"), Task("load", "l", {"extract"})});
  ChainVersion v = Put(chain, true);
  EXPECT_EQ(v.chain_id, "etl");
  EXPECT_EQ(v.version, 1);
  EXPECT_EQ(v.created_unix_ms, 1000);
  EXPECT_EQ(v.definition, ChainToJson(chain));
  nlohmann::json without_id = ChainToJson(chain);
  without_id.erase("chain_id");
  std::string hash, err;
  ASSERT_TRUE(JsonContentHash(without_id, &hash, &err));
  EXPECT_EQ(v.content_hash, hash);
  EXPECT_EQ(v.content_hash.size(), 64u);

  std::optional<ChainVersion> got = Get("etl");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->version, 1);
  EXPECT_EQ(got->content_hash, hash);
  EXPECT_EQ(got->created_unix_ms, 1000);
  EXPECT_EQ(got->definition, ChainToJson(chain));
  Reopen();
  got = Get("etl", 1);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->definition, ChainToJson(chain));
}

TEST_F(RegistryTest, IdenticalDefinitionIsIdempotent) {
  Chain chain = MakeChain("etl", {Task("a", "run a")});
  Put(chain, true);
  now_ms_ = 2000;
  ChainVersion again = Put(chain, false);
  EXPECT_EQ(again.version, 1);
  EXPECT_EQ(again.created_unix_ms, 1000);
  EXPECT_EQ(Versions("etl"), std::vector<int>{1});
  EXPECT_EQ(TaskVersions("a").size(), 1u);
}

TEST_F(RegistryTest, ChangedDefinitionMakesANewVersion) {
  Chain v1 = MakeChain("etl", {Task("a", "run a")});
  Chain v2 = MakeChain("etl", {Task("a", "run a --fast")});
  Put(v1, true);
  now_ms_ = 2000;
  EXPECT_EQ(Put(v2, true).version, 2);
  EXPECT_EQ(Put(v2, false).version, 2);
  EXPECT_EQ(Put(v1, true).version, 3);  // a change back is a change too

  EXPECT_EQ(Versions("etl"), (std::vector<int>{1, 2, 3}));
  std::optional<ChainVersion> old = Get("etl", 1);
  ASSERT_TRUE(old);
  EXPECT_EQ(old->definition, ChainToJson(v1));
  EXPECT_EQ(Get("etl", 2)->definition, ChainToJson(v2));
  EXPECT_EQ(Get("etl", 2)->created_unix_ms, 2000);
  EXPECT_EQ(Get("etl")->version, 3);
  EXPECT_FALSE(Get("etl", 4));
  EXPECT_FALSE(Get("nope"));
  EXPECT_FALSE(Get(std::string("etl\0", 4)));
  EXPECT_TRUE(Versions("nope").empty());
}

TEST_F(RegistryTest, AssignsAStableIdFromTheContent) {
  Chain chain = MakeChain("", {Task("a", "run a")});
  std::string hash, err;
  ASSERT_TRUE(Sha256Hex(CanonicalJson(ChainToJson(chain)), &hash, &err));
  ChainVersion v = Put(chain, true);
  EXPECT_EQ(v.chain_id, "chain-" + hash.substr(0, 12));
  EXPECT_EQ(v.content_hash, hash);
  EXPECT_EQ(v.definition["chain_id"], v.chain_id);
  ChainVersion again = Put(chain, false);
  EXPECT_EQ(again.chain_id, v.chain_id);
  EXPECT_EQ(again.version, 1);
  // Naming it explicitly with the assigned id is the same chain.
  EXPECT_EQ(Put(MakeChain(v.chain_id, {Task("a", "run a")}), false).version, 1);
  ChainVersion other = Put(MakeChain("", {Task("a", "run b")}), true);
  EXPECT_NE(other.chain_id, v.chain_id);
  EXPECT_EQ(other.version, 1);
}

TEST_F(RegistryTest, VersionsTasksByContent) {
  Put(MakeChain("c1", {Task("x", "run x"), Task("y", "run y")}), true);
  now_ms_ = 2000;
  Put(MakeChain("c2", {Task("x", "run x"), Task("y", "run y2")}), true);
  now_ms_ = 3000;
  Put(MakeChain("c1", {Task("x", "run x3"), Task("y", "run y")}), true);

  std::vector<TaskVersion> x = TaskVersions("x");
  ASSERT_EQ(x.size(), 2u);  // newest first
  EXPECT_EQ(x[0].version, 2);
  EXPECT_EQ(x[0].definition, ChainToJson(MakeChain("", {Task("x", "run x3")}))["tasks"][0]);
  EXPECT_EQ(x[0].used_by, (Uses{{"c1", 2}}));
  EXPECT_EQ(x[0].created_unix_ms, 3000);
  EXPECT_EQ(x[1].version, 1);
  EXPECT_EQ(x[1].used_by, (Uses{{"c1", 1}, {"c2", 1}}));
  EXPECT_EQ(x[1].created_unix_ms, 1000);
  std::string hash, err;
  ASSERT_TRUE(JsonContentHash(x[1].definition, &hash, &err));
  EXPECT_EQ(x[1].content_hash, hash);

  std::vector<TaskVersion> y = TaskVersions("y");
  ASSERT_EQ(y.size(), 2u);
  EXPECT_EQ(y[0].used_by, (Uses{{"c2", 1}}));
  EXPECT_EQ(y[1].used_by, (Uses{{"c1", 1}, {"c1", 2}}));
  EXPECT_TRUE(TaskVersions("z").empty());

  std::vector<TaskVersion> latest;
  ASSERT_TRUE(registry_->ListTasks(&latest, &err)) << err;
  ASSERT_EQ(latest.size(), 2u);
  EXPECT_EQ(latest[0].task_id, "x");
  EXPECT_EQ(latest[0].version, 2);
  EXPECT_EQ(latest[1].task_id, "y");
  EXPECT_EQ(latest[1].version, 2);
}

TEST_F(RegistryTest, ListsTheLatestOfEachChainSortedById) {
  for (const char* id : {"b", "a-b", "a", "a.z"}) Put(MakeChain(id, {Task("t", "t")}), true);
  Put(MakeChain("a", {Task("t", "t2")}), true);
  std::vector<ChainVersion> chains;
  std::string err;
  ASSERT_TRUE(registry_->ListChains(&chains, &err)) << err;
  std::vector<std::pair<std::string, int>> got;
  for (const ChainVersion& c : chains) got.emplace_back(c.chain_id, c.version);
  EXPECT_EQ(got, (Uses{{"a", 2}, {"a-b", 1}, {"a.z", 1}, {"b", 1}}));
}

TEST_F(RegistryTest, DeletesAChainAndKeepsItsTasks) {
  Put(MakeChain("c1", {Task("x", "run x")}), true);
  Put(MakeChain("c1", {Task("x", "run x2")}), true);
  Put(MakeChain("c2", {Task("x", "run x")}), true);
  bool existed = false;
  std::string err;
  ASSERT_TRUE(registry_->DeleteChain("c1", &existed, &err)) << err;
  EXPECT_TRUE(existed);
  EXPECT_FALSE(Get("c1"));
  EXPECT_FALSE(Get("c1", 1));
  EXPECT_TRUE(Versions("c1").empty());
  EXPECT_TRUE(Get("c2"));
  std::vector<TaskVersion> x = TaskVersions("x");
  ASSERT_EQ(x.size(), 2u);
  EXPECT_EQ(x[0].used_by, Uses{});
  EXPECT_EQ(x[1].used_by, (Uses{{"c2", 1}}));

  ASSERT_TRUE(registry_->DeleteChain("c1", &existed, &err)) << err;
  EXPECT_FALSE(existed);
  EXPECT_EQ(Put(MakeChain("c1", {Task("x", "run x2")}), true).version, 1);
  EXPECT_EQ(TaskVersions("x")[0].used_by, (Uses{{"c1", 1}}));
}

TEST_F(RegistryTest, RefusesIdsThatCannotBeKeys) {
  ChainVersion v;
  bool created = false;
  std::string err;
  EXPECT_FALSE(
      registry_->PutChain(MakeChain("c", {Task(std::string("a\0b", 3), "a")}), &v, &created, &err));
  EXPECT_EQ(err, std::string("task id \"a") + '\0' + "b\" cannot be stored");
  EXPECT_FALSE(
      registry_->PutChain(MakeChain(std::string(300, 'c'), {Task("a", "a")}), &v, &created, &err));
  EXPECT_TRUE(TaskVersions("a").empty());
}

TEST_F(RegistryTest, RefusesRecordsOfANewerVersion) {
  Put(MakeChain("etl", {Task("a", "a")}), true);
  std::string err;
  ASSERT_TRUE(store_->Write(
      [](WriteTxn& txn, std::string* e) {
        return txn.Put(Db::kChains, std::string("etl\0\0\0\0\2", 8), EncodeValue(7, "{}"), e);
      },
      &err));
  std::optional<ChainVersion> v;
  EXPECT_FALSE(registry_->GetChain("etl", 0, &v, &err));
  EXPECT_EQ(err,
            "chain etl v2: stored value has format version 7; this chaind understands up to 1: "
            "upgrade chaind");
  EXPECT_TRUE(registry_->GetChain("etl", 1, &v, &err)) << err;
  EXPECT_TRUE(v);
}

TEST_F(RegistryTest, ConcurrentPutsLoseNothing) {
  constexpr int kThreads = 4, kChainsEach = 10;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t] {
      for (int i = 0; i < kChainsEach; ++i) {
        std::string id = "c" + std::to_string(t) + "-" + std::to_string(i);
        ChainVersion v;
        bool created = false;
        std::string err;
        if (!registry_->PutChain(MakeChain(id, {Task("shared", "s"), Task(id, id)}), &v, &created,
                                 &err)) {
          ADD_FAILURE() << err;
        }
      }
    });
  }
  for (int i = 0; i < 50; ++i) {
    std::vector<ChainVersion> chains;
    std::string err;
    EXPECT_TRUE(registry_->ListChains(&chains, &err)) << err;
  }
  for (std::thread& t : threads) t.join();
  std::vector<TaskVersion> shared = TaskVersions("shared");
  ASSERT_EQ(shared.size(), 1u);
  EXPECT_EQ(shared[0].used_by.size(), size_t{kThreads * kChainsEach});
  std::vector<TaskVersion> tasks;
  std::string err;
  ASSERT_TRUE(registry_->ListTasks(&tasks, &err)) << err;
  EXPECT_EQ(tasks.size(), size_t{kThreads * kChainsEach + 1});
}

// Runs `body` in a child process, which ends with _exit(body()): no destructor, no close.
pid_t ForkChild(const std::function<int()>& body) {
  pid_t pid = fork();
  if (pid == 0) _exit(body());
  return pid;
}

int ExitStatusOf(pid_t pid) {
  int status = 0;
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

// LMDB commits are durable: a writer that dies without closing the store (here, inside an
// open read transaction) loses nothing. While another process (`holder`) keeps the store open,
// the dead writer's reader slot survives it, and the next Open clears it.
TEST_F(RegistryTest, SurvivesACrashOfTheWriter) {
  registry_.reset();
  store_.reset();
  const std::string dir = tmp_.path() + "/store";
  int ready[2], release[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(release), 0);
  pid_t holder = ForkChild([&] {
    close(ready[0]);
    close(release[1]);
    std::string err;
    std::unique_ptr<Store> store = Store::Open({.dir = dir}, &err);
    char c = 'r';
    if (!store || write(ready[1], &c, 1) != 1) return 2;
    return read(release[0], &c, 1) == 0 ? 0 : 3;  // until the parent closes its end
  });
  ASSERT_GT(holder, 0);
  close(ready[1]);
  close(release[0]);
  struct Release {
    ~Release() {
      close(fd);
      if (pid > 0) ExitStatusOf(pid);
    }
    int fd;
    pid_t pid;
  } release_holder{release[1], holder};
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  close(ready[0]);

  pid_t writer = ForkChild([&] {
    std::string err;
    std::unique_ptr<Store> store = Store::Open({.dir = dir}, &err);
    if (!store) return 2;
    Registry registry(store.get(), [] { return int64_t{42}; });
    ChainVersion v;
    bool created = false;
    if (!registry.PutChain(MakeChain("etl", {Task("a", "a")}), &v, &created, &err)) return 3;
    store->Read([](ReadTxn&, std::string*) -> bool { _exit(0); }, &err);
    return 4;
  });
  ASSERT_GT(writer, 0);
  ASSERT_EQ(ExitStatusOf(writer), 0);

  Reopen();
  EXPECT_EQ(store_->dead_readers_cleared(), 1);
  std::optional<ChainVersion> v = Get("etl");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->created_unix_ms, 42);
  EXPECT_EQ(TaskVersions("a").at(0).used_by, (Uses{{"etl", 1}}));
  EXPECT_EQ(Put(MakeChain("etl", {Task("a", "b")}), true).version, 2);
  close(release_holder.fd);
  release_holder.fd = -1;
  EXPECT_EQ(ExitStatusOf(holder), 0);
  release_holder.pid = -1;
}

}  // namespace
}  // namespace chainctl::daemon
