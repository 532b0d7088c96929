// HashSources, ExpandSourceGlobs and HashMemo (common/source_hash.h, source_glob.h, hash_memo.h):
// which files a task's sources are, what changes their digest, and the memo that turns reads
// into stats. Work is counted (files_read), never timed.
#include "common/source_hash.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ctime>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "tests/test_util.h"

namespace chainctl {
namespace {

using testing::ScopedTempDir;

constexpr int64_t kHour = 3600LL * 1'000'000'000;

int64_t RealNow() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
}

// A memo whose clock runs an hour ahead: files just written are old enough to be trusted.
HashMemo::Options AheadClock() {
  HashMemo::Options options;
  options.clock = [] { return RealNow() + kHour; };
  return options;
}

std::vector<std::string> Expand(const std::string& base, const std::vector<std::string>& globs) {
  std::vector<std::string> files;
  std::string err;
  EXPECT_TRUE(ExpandSourceGlobs(base, globs, GlobLimits{}, &files, &err)) << err;
  return files;
}

SourcesDigest HashOk(const std::string& base, const std::vector<std::string>& globs,
                     HashMemo* memo = nullptr) {
  SourcesDigest digest;
  std::string err;
  EXPECT_TRUE(HashSources(base, globs, memo, &digest, &err)) << err;
  return digest;
}

TEST(SourceGlobTest, StarQuestionClassAndDoubleStar) {
  ScopedTempDir tmp;
  for (const char* name : {"src/a.py", "src/b.txt", "src/x/c.py", "src/x/y/d.py", "src/.e.py",
                           "top.py", "f1.c", "f2.c", "fa.c", "f10.c"})
    tmp.WriteFile(name, name);
  using V = std::vector<std::string>;
  EXPECT_EQ(Expand(tmp.path(), {"src/*.py"}), (V{"src/.e.py", "src/a.py"}));
  EXPECT_EQ(Expand(tmp.path(), {"src/**/*.py"}),
            (V{"src/.e.py", "src/a.py", "src/x/c.py", "src/x/y/d.py"}));
  EXPECT_EQ(Expand(tmp.path(), {"**/*.py"}),
            (V{"src/.e.py", "src/a.py", "src/x/c.py", "src/x/y/d.py", "top.py"}));
  EXPECT_EQ(Expand(tmp.path(), {"f?.c"}), (V{"f1.c", "f2.c", "fa.c"}));
  EXPECT_EQ(Expand(tmp.path(), {"f[0-9].c"}), (V{"f1.c", "f2.c"}));
  EXPECT_EQ(Expand(tmp.path(), {"src/**"}),
            (V{"src/.e.py", "src/a.py", "src/b.txt", "src/x/c.py", "src/x/y/d.py"}));
  // Literal paths, "./", overlapping globs (no duplicates), folders never match, missing: none.
  EXPECT_EQ(Expand(tmp.path(), {"./top.py", "top.py", "*.py", "src", "src/x", "nope/*.py"}),
            (V{"top.py"}));
}

TEST(SourceGlobTest, BadPatternsAreErrors) {
  ScopedTempDir tmp;
  for (const char* bad : {"", "/etc/passwd", "../x", "a/../../b", "a**/b"}) {
    std::vector<std::string> files;
    std::string err;
    EXPECT_FALSE(ExpandSourceGlobs(tmp.path(), {bad}, GlobLimits{}, &files, &err)) << bad;
    EXPECT_NE(err.find("sources glob"), std::string::npos) << err;
  }
}

TEST(SourceGlobTest, SymlinksFileFollowedDanglingIgnoredFolderNotWalkedByDoubleStar) {
  ScopedTempDir tmp;
  std::string target = tmp.WriteFile("real/t.txt", "target");
  std::filesystem::create_directories(tmp.path() + "/p");
  std::filesystem::create_symlink(target, tmp.path() + "/p/link.txt");
  std::filesystem::create_symlink(tmp.path() + "/none", tmp.path() + "/p/dangling.txt");
  std::filesystem::create_directory_symlink(tmp.path() + "/p", tmp.path() + "/p/loop");
  EXPECT_EQ(Expand(tmp.path(), {"p/**/*.txt"}), std::vector<std::string>{"p/link.txt"});
}

TEST(SourceGlobTest, TheFileLimitAndTheEntryLimitAreErrors) {
  ScopedTempDir tmp;
  for (int i = 0; i < 6; ++i) tmp.WriteFile("d/f" + std::to_string(i), "x");
  std::vector<std::string> files;
  std::string err;
  GlobLimits five{.max_files = 5};
  EXPECT_FALSE(ExpandSourceGlobs(tmp.path(), {"d/*"}, five, &files, &err));
  EXPECT_NE(err.find("more than 5 files"), std::string::npos) << err;
  GlobLimits six{.max_files = 6};
  EXPECT_TRUE(ExpandSourceGlobs(tmp.path(), {"d/*"}, six, &files, &err)) << err;
  // A walk that matches nothing is still bounded by the entries it examines.
  GlobLimits entries{.max_entries = 4};
  EXPECT_FALSE(ExpandSourceGlobs(tmp.path(), {"**/*.none"}, entries, &files, &err));
  EXPECT_NE(err.find("entries"), std::string::npos) << err;
  SourcesDigest digest;
  EXPECT_FALSE(HashSources(tmp.path(), {"d/*"}, five, nullptr, &digest, &err));
}

TEST(SourceHashTest, DigestListsFilesInOrderWithCountsAndBytes) {
  ScopedTempDir tmp;
  tmp.WriteFile("b.py", "bb");
  tmp.WriteFile("a/z.py", "zzz");
  tmp.WriteFile("a.py", "a");
  SourcesDigest d = HashOk(tmp.path(), {"**/*.py"});
  ASSERT_EQ(d.entries.size(), 3u);
  EXPECT_EQ(d.entries[0].path, "a.py");
  EXPECT_EQ(d.entries[1].path, "a/z.py");
  EXPECT_EQ(d.entries[2].path, "b.py");
  EXPECT_EQ(d.entries[1].hash, HashBytes("zzz"));
  EXPECT_EQ(d.files, 3u);
  EXPECT_EQ(d.bytes, 6u);
  EXPECT_EQ(d.files_read, 3u);
  // The same files found by other globs, from another spelling of the folder: the same digest.
  EXPECT_EQ(HashOk(tmp.path() + "/./a/..", {"*.py", "a/*.py"}).digest, d.digest);
}

TEST(SourceHashTest, AChangedByteARenameAnAddedOrRemovedFileChangeTheDigest) {
  ScopedTempDir tmp;
  tmp.WriteFile("src/a.py", "print(1)\n");
  tmp.WriteFile("src/b.py", "print(2)\n");
  Hash128 original = HashOk(tmp.path(), {"src/*.py"}).digest;
  EXPECT_EQ(HashOk(tmp.path(), {"src/*.py"}).digest, original);  // deterministic

  tmp.WriteFile("src/a.py", "print(3)\n");  // one byte, same size
  Hash128 changed = HashOk(tmp.path(), {"src/*.py"}).digest;
  EXPECT_NE(changed, original);
  tmp.WriteFile("src/a.py", "print(1)\n");
  EXPECT_EQ(HashOk(tmp.path(), {"src/*.py"}).digest, original);

  std::filesystem::rename(tmp.path() + "/src/b.py", tmp.path() + "/src/c.py");
  EXPECT_NE(HashOk(tmp.path(), {"src/*.py"}).digest, original);
  std::filesystem::rename(tmp.path() + "/src/c.py", tmp.path() + "/src/b.py");
  EXPECT_EQ(HashOk(tmp.path(), {"src/*.py"}).digest, original);

  tmp.WriteFile("src/new.py", "");  // even an empty one
  EXPECT_NE(HashOk(tmp.path(), {"src/*.py"}).digest, original);
  std::filesystem::remove(tmp.path() + "/src/new.py");
  std::filesystem::remove(tmp.path() + "/src/b.py");
  EXPECT_NE(HashOk(tmp.path(), {"src/*.py"}).digest, original);
}

TEST(SourceHashTest, ASymlinkIsHashedAsItsTargetsContent) {
  ScopedTempDir tmp;
  std::string target = tmp.WriteFile("t/real", "content");
  std::filesystem::create_symlink(target, tmp.path() + "/link");
  SourcesDigest d = HashOk(tmp.path(), {"link"});
  ASSERT_EQ(d.entries.size(), 1u);
  EXPECT_EQ(d.entries[0].hash, HashBytes("content"));
  tmp.WriteFile("t/real", "changed");
  EXPECT_NE(HashOk(tmp.path(), {"link"}).digest, d.digest);
}

TEST(SourceHashTest, TheMemoTurnsReadsIntoStatsUntilAFileChanges) {
  ScopedTempDir tmp;
  for (int i = 0; i < 5; ++i)
    tmp.WriteFile("f" + std::to_string(i), std::string(100, static_cast<char>('a' + i)));
  HashMemo memo(AheadClock());
  SourcesDigest first = HashOk(tmp.path(), {"*"}, &memo);
  EXPECT_EQ(first.files_read, 5u);
  EXPECT_EQ(memo.size(), 5u);
  SourcesDigest second = HashOk(tmp.path(), {"*"}, &memo);
  EXPECT_EQ(second.files_read, 0u);
  EXPECT_EQ(second.bytes_read, 0u);
  EXPECT_EQ(second.digest, first.digest);
  EXPECT_EQ(second.bytes, 500u);

  tmp.WriteFile("f2", std::string(100, 'z'));  // same size: mtime and ctime tell
  SourcesDigest third = HashOk(tmp.path(), {"*"}, &memo);
  EXPECT_EQ(third.files_read, 1u);
  EXPECT_NE(third.digest, first.digest);
  EXPECT_EQ(third.digest, HashOk(tmp.path(), {"*"}).digest);  // what a memo-less hash says
}

// The racy-git rule: a file whose mtime or ctime is within 2 s of the hash's start is not
// memoised, so it is read again next time (a same-size rewrite in the same tick would keep its
// stamp). Once the clock is past the window it is memoised.
TEST(SourceHashTest, AFileYoungerThanTheRacyWindowIsReadEveryTime) {
  ScopedTempDir tmp;
  tmp.WriteFile("young", "v1");
  int64_t offset = 0;
  HashMemo::Options options;
  options.clock = [&offset] { return RealNow() + offset; };
  HashMemo memo(options);
  EXPECT_EQ(HashOk(tmp.path(), {"young"}, &memo).files_read, 1u);
  EXPECT_EQ(memo.size(), 0u);
  EXPECT_EQ(HashOk(tmp.path(), {"young"}, &memo).files_read, 1u);
  // An mtime set back in time does not make it old: its ctime is now.
  timespec old[2] = {{0, UTIME_OMIT}, {1, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, (tmp.path() + "/young").c_str(), old, 0), 0);
  EXPECT_EQ(HashOk(tmp.path(), {"young"}, &memo).files_read, 1u);
  EXPECT_EQ(memo.size(), 0u);
  offset = 3'000'000'000;  // 3 s later: outside the window
  EXPECT_EQ(HashOk(tmp.path(), {"young"}, &memo).files_read, 1u);
  EXPECT_EQ(memo.size(), 1u);
  EXPECT_EQ(HashOk(tmp.path(), {"young"}, &memo).files_read, 0u);
}

TEST(HashMemoTest, StoreRefusesRacyStampsByTheRule) {
  HashMemo::Options options;
  options.clock = [] { return int64_t{100'000'000'000}; };
  HashMemo memo(options);
  FileStamp stamp{.size = 1, .mtime_ns = 97'000'000'000, .ctime_ns = 97'000'000'000};
  int64_t start = memo.Now();
  EXPECT_TRUE(memo.Store("/old", stamp, HashBytes("x"), start));  // 3 s before
  stamp.ctime_ns = 98'500'000'000;                                // 1.5 s before
  EXPECT_FALSE(memo.Store("/young", stamp, HashBytes("x"), start));
  stamp.ctime_ns = 98'000'000'000;  // exactly 2 s before: still racy
  EXPECT_FALSE(memo.Store("/edge", stamp, HashBytes("x"), start));
  EXPECT_EQ(memo.size(), 1u);
}

TEST(HashMemoTest, LookupNeedsEveryStampFieldEqual) {
  HashMemo memo(AheadClock());
  FileStamp stamp{.size = 3, .mtime_ns = 10, .ctime_ns = 11, .inode = 12, .dev = 13};
  ASSERT_TRUE(memo.Store("/p", stamp, HashBytes("abc"), memo.Now()));
  EXPECT_EQ(memo.Lookup("/p", stamp), HashBytes("abc"));
  EXPECT_FALSE(memo.Lookup("/q", stamp));
  for (int field = 0; field < 5; ++field) {
    FileStamp other = stamp;
    uint64_t* words[] = {&other.size, reinterpret_cast<uint64_t*>(&other.mtime_ns),
                         reinterpret_cast<uint64_t*>(&other.ctime_ns), &other.inode, &other.dev};
    ++*words[field];
    EXPECT_FALSE(memo.Lookup("/p", other)) << field;
  }
  EXPECT_EQ(memo.hits(), 1u);
  EXPECT_EQ(memo.misses(), 6u);
}

TEST(HashMemoTest, BoundedDroppingTheLeastRecentlyUsed) {
  HashMemo::Options options = AheadClock();
  options.max_entries = 2;
  HashMemo memo(options);
  FileStamp stamp{.size = 1};
  memo.Store("/a", stamp, HashBytes("a"), memo.Now());
  memo.Store("/b", stamp, HashBytes("b"), memo.Now());
  EXPECT_TRUE(memo.Lookup("/a", stamp));  // /b is now the least recently used
  memo.Store("/c", stamp, HashBytes("c"), memo.Now());
  EXPECT_EQ(memo.size(), 2u);
  EXPECT_TRUE(memo.Lookup("/a", stamp));
  EXPECT_FALSE(memo.Lookup("/b", stamp));
  EXPECT_TRUE(memo.Lookup("/c", stamp));
}

TEST(HashMemoTest, SavedAndLoadedItAvoidsReadsInAnotherProcessLife) {
  ScopedTempDir tmp;
  tmp.WriteFile("src/a", "aaa");
  tmp.WriteFile("src/b", "bbb");
  std::string file = tmp.path() + "/memo";
  Hash128 digest;
  {
    HashMemo memo(AheadClock());
    digest = HashOk(tmp.path(), {"src/*"}, &memo).digest;
    std::string err;
    ASSERT_TRUE(memo.Save(file, &err)) << err;
  }
  HashMemo loaded(AheadClock());
  std::string why;
  ASSERT_TRUE(loaded.Load(file, &why)) << why;
  EXPECT_EQ(loaded.size(), 2u);
  SourcesDigest again = HashOk(tmp.path(), {"src/*"}, &loaded);
  EXPECT_EQ(again.files_read, 0u);
  EXPECT_EQ(again.digest, digest);
  // No temporary file is left beside it.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(tmp.path()), {}), 2);
}

TEST(HashMemoTest, ACorruptTruncatedOrMissingMemoFileIsIgnoredAndRebuilt) {
  ScopedTempDir tmp;
  tmp.WriteFile("src/a", "aaa");
  std::string file = tmp.path() + "/memo";
  HashMemo memo(AheadClock());
  HashOk(tmp.path(), {"src/*"}, &memo);
  std::string err;
  ASSERT_TRUE(memo.Save(file, &err)) << err;
  std::string bytes = testing::ReadFileOrDie(file);
  std::string flipped = bytes;
  flipped[flipped.size() / 2] ^= 1;
  for (const std::string& bad :
       {flipped, bytes.substr(0, bytes.size() - 3), std::string("junk"), std::string()}) {
    tmp.WriteFile("memo", bad);
    HashMemo loaded(AheadClock());
    std::string why;
    EXPECT_FALSE(loaded.Load(file, &why));
    EXPECT_FALSE(why.empty());
    EXPECT_EQ(loaded.size(), 0u);
    EXPECT_EQ(HashOk(tmp.path(), {"src/*"}, &loaded).files_read, 1u);  // rebuilt
    EXPECT_EQ(loaded.size(), 1u);
  }
  HashMemo none;
  EXPECT_FALSE(none.Load(tmp.path() + "/missing"));
}

// A file listed by the glob and gone when its turn to be read comes: an error naming it. The
// memo's clock is the hook that runs between the listing and the read.
TEST(SourceHashTest, AFileThatVanishesBeforeItsReadIsAnErrorNamingIt) {
  ScopedTempDir tmp;
  tmp.WriteFile("a", "1");
  std::string doomed = tmp.WriteFile("b", "2");
  HashMemo::Options options;
  options.clock = [doomed] {
    unlink(doomed.c_str());
    return RealNow();
  };
  HashMemo memo(options);
  SourcesDigest digest;
  std::string err;
  EXPECT_FALSE(HashSources(tmp.path(), {"*"}, &memo, &digest, &err));
  EXPECT_NE(err.find("source b vanished"), std::string::npos) << err;
}

TEST(SourceHashTest, AMissingBaseFolderIsAnError) {
  SourcesDigest digest;
  std::string err;
  EXPECT_FALSE(HashSources("/nonexistent/chain", {"*"}, nullptr, &digest, &err));
  EXPECT_NE(err.find("/nonexistent/chain"), std::string::npos) << err;
}

// Several HashSources at once over one memo (chaind's thread pool): the same digests, and every
// file read once per thread at most.
TEST(SourceHashTest, ConcurrentCallsShareOneMemo) {
  ScopedTempDir tmp;
  for (int i = 0; i < 50; ++i) tmp.WriteFile("d/f" + std::to_string(i), std::to_string(i));
  Hash128 expected = HashOk(tmp.path(), {"d/*"}).digest;
  HashMemo memo(AheadClock());
  std::vector<std::thread> threads;
  std::vector<SourcesDigest> results(4);
  for (auto& result : results)
    threads.emplace_back([&] { result = HashOk(tmp.path(), {"d/*"}, &memo); });
  for (auto& t : threads) t.join();
  for (const auto& result : results) EXPECT_EQ(result.digest, expected);
  EXPECT_EQ(memo.size(), 50u);
  EXPECT_EQ(HashOk(tmp.path(), {"d/*"}, &memo).files_read, 0u);
}

}  // namespace
}  // namespace chainctl
