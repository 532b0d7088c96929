#include "daemon/store/task_cache.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "common/json_text.h"
#include "tests/test_util.h"

namespace chainctl::daemon {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::ReadFileOrDie;
using testing::ScopedTempDir;

const Hash128 kKey{0x0123456789abcdefULL, 0xfedcba9876543210ULL};

class TaskCacheTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(uint64_t{1} << 40); }

  void Reopen(uint64_t max_bytes) {
    cache_ = std::make_unique<TaskCache>(
        TaskCache::Options{.dir = tmp_.path() + "/cache", .max_bytes = max_bytes});
    std::string err;
    ASSERT_TRUE(cache_->Open(&err)) << err;
  }

  // A file below the temporary folder with `mode`.
  void Write(const std::string& name, const std::string& content, mode_t mode = 0644) {
    chmod(tmp_.WriteFile(name, content).c_str(), mode);
  }

  // The task's result: out/ files, project outputs and a source that is no output.
  void MakeResult() {
    Write("out/a.json", "{\"a\": 1}\n");
    Write("out/sub/b.bin", std::string("\0\1\2binary\xff", 10), 0600);
    Write("project/src/main.c", "int main() {}\n");
    Write("project/build/app", "#!/bin/sh\necho app\n", 0755);
    Write("project/build/lib/x.a", "archive", 0640);
    Write("project/data.txt", "data\n");
  }

  bool Store(const Hash128& key, const std::vector<std::string>& outputs = {"build/**", "data.txt"},
             const json& output = {{"n", 1}}, std::string* err_out = nullptr) {
    std::string err;
    bool ok = cache_->Store(key, Places("out"), outputs, output, {{"made_of", "test"}}, &err);
    if (err_out) *err_out = err;
    EXPECT_TRUE(ok || err_out) << err;
    return ok;
  }

  TaskCache::Lookup Restore(const Hash128& key, const std::string& outdir, json* output = nullptr,
                            std::string* why = nullptr) {
    json out, info;
    std::string reason;
    TaskCache::Lookup lookup = cache_->Restore(key, Places(outdir), &out, &info, &reason);
    if (output) *output = out;
    if (why) *why = reason;
    return lookup;
  }

  TaskCache::Places Places(const std::string& outdir) const {
    return {.outdir = tmp_.path() + "/" + outdir, .project_dir = tmp_.path() + "/project"};
  }

  std::string EntryDir(const Hash128& key) const {
    std::string hex = key.Hex();
    return tmp_.path() + "/cache/entries/" + hex.substr(0, 2) + "/" + hex;
  }

  // Sets the manifest's mtime (what LRU goes by) to `seconds` after the epoch.
  void SetUsed(const Hash128& key, time_t seconds) {
    timespec times[2] = {{seconds, 0}, {seconds, 0}};
    ASSERT_EQ(utimensat(AT_FDCWD, (EntryDir(key) + "/manifest.json").c_str(), times, 0), 0);
  }

  size_t Count(const std::string& dir) const {
    if (!fs::exists(dir)) return 0;
    return static_cast<size_t>(std::distance(fs::recursive_directory_iterator(dir), {}));
  }

  ScopedTempDir tmp_;
  std::unique_ptr<TaskCache> cache_;
};

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

TEST_F(TaskCacheTest, RestoreGivesBackTheOutputAndFilesWithTheirModes) {
  MakeResult();
  json output = {{"n", 1}, {"f", 1.5}, {"s", "grüße"}, {"list", {1, nullptr, true}}};
  ASSERT_TRUE(Store(kKey, {"build/**", "data.txt"}, output));
  fs::remove_all(tmp_.path() + "/project/build");
  fs::remove(tmp_.path() + "/project/data.txt");

  json restored, info;
  std::string why;
  ASSERT_EQ(cache_->Restore(kKey, Places("out2"), &restored, &info, &why), TaskCache::Lookup::kHit)
      << why;
  EXPECT_EQ(restored, output);
  EXPECT_EQ(info, (json{{"made_of", "test"}}));
  for (const char* name : {"a.json", "sub/b.bin"}) {
    std::string a = tmp_.path() + "/out/" + name, b = tmp_.path() + "/out2/" + name;
    EXPECT_EQ(ReadFileOrDie(a), ReadFileOrDie(b)) << name;
    EXPECT_EQ(ModeOf(a), ModeOf(b)) << name;
  }
  EXPECT_EQ(ReadFileOrDie(tmp_.path() + "/project/build/app"), "#!/bin/sh\necho app\n");
  EXPECT_EQ(ModeOf(tmp_.path() + "/project/build/app"), 0755u);
  EXPECT_EQ(ReadFileOrDie(tmp_.path() + "/project/build/lib/x.a"), "archive");
  EXPECT_EQ(ModeOf(tmp_.path() + "/project/build/lib/x.a"), 0640u);
  EXPECT_EQ(ReadFileOrDie(tmp_.path() + "/project/data.txt"), "data\n");
  EXPECT_EQ(Count(tmp_.path() + "/out2"), 3u);  // a.json, sub, sub/b.bin: no temporary files
  EXPECT_FALSE(fs::exists(EntryDir(kKey) + "/project/src"));  // not an output
}

