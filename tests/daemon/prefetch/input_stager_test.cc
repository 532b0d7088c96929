#include "daemon/prefetch/input_stager.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/daemon/prefetch/http_origin_fixture.h"
#include "tests/test_util.h"

namespace chainctl::daemon {
namespace {

namespace fs = std::filesystem;
using chainctl::testing::HttpOrigin;
using chainctl::testing::ReadFileOrDie;
using chainctl::testing::ScopedTempDir;

void Append(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::app) << text;
}

// Rewrites `path` in place (same inode, same size) and gives it another mtime.
void RewriteSameSize(const std::string& path, const std::string& text) {
  std::fstream(path, std::ios::in | std::ios::out) << text;
  struct timespec times[2] = {{0, UTIME_OMIT}, {1'000'000'000, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
}

uint64_t InodeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return static_cast<uint64_t>(st.st_ino);
}

class InputStagerTest : public ::testing::Test {
 protected:
  InputStagerTest() {
    a_ = tmp_.WriteFile("data/a.csv", "1,2\n");
    b_ = tmp_.WriteFile("data/b.csv", "3,4\n");
    dest_ = tmp_.path() + "/work/inputs/files";
  }

  InputCacheOptions Options(bool hardlink = true) {
    InputCacheOptions options;
    options.dir = tmp_.path() + "/cache";
    options.hardlink_local = hardlink;
    return options;
  }
  std::string Glob() { return tmp_.path() + "/data/*.csv"; }
  std::string Dest(const std::string& name) { return dest_ + "/" + name; }

  ScopedTempDir tmp_;
  std::string a_, b_, dest_;
};

TEST_F(InputStagerTest, StagesAGlobSortedByHardLinks) {
  InputStager stager(Options());
  StageResult result = stager.Stage({Glob()}, dest_, /*link=*/true);
  ASSERT_TRUE(result.ok) << result.error;
  ASSERT_EQ(result.files.size(), 2u);
  EXPECT_EQ(result.files[0].source, a_);
  EXPECT_EQ(result.files[0].path, Dest("a.csv"));
  EXPECT_EQ(result.files[0].input, Glob());
  EXPECT_EQ(result.files[1].source, b_);
  EXPECT_TRUE(result.files[0].linked);
  EXPECT_EQ(result.files[0].inode, InodeOf(a_));
  EXPECT_EQ(InodeOf(Dest("a.csv")), InodeOf(a_));
  EXPECT_EQ(ReadFileOrDie(Dest("b.csv")), "3,4\n");
  EXPECT_EQ(result.bytes, 8u);
  EXPECT_EQ(result.bytes_copied, 0u);
  std::string why;
  EXPECT_TRUE(stager.StillFresh({Glob()}, result, &why)) << why;
}

TEST_F(InputStagerTest, CopiesWhenHardLinksAreNotAllowed) {
  InputStager stager(Options(/*hardlink=*/false));
  StageResult result = stager.Stage({a_}, dest_, /*link=*/true);
  ASSERT_TRUE(result.ok) << result.error;
  ASSERT_EQ(result.files.size(), 1u);
  EXPECT_FALSE(result.files[0].linked);
  EXPECT_EQ(result.files[0].inode, InodeOf(a_));  // the source's identity
  EXPECT_NE(InodeOf(Dest("a.csv")), InodeOf(a_));
  EXPECT_EQ(ReadFileOrDie(Dest("a.csv")), "1,2\n");
  std::string why;
  EXPECT_TRUE(stager.StillFresh({a_}, result, &why)) << why;
}

// Issue 15 item 10: without `inputs.link` a task gets files of its own; what it writes to them
// reaches neither the user's file nor the cache.
TEST_F(InputStagerTest, WithoutLinkWritingAStagedFileChangesNeitherSourceNorCache) {
  HttpOrigin origin;
  origin.Set("/x.tar", HttpOrigin::Ok("tarball", "\"t1\""));
  InputStager stager(Options());
  std::string url = origin.Url("/x.tar");
  StageResult result = stager.Stage({a_, url}, dest_, /*link=*/false);
  ASSERT_TRUE(result.ok) << result.error;
  ASSERT_EQ(result.files.size(), 2u);
  EXPECT_FALSE(result.files[0].linked);
  EXPECT_FALSE(result.files[1].linked);
  EXPECT_NE(InodeOf(Dest("a.csv")), InodeOf(a_));
  std::string why;
  EXPECT_TRUE(stager.StillFresh({a_, url}, result, &why)) << why;
  {
    std::ofstream(Dest("a.csv"), std::ios::app) << "appended by the task\n";
    std::ofstream(Dest("x.tar"), std::ios::app) << "appended by the task\n";
  }
  EXPECT_EQ(ReadFileOrDie(a_), "1,2\n");
  EXPECT_FALSE(stager.StillFresh({a_, url}, result, &why));  // what was staged was changed
  StageResult again = stager.Stage({a_, url}, dest_, /*link=*/false);
  ASSERT_TRUE(again.ok) << again.error;
  EXPECT_EQ(ReadFileOrDie(Dest("a.csv")), "1,2\n");
  EXPECT_EQ(ReadFileOrDie(Dest("x.tar")), "tarball");  // the cache's entry is intact
  EXPECT_LE(again.bytes_copied, 4u + 7u);  // copies (none if reflinked); no download: a 304
}

TEST_F(InputStagerTest, PlaceLocalFileCopiesWithTheSourcesMtime) {
  fs::create_directories(dest_);
  StagedFile file;
  uint64_t copied = 0;
  std::string err;
  ASSERT_TRUE(PlaceLocalFile(a_, Dest("x"), /*allow_hardlink=*/false, &file, &copied, &err)) << err;
  EXPECT_FALSE(file.linked);
  EXPECT_EQ(file.size, 4u);
  struct stat src {
  }, dst{};
  ASSERT_EQ(stat(a_.c_str(), &src), 0);
  ASSERT_EQ(stat(Dest("x").c_str(), &dst), 0);
  EXPECT_EQ(dst.st_mtim.tv_sec, src.st_mtim.tv_sec);
  EXPECT_EQ(dst.st_mtim.tv_nsec, src.st_mtim.tv_nsec);
  EXPECT_EQ(ReadFileOrDie(Dest("x")), "1,2\n");
  // Replaces what is there.
  ASSERT_TRUE(PlaceLocalFile(b_, Dest("x"), /*allow_hardlink=*/true, &file, &copied, &err)) << err;
  EXPECT_TRUE(file.linked);
  EXPECT_EQ(ReadFileOrDie(Dest("x")), "3,4\n");
}

TEST_F(InputStagerTest, ModifiedInPlaceIsStaleWhenLinked) {
  InputStager stager(Options());
  StageResult result = stager.Stage({a_}, dest_, /*link=*/true);
  ASSERT_TRUE(result.ok) << result.error;
  Append(a_, "5,6\n");
  std::string why;
  EXPECT_FALSE(stager.StillFresh({a_}, result, &why));
  EXPECT_EQ(why, a_ + " changed since it was staged (size)");
  result = stager.Stage({a_}, dest_, /*link=*/true);
  ASSERT_TRUE(result.ok) << result.error;
  RewriteSameSize(a_, "9,9\n5,6\n");
  EXPECT_FALSE(stager.StillFresh({a_}, result, &why));
  EXPECT_EQ(why, a_ + " changed since it was staged (mtime)");
}

TEST_F(InputStagerTest, ModifiedInPlaceIsStaleWhenCopied) {
  InputStager stager(Options(/*hardlink=*/false));
  StageResult result = stager.Stage({a_}, dest_, /*link=*/true);
  ASSERT_TRUE(result.ok) << result.error;
  RewriteSameSize(a_, "7,7\n");
  EXPECT_EQ(ReadFileOrDie(Dest("a.csv")), "1,2\n");  // the copy still has the old content
  std::string why;
  EXPECT_FALSE(stager.StillFresh({a_}, result, &why));
  EXPECT_EQ(why, a_ + " changed since it was staged (mtime)");
}

TEST_F(InputStagerTest, AChangedCopyInDestIsStale) {
  InputStager stager(Options(/*hardlink=*/false));
  StageResult result = stager.Stage({a_}, dest_, /*link=*/true);
  ASSERT_TRUE(result.ok) << result.error;
  ASSERT_EQ(chmod(Dest("a.csv").c_str(), 0644), 0);
  Append(Dest("a.csv"), "junk");
  std::string why;
  EXPECT_FALSE(stager.StillFresh({a_}, result, &why));
  EXPECT_EQ(why, "the staged " + Dest("a.csv") + " was modified");
}

TEST_F(InputStagerTest, ReplacedByRenameIsStale) {
  for (bool hardlink : {true, false}) {
    InputStager stager(Options(hardlink));
    StageResult result = stager.Stage({a_}, dest_, /*link=*/true);
    ASSERT_TRUE(result.ok) << result.error;
    std::string next = tmp_.WriteFile("data/a.csv.new", "1,2\n");  // same size
    ASSERT_EQ(std::rename(next.c_str(), a_.c_str()), 0);
    std::string why;
    EXPECT_FALSE(stager.StillFresh({a_}, result, &why));
    EXPECT_EQ(why, a_ + " changed since it was staged (replaced)");
  }
}

TEST_F(InputStagerTest, DeletedIsStale) {
  InputStager stager(Options());
  StageResult result = stager.Stage({a_, b_}, dest_, /*link=*/true);
  ASSERT_TRUE(result.ok) << result.error;
  ASSERT_EQ(unlink(b_.c_str()), 0);
  std::string why;
  EXPECT_FALSE(stager.StillFresh({a_, b_}, result, &why));
  EXPECT_EQ(why, b_ + ": no such file");

  result = stager.Stage({Glob()}, dest_, /*link=*/true);
  ASSERT_TRUE(result.ok) << result.error;
  tmp_.WriteFile("data/b.csv", "3,4\n");
  result = stager.Stage({Glob()}, dest_, /*link=*/true);
  ASSERT_TRUE(result.ok) << result.error;
  ASSERT_EQ(unlink(b_.c_str()), 0);
  EXPECT_FALSE(stager.StillFresh({Glob()}, result, &why));
  EXPECT_EQ(why, Glob() + " now matches a different set of files (-" + b_ + ")");
}

TEST_F(InputStagerTest, AGlobMatchingANewFileIsStale) {
  InputStager stager(Options());
  StageResult result = stager.Stage({Glob()}, dest_, /*link=*/true);
  ASSERT_TRUE(result.ok) << result.error;
  std::string c = tmp_.WriteFile("data/c.csv", "x\n");
  std::string why;
  EXPECT_FALSE(stager.StillFresh({Glob()}, result, &why));
  EXPECT_EQ(why, Glob() + " now matches a different set of files (+" + c + ")");
}

TEST_F(InputStagerTest, RestagingRemovesWhatNoLongerBelongs) {
  InputStager stager(Options());
  ASSERT_TRUE(stager.Stage({Glob()}, dest_, /*link=*/true).ok);
  StageResult result = stager.Stage({a_}, dest_, /*link=*/true);
  ASSERT_TRUE(result.ok) << result.error;
  EXPECT_TRUE(fs::exists(Dest("a.csv")));
  EXPECT_FALSE(fs::exists(Dest("b.csv")));
}

TEST_F(InputStagerTest, ErrorsNameTheInput) {
  InputStager stager(Options());
  std::string none = tmp_.path() + "/data/*.bin";
  EXPECT_EQ(stager.Stage({none}, dest_, /*link=*/true).error, none + " matches no file");
  std::string missing = tmp_.path() + "/data/z.csv";
  EXPECT_EQ(stager.Stage({missing}, dest_, /*link=*/true).error, missing + ": no such file");
  EXPECT_EQ(stager.Stage({"data/*.csv"}, dest_, /*link=*/true).error,
            "data/*.csv: not an absolute path or an http(s) URL");
  std::string dir = tmp_.path() + "/data";
  EXPECT_EQ(stager.Stage({dir}, dest_, /*link=*/true).error,
            dir + ": is a directory (stage its files with a glob)");
  std::string other = tmp_.WriteFile("other/a.csv", "x");
  EXPECT_EQ(stager.Stage({Glob(), other}, dest_, /*link=*/true).error,
            "name clash: " + a_ + " and " + other + " are both staged as a.csv");
  EXPECT_FALSE(stager.Stage({"ftp://host/x"}, dest_, /*link=*/true).ok);
}

// Files under /proc say size 0 and give data; some (/proc/kmsg) never end or block. A copy reads
// at most the size a file says it has, so none can hold a thread-pool thread for ever.
TEST_F(InputStagerTest, APseudoFileWithoutAFixedSizeIsRefused) {
  InputStager stager(Options());
  StageResult result = stager.Stage({"/proc/cpuinfo"}, dest_, /*link=*/true);
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.error,
            "/proc/cpuinfo: not staged: it has no fixed size (it gives more than the 0 bytes it "
            "says it has, like the files under /proc); stage a copy of it");
  // An empty regular file is fine.
  std::string empty = tmp_.WriteFile("data/empty.txt", "");
  result = stager.Stage({empty}, dest_, /*link=*/true);
  ASSERT_TRUE(result.ok) << result.error;
  EXPECT_EQ(ReadFileOrDie(Dest("empty.txt")), "");
}

TEST_F(InputStagerTest, StagesAndRevalidatesAUrl) {
  HttpOrigin origin;
  origin.Set("/x.tar", HttpOrigin::Ok("tarball", "\"t1\""));
  InputStager stager(Options());
  std::string url = origin.Url("/x.tar?token=1");
  origin.Set("/x.tar?token=1", HttpOrigin::Ok("tarball", "\"t1\""));
  StageResult result = stager.Stage({a_, url}, dest_, /*link=*/true);
  ASSERT_TRUE(result.ok) << result.error;
  ASSERT_EQ(result.files.size(), 2u);
  const StagedFile& file = result.files[1];
  EXPECT_EQ(file.source, url);
  EXPECT_EQ(file.path, Dest("x.tar"));
  EXPECT_EQ(file.etag, "\"t1\"");
  EXPECT_TRUE(file.linked);
  EXPECT_EQ(ReadFileOrDie(Dest("x.tar")), "tarball");
  EXPECT_EQ(result.bytes, 4u + 7u);
  EXPECT_EQ(result.bytes_copied, 7u);
  std::string why;
  EXPECT_TRUE(stager.StillFresh({a_, url}, result, &why)) << why;

  StageResult again = stager.Stage({a_, url}, dest_, /*link=*/true);  // a 304: nothing downloaded
  ASSERT_TRUE(again.ok) << again.error;
  EXPECT_EQ(again.bytes_copied, 0u);

  origin.Set("/x.tar?token=1", HttpOrigin::Ok("tarball v2", "\"t2\""));
  EXPECT_FALSE(stager.StillFresh({a_, url}, again, &why));
  EXPECT_EQ(why, url + " changed since it was staged (GET: 200 OK)");
  again = stager.Stage({a_, url}, dest_, /*link=*/true);
  ASSERT_TRUE(again.ok) << again.error;
  EXPECT_EQ(ReadFileOrDie(Dest("x.tar")), "tarball v2");
  nlohmann::json stats = stager.Stats();
  EXPECT_EQ(stats["hits"], 1);
  EXPECT_EQ(stats["misses"], 2);
}

TEST_F(InputStagerTest, AStagedUrlChangedInDestIsStale) {
  HttpOrigin origin;
  origin.Set("/x.bin", HttpOrigin::Ok("bytes", "\"b\""));
  InputStager stager(Options());
  StageResult result = stager.Stage({origin.Url("/x.bin")}, dest_, /*link=*/true);
  ASSERT_TRUE(result.ok) << result.error;
  struct stat st {};
  ASSERT_EQ(stat(Dest("x.bin").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0444u);  // the cache's file: not for writing
  ASSERT_EQ(chmod(Dest("x.bin").c_str(), 0644), 0);
  Append(Dest("x.bin"), "!");
  std::string why;
  EXPECT_FALSE(stager.StillFresh({origin.Url("/x.bin")}, result, &why));
  EXPECT_EQ(why, "the staged " + Dest("x.bin") + " was modified, replaced or removed");
}

TEST_F(InputStagerTest, ConcurrentStagesOfOneUrl) {
  HttpOrigin origin;
  std::string body(100'000, 'q');
  origin.Set("/q.bin", HttpOrigin::Ok(body, "\"q\""));
  InputStager stager(Options());
  std::vector<StageResult> results(6);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([&, i] {
      results[i] = stager.Stage({origin.Url("/q.bin")}, dest_ + std::to_string(i), /*link=*/true);
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (size_t i = 0; i < results.size(); ++i) {
    ASSERT_TRUE(results[i].ok) << results[i].error;
    EXPECT_EQ(ReadFileOrDie(dest_ + std::to_string(i) + "/q.bin"), body);
  }
  EXPECT_EQ(stager.Stats()["entries"], 1);
  EXPECT_EQ(stager.Stats()["misses"], 1);
  EXPECT_EQ(origin.SeenAt("/q.bin").requests, 6);
}

TEST_F(InputStagerTest, AFailedDownloadSaysWhich) {
  HttpOrigin origin;
  InputStager stager(Options());
  StageResult result = stager.Stage({origin.Url("/nope.bin")}, dest_, /*link=*/true);
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.error, "GET " + origin.Url("/nope.bin") + ": 404 Not Found");
}

// Issue 15, item 9: a run staging a huge file could be neither cancelled nor shut down. A copy
// asks `cancelled` before each input and between its 1 MiB chunks, and gives up when told.
TEST_F(InputStagerTest, Issue15ACopyGivesUpBetweenChunksWhenCancelled) {
  std::string big = tmp_.WriteFile("data/big.bin", std::string(4 << 20, 'x'));
  InputStager stager(Options());
  int asked = 0;
  StageResult result =
      stager.Stage({a_, big}, dest_, /*link=*/false, [&asked] { return ++asked >= 4; });
  if (result.ok && result.bytes_copied == 4u) {
    GTEST_SKIP() << "this file system reflinks: nothing is copied in chunks";
  }
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.error, "cancelled");
  // Asked before a.csv, before its one chunk, before big.bin, then at its first chunk.
  EXPECT_EQ(asked, 4);
  EXPECT_FALSE(std::filesystem::exists(Dest("big.bin"))) << "the partial copy is removed";
  asked = 0;
  result = stager.Stage({a_, big}, dest_, /*link=*/false, [&asked] { return ++asked > 100; });
  ASSERT_TRUE(result.ok) << result.error;
  EXPECT_EQ(asked, 2 + 1 + 4) << "each input, and each chunk of each copy";
}

}  // namespace
}  // namespace chainctl::daemon