TEST_F(TaskCacheTest, RestoreReplacesAnExistingProjectFile) {
  MakeResult();
  ASSERT_TRUE(Store(kKey));
  Write("project/data.txt", "changed since\n", 0600);
  ASSERT_EQ(Restore(kKey, "out2"), TaskCache::Lookup::kHit);
  EXPECT_EQ(ReadFileOrDie(tmp_.path() + "/project/data.txt"), "data\n");
  EXPECT_EQ(ModeOf(tmp_.path() + "/project/data.txt"), 0644u);
}

TEST_F(TaskCacheTest, AnUnknownKeyIsAMiss) {
  std::string why = "unset";
  EXPECT_EQ(Restore(kKey, "out2", nullptr, &why), TaskCache::Lookup::kMiss);
  EXPECT_EQ(why, "");
  EXPECT_FALSE(fs::exists(tmp_.path() + "/out2"));
}

class TaskCacheCorruptTest : public TaskCacheTest {
 public:
  // Stores a result, damages its entry with `damage`, and expects Restore to find it corrupt
  // (saying `expected_why`), remove it, and put nothing into the out folder or the project.
  void Check(const std::function<void(const std::string& entry)>& damage,
             const std::string& expected_why) {
    MakeResult();
    ASSERT_TRUE(Store(kKey));
    fs::remove_all(tmp_.path() + "/project/build");
    fs::remove(tmp_.path() + "/project/data.txt");
    damage(EntryDir(kKey));
    std::string why;
    EXPECT_EQ(Restore(kKey, "out2", nullptr, &why), TaskCache::Lookup::kCorrupt);
    EXPECT_NE(why.find(expected_why), std::string::npos) << why;
    EXPECT_FALSE(fs::exists(EntryDir(kKey)));
    EXPECT_EQ(cache_->Scan().entries, 0u);
    EXPECT_EQ(Count(tmp_.path() + "/out2"), 0u);
    EXPECT_FALSE(fs::exists(tmp_.path() + "/project/build"));
    EXPECT_FALSE(fs::exists(tmp_.path() + "/project/data.txt"));
    EXPECT_EQ(Count(tmp_.path() + "/cache/tmp"), 0u);  // the removal is over
    EXPECT_EQ(Restore(kKey, "out2"), TaskCache::Lookup::kMiss);
  }

  // The manifest with `edit` applied and its checksum made right again.
  static void Rewrite(const std::string& entry, const std::function<void(json*)>& edit) {
    std::string path = entry + "/manifest.json";
    json manifest = json::parse(ReadFileOrDie(path));
    manifest.erase("checksum");
    edit(&manifest);
    manifest["checksum"] = HashBytes(DumpJson(manifest)).Hex();
    std::ofstream(path, std::ios::trunc) << DumpJson(manifest);
  }
};

TEST_F(TaskCacheCorruptTest, AFlippedByteInTheLastFileChecked) {
  // data.txt is the last file listed: every other file passed its check before it.
  Check(
      [](const std::string& entry) {
        std::fstream f(entry + "/project/data.txt", std::ios::in | std::ios::out);
        f.seekp(2);
        f.put('X');
      },
      "project/data.txt: its content differs");
}

TEST_F(TaskCacheCorruptTest, ATruncatedManifest) {
  Check([](const std::string& entry) { fs::resize_file(entry + "/manifest.json", 40); },
        "manifest.json: not JSON");
}

TEST_F(TaskCacheCorruptTest, AnEditedOutputWithTheOldChecksum) {
  Check(
      [](const std::string& entry) {
        std::string path = entry + "/manifest.json";
        std::string text = ReadFileOrDie(path);
        size_t at = text.find("\"output\":{\"n\":1}");
        ASSERT_NE(at, std::string::npos) << text;
        text.replace(at, 16, "\"output\":{\"n\":2}");
        std::ofstream(path, std::ios::trunc) << text;
      },
      "manifest.json: wrong checksum");
}

TEST_F(TaskCacheCorruptTest, APathWithDotDotEvenWithARightChecksum) {
  Check(
      [](const std::string& entry) {
        Rewrite(entry, [](json* m) { (*m)["files"][0]["path"] = "../../escaped"; });
      },
      "unsafe path \"../../escaped\"");
}

TEST_F(TaskCacheCorruptTest, AnAbsolutePathOrAnEmptyComponent) {
  Check(
      [](const std::string& entry) {
        Rewrite(entry, [](json* m) { (*m)["files"][1]["path"] = "/etc/passwd"; });
      },
      "unsafe path");
  Check(
      [](const std::string& entry) {
        Rewrite(entry, [](json* m) { (*m)["files"][1]["path"] = "sub//b.bin"; });
      },
      "unsafe path");
}

TEST_F(TaskCacheCorruptTest, AMissingFile) {
  Check([](const std::string& entry) { fs::remove(entry + "/out/sub/b.bin"); },
        "out/sub/b.bin: No such file");
}

TEST_F(TaskCacheTest, TheSecondStoreOfAKeyKeepsTheFirstEntry) {
  MakeResult();
  ASSERT_TRUE(Store(kKey, {"data.txt"}, {{"n", 1}}));
  ASSERT_TRUE(Store(kKey, {"data.txt"}, {{"n", 2}}));
  EXPECT_EQ(cache_->Scan().entries, 1u);
  EXPECT_EQ(Count(tmp_.path() + "/cache/tmp"), 0u);  // the loser's copy is gone
  json output;
  ASSERT_EQ(Restore(kKey, "out2", &output), TaskCache::Lookup::kHit);
  EXPECT_EQ(output, (json{{"n", 1}}));
}

TEST_F(TaskCacheTest, AnOutputsGlobThatMatchesNothingIsFine) {
  Write("project/src/main.c", "int main() {}\n");
  ASSERT_TRUE(Store(kKey, {"dist/**", "*.whl"}));
  EXPECT_EQ(Restore(kKey, "out2"), TaskCache::Lookup::kHit);
  EXPECT_EQ(Count(tmp_.path() + "/out2"), 0u);
  EXPECT_EQ(Count(EntryDir(kKey)), 1u);  // the manifest only
}

TEST_F(TaskCacheTest, ABadGlobFailsTheStoreAndLeavesNothing) {
  MakeResult();
  std::string err;
  EXPECT_FALSE(Store(kKey, {"../outside/*"}, {{"n", 1}}, &err));
  EXPECT_NE(err.find("outputs: "), std::string::npos) << err;
  EXPECT_EQ(cache_->Scan().entries, 0u);
  EXPECT_EQ(Count(tmp_.path() + "/cache/tmp"), 0u);
}

TEST_F(TaskCacheTest, ScanCountsEntriesAndTheirBytes) {
  TaskCache::Stats empty = cache_->Scan();
  EXPECT_EQ(empty.entries, 0u);
  EXPECT_EQ(empty.bytes, 0u);
  EXPECT_EQ(empty.dir, tmp_.path() + "/cache");
  EXPECT_EQ(empty.max_bytes, uint64_t{1} << 40);
  MakeResult();
  ASSERT_TRUE(Store(kKey));
  ASSERT_TRUE(Store(Hash128{1, 2}, {}));
  TaskCache::Stats stats = cache_->Scan();
  EXPECT_EQ(stats.entries, 2u);
  uint64_t files = 9 + 10;        // out/a.json, out/sub/b.bin
  uint64_t project = 19 + 7 + 5;  // build/app, build/lib/x.a, data.txt
  uint64_t manifests = fs::file_size(EntryDir(kKey) + "/manifest.json") +
                       fs::file_size(EntryDir(Hash128{1, 2}) + "/manifest.json");
  EXPECT_EQ(stats.bytes, 2 * files + project + manifests);
}

TEST_F(TaskCacheTest, PruneRemovesTheLeastRecentlyUsedFirst) {
  Write("out/f", std::string(1000, 'x'));
  const Hash128 a{1, 1}, b{2, 2}, c{3, 3};
  for (const Hash128& key : {a, b, c}) ASSERT_TRUE(Store(key, {}));
  SetUsed(a, 100);
  SetUsed(b, 300);
  SetUsed(c, 200);
  uint64_t each = cache_->Scan().bytes / 3;
  uint64_t bytes = 0;
  EXPECT_EQ(cache_->Prune(2 * each + each / 2, &bytes), 1u);  // a, the oldest
  EXPECT_EQ(bytes, each);
  EXPECT_FALSE(fs::exists(EntryDir(a)));
  EXPECT_TRUE(fs::exists(EntryDir(b)));
  EXPECT_TRUE(fs::exists(EntryDir(c)));
  // A hit makes c the most recently used: b goes next.
  ASSERT_EQ(Restore(c, "out2"), TaskCache::Lookup::kHit);
  EXPECT_EQ(cache_->Prune(each + each / 2), 1u);
  EXPECT_FALSE(fs::exists(EntryDir(b)));
  EXPECT_TRUE(fs::exists(EntryDir(c)));
  EXPECT_EQ(cache_->Prune(each), 0u);  // within the budget
}

TEST_F(TaskCacheTest, StorePrunesToNineTenthsOfTheBudgetWhenOverIt) {
  Write("out/f", std::string(1000, 'x'));
  ASSERT_TRUE(Store(Hash128{1, 1}, {}));
  uint64_t each = cache_->Scan().bytes;
  Reopen(each + each / 2);  // room for one entry and a half
  SetUsed(Hash128{1, 1}, 100);
  ASSERT_TRUE(Store(Hash128{2, 2}, {}));
  EXPECT_FALSE(fs::exists(EntryDir(Hash128{1, 1})));
  EXPECT_TRUE(fs::exists(EntryDir(Hash128{2, 2})));
  EXPECT_EQ(cache_->Scan().entries, 1u);
}

TEST_F(TaskCacheTest, ClearRemovesEverything) {
  MakeResult();
  ASSERT_TRUE(Store(kKey));
  ASSERT_TRUE(Store(Hash128{1, 2}, {}));
  uint64_t before = cache_->Scan().bytes;
  uint64_t bytes = 0;
  EXPECT_EQ(cache_->Clear(&bytes), 2u);
  EXPECT_EQ(bytes, before);
  EXPECT_EQ(cache_->Scan().entries, 0u);
  EXPECT_EQ(Restore(kKey, "out2"), TaskCache::Lookup::kMiss);
  EXPECT_EQ(cache_->Clear(), 0u);
}

TEST_F(TaskCacheTest, RecordLastThenReadLast) {
  EXPECT_EQ(cache_->ReadLast("ci/build"), std::nullopt);
  std::string err;
  json parts = {{"version", 3}, {"sources", "abc"}};
  ASSERT_TRUE(cache_->RecordLast("ci/build", parts, &err)) << err;
  ASSERT_TRUE(cache_->RecordLast("ci build", {{"version", 1}}, &err)) << err;
  EXPECT_EQ(cache_->ReadLast("ci/build"), parts);
  EXPECT_EQ(cache_->ReadLast("ci build"), (json{{"version", 1}}));
  ASSERT_TRUE(cache_->RecordLast("ci/build", {{"version", 4}}, &err)) << err;
  EXPECT_EQ(cache_->ReadLast("ci/build"), (json{{"version", 4}}));
  EXPECT_EQ(cache_->ReadLast("../ci/build"), std::nullopt);
  for (const auto& file : fs::directory_iterator(tmp_.path() + "/cache/last")) {
    EXPECT_EQ(file.path().filename().string().find('/'), std::string::npos);
  }
  EXPECT_EQ(Count(tmp_.path() + "/cache/last"), 2u);
}

TEST_F(TaskCacheTest, OpenKeepsEntriesAndCountsThem) {
  MakeResult();
  ASSERT_TRUE(Store(kKey));
  Reopen(uint64_t{1} << 40);
  EXPECT_EQ(cache_->Scan().entries, 1u);
  EXPECT_EQ(Restore(kKey, "out2"), TaskCache::Lookup::kHit);
}

// A store and restores of one key at once: a restore finds all of the entry or none of it.
TEST_F(TaskCacheTest, ConcurrentStoreAndRestoreNeverRestoreAPart) {
  for (int i = 0; i < 40; ++i)
    Write("out/f" + std::to_string(i), std::string(4096, static_cast<char>('a' + i % 26)));
  for (int round = 0; round < 20; ++round) {
    cache_->Clear();
    std::atomic<bool> stored{false};
    std::thread writer([&] {
      std::string err;
      EXPECT_TRUE(cache_->Store(kKey, Places("out"), {}, {{"round", round}}, {}, &err)) << err;
      stored = true;
    });
    int hits = 0;
    for (int attempt = 0; attempt < 100'000 && (!stored || hits == 0); ++attempt) {
      std::string outdir = "r" + std::to_string(round) + "-" + std::to_string(attempt);
      json output;
      TaskCache::Lookup lookup = Restore(kKey, outdir, &output);
      ASSERT_NE(lookup, TaskCache::Lookup::kCorrupt);
      if (lookup == TaskCache::Lookup::kMiss) {
        EXPECT_EQ(Count(tmp_.path() + "/" + outdir), 0u);
        continue;
      }
      ++hits;
      EXPECT_EQ(output, (json{{"round", round}}));
      EXPECT_EQ(Count(tmp_.path() + "/" + outdir), 40u);
    }
    writer.join();
    EXPECT_GT(hits, 0);
  }
}

}  // namespace
}  // namespace chainctl::daemon
