#include "daemon/prefetch/http_cache.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>
#include <vector>

#include "daemon/prefetch/http_get.h"
#include "tests/daemon/prefetch/http_origin_fixture.h"
#include "tests/test_util.h"

namespace chainctl::daemon {
namespace {

namespace fs = std::filesystem;
using chainctl::testing::HttpOrigin;
using chainctl::testing::ReadFileOrDie;
using chainctl::testing::ScopedTempDir;

// Names in the cache folder (entries, metadata and any temporary file).
std::vector<std::string> CacheFiles(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& item : fs::directory_iterator(dir)) names.push_back(item.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

class HttpCacheTest : public ::testing::Test {
 protected:
  HttpCacheTest() { fs::create_directories(Dest("")); }

  InputCacheOptions Options(uint64_t max_bytes = 1 << 20) {
    InputCacheOptions options;
    options.dir = tmp_.path() + "/cache";
    options.max_bytes = max_bytes;
    options.ttl_ms = 1000;
    return options;
  }
  CacheClock Clock() {
    return [this] { return now_ms_.load(); };
  }
  std::string Dest(const std::string& name) { return tmp_.path() + "/dest/" + name; }

  ScopedTempDir tmp_;
  HttpOrigin origin_;
  std::atomic<int64_t> now_ms_{1'000'000};
};

TEST_F(HttpCacheTest, DownloadsThenA304ReusesTheEntry) {
  origin_.Set("/x.tar", HttpOrigin::Ok("payload", "\"v1\"", "Mon, 02 Jan 2023 00:00:00 GMT"));
  HttpCache cache(Options(), Clock());
  FetchedFile first, second;
  std::string err;
  ASSERT_TRUE(cache.Fetch(origin_.Url("/x.tar"), Dest("a"), &first, &err)) << err;
  EXPECT_TRUE(first.downloaded);
  EXPECT_EQ(first.size, 7u);
  EXPECT_EQ(first.etag, "\"v1\"");
  EXPECT_EQ(first.last_modified, "Mon, 02 Jan 2023 00:00:00 GMT");
  EXPECT_EQ(ReadFileOrDie(Dest("a")), "payload");

  ASSERT_TRUE(cache.Fetch(origin_.Url("/x.tar"), Dest("b"), &second, &err)) << err;
  EXPECT_FALSE(second.downloaded);
  EXPECT_EQ(second.inode, first.inode);  // the same cached file, linked again
  EXPECT_EQ(ReadFileOrDie(Dest("b")), "payload");
  HttpOrigin::Seen seen = origin_.SeenAt("/x.tar");
  EXPECT_EQ(seen.requests, 2);
  EXPECT_EQ(seen.not_modified, 1);
  EXPECT_EQ(seen.if_none_match, "\"v1\"");
  nlohmann::json stats = cache.Stats();
  EXPECT_EQ(stats["entries"], 1);
  EXPECT_EQ(stats["bytes"], 7);
  EXPECT_EQ(stats["hits"], 1);
  EXPECT_EQ(stats["misses"], 1);
}

TEST_F(HttpCacheTest, A200WithANewEtagReplacesTheEntry) {
  origin_.Set("/x", HttpOrigin::Ok("old", "\"v1\""));
  HttpCache cache(Options(), Clock());
  FetchedFile first, second;
  std::string err;
  ASSERT_TRUE(cache.Fetch(origin_.Url("/x"), Dest("a"), &first, &err)) << err;
  origin_.Set("/x", HttpOrigin::Ok("newer", "\"v2\""));
  ASSERT_TRUE(cache.Fetch(origin_.Url("/x"), Dest("b"), &second, &err)) << err;
  EXPECT_TRUE(second.downloaded);
  EXPECT_EQ(second.etag, "\"v2\"");
  EXPECT_NE(second.inode, first.inode);
  EXPECT_EQ(ReadFileOrDie(Dest("b")), "newer");
  EXPECT_EQ(ReadFileOrDie(Dest("a")), "old");  // the earlier task keeps what it was given
  EXPECT_EQ(origin_.SeenAt("/x").if_none_match, "\"v1\"");
  EXPECT_EQ(cache.Stats()["entries"], 1);
  EXPECT_EQ(cache.Stats()["bytes"], 5);
}

TEST_F(HttpCacheTest, LastModifiedAloneRevalidates) {
  origin_.Set("/x", HttpOrigin::Ok("data", "", "Tue, 03 Jan 2023 00:00:00 GMT"));
  HttpCache cache(Options(), Clock());
  FetchedFile fetched;
  std::string err;
  ASSERT_TRUE(cache.Fetch(origin_.Url("/x"), Dest("a"), &fetched, &err)) << err;
  ASSERT_TRUE(cache.Fetch(origin_.Url("/x"), Dest("b"), &fetched, &err)) << err;
  EXPECT_FALSE(fetched.downloaded);
  EXPECT_EQ(origin_.SeenAt("/x").if_modified_since, "Tue, 03 Jan 2023 00:00:00 GMT");
}

TEST_F(HttpCacheTest, WithoutValidatorsEveryFetchDownloads) {
  origin_.Set("/x", HttpOrigin::Ok("data"));
  HttpCache cache(Options(), Clock());
  FetchedFile fetched;
  std::string err;
  ASSERT_TRUE(cache.Fetch(origin_.Url("/x"), Dest("a"), &fetched, &err)) << err;
  ASSERT_TRUE(cache.Fetch(origin_.Url("/x"), Dest("b"), &fetched, &err)) << err;
  EXPECT_TRUE(fetched.downloaded);
  HttpOrigin::Seen seen = origin_.SeenAt("/x");
  EXPECT_EQ(seen.requests, 2);
  EXPECT_EQ(seen.if_none_match, "");
  EXPECT_EQ(seen.if_modified_since, "");
  EXPECT_EQ(cache.Stats()["misses"], 2);
}

// Issue 15: validators go into the cache's JSON metadata; an ETag with the byte 0xff made the
// dump throw on the thread pool (chaind ended). It is dropped: the entry is never fresh.
TEST_F(HttpCacheTest, Issue15ValidatorsThatAreNotUtf8AreDropped) {
  origin_.Set("/x", HttpOrigin::Ok("data", "\"v\xFF\"", "Tue, 03 Jan 2023 \xFF"));
  HttpCache cache(Options(), Clock());
  FetchedFile fetched;
  std::string err;
  ASSERT_TRUE(cache.Fetch(origin_.Url("/x"), Dest("a"), &fetched, &err)) << err;
  EXPECT_EQ(fetched.etag, "");
  EXPECT_EQ(fetched.last_modified, "");
  ASSERT_TRUE(cache.Fetch(origin_.Url("/x"), Dest("b"), &fetched, &err)) << err;
  EXPECT_TRUE(fetched.downloaded);
  EXPECT_EQ(ReadFileOrDie(Dest("b")), "data");
}

TEST_F(HttpCacheTest, NotFoundLeavesNoEntry) {
  HttpCache cache(Options(), Clock());
  FetchedFile fetched;
  std::string err;
  EXPECT_FALSE(cache.Fetch(origin_.Url("/missing"), Dest("a"), &fetched, &err));
  EXPECT_EQ(err, "GET " + origin_.Url("/missing") + ": 404 Not Found");
  EXPECT_TRUE(CacheFiles(Options().dir).empty());
  EXPECT_FALSE(fs::exists(Dest("a")));
  EXPECT_EQ(cache.Stats()["entries"], 0);
}

TEST_F(HttpCacheTest, TruncatedBodyLeavesNoEntry) {
  origin_.Set("/x", HttpOrigin::Truncated("short", "\"v1\""));
  HttpCache cache(Options(), Clock());
  FetchedFile fetched;
  std::string err;
  EXPECT_FALSE(cache.Fetch(origin_.Url("/x"), Dest("a"), &fetched, &err));
  EXPECT_EQ(err, "GET " + origin_.Url("/x") + ": transfer closed with 100 bytes remaining to read");
  EXPECT_TRUE(CacheFiles(Options().dir).empty());
  EXPECT_FALSE(fs::exists(Dest("a")));
}

TEST_F(HttpCacheTest, ConnectionRefusedIsAClearError) {
  // A port that was just free: nothing listens on it.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), len), 0);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  close(fd);
  std::string url = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/x";
  HttpCache cache(Options(), Clock());
  FetchedFile fetched;
  std::string err;
  EXPECT_FALSE(cache.Fetch(url, Dest("a"), &fetched, &err));
  EXPECT_EQ(err.rfind("GET " + url + ": ", 0), 0u) << err;
  EXPECT_NE(err.find("onnect"), std::string::npos) << err;
  EXPECT_TRUE(CacheFiles(Options().dir).empty());
}

TEST_F(HttpCacheTest, OtherSchemesAreRefusedAlsoThroughRedirects) {
  HttpCache cache(Options(), Clock());
  FetchedFile fetched;
  std::string err;
  EXPECT_FALSE(cache.Fetch("file:///etc/passwd", Dest("a"), &fetched, &err));
  EXPECT_NE(err.find("only http and https"), std::string::npos) << err;
  origin_.Set("/evil", HttpOrigin::Redirect("file:///etc/passwd"));
  EXPECT_FALSE(cache.Fetch(origin_.Url("/evil"), Dest("a"), &fetched, &err));
  EXPECT_NE(err.find("\"file\" not supported"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(Dest("a")));
  EXPECT_TRUE(CacheFiles(Options().dir).empty());
}

TEST_F(HttpCacheTest, FollowsRedirects) {
  origin_.Set("/old", HttpOrigin::Redirect(origin_.Url("/new")));
  origin_.Set("/new", HttpOrigin::Ok("moved", "\"m\""));
  HttpCache cache(Options(), Clock());
  FetchedFile fetched;
  std::string err;
  ASSERT_TRUE(cache.Fetch(origin_.Url("/old"), Dest("a"), &fetched, &err)) << err;
  EXPECT_EQ(ReadFileOrDie(Dest("a")), "moved");
  EXPECT_EQ(fetched.etag, "\"m\"");
}

TEST_F(HttpCacheTest, EvictsLeastRecentlyUsedWithinTheBudget) {
  for (const char* path : {"/a", "/b", "/c"}) {
    origin_.Set(path,
                HttpOrigin::Ok(std::string(100, path[1]), std::string("\"") + path[1] + "\""));
  }
  HttpCache cache(Options(/*max_bytes=*/250), Clock());
  FetchedFile fetched;
  std::string err;
  ASSERT_TRUE(cache.Fetch(origin_.Url("/a"), Dest("a1"), &fetched, &err)) << err;
  now_ms_ += 10;
  ASSERT_TRUE(cache.Fetch(origin_.Url("/b"), Dest("b1"), &fetched, &err)) << err;
  now_ms_ += 10;
  ASSERT_TRUE(cache.Fetch(origin_.Url("/a"), Dest("a2"), &fetched, &err)) << err;  // a used last
  now_ms_ += 10;
  ASSERT_TRUE(cache.Fetch(origin_.Url("/c"), Dest("c1"), &fetched, &err)) << err;
  nlohmann::json stats = cache.Stats();
  EXPECT_EQ(stats["entries"], 2);
  EXPECT_EQ(stats["bytes"], 200);
  EXPECT_EQ(stats["evictions"], 1);
  EXPECT_EQ(ReadFileOrDie(Dest("b1")), std::string(100, 'b'));  // the task's link survives
  ASSERT_TRUE(cache.Fetch(origin_.Url("/a"), Dest("a3"), &fetched, &err)) << err;
  EXPECT_FALSE(fetched.downloaded);  // kept
  ASSERT_TRUE(cache.Fetch(origin_.Url("/b"), Dest("b2"), &fetched, &err)) << err;
  EXPECT_TRUE(fetched.downloaded);  // evicted
  EXPECT_LE(cache.Stats()["bytes"].get<uint64_t>(), 250u);
}

TEST_F(HttpCacheTest, AnEntryBiggerThanTheBudgetIsStagedButNotKept) {
  origin_.Set("/big", HttpOrigin::Ok(std::string(300, 'x'), "\"big\""));
  HttpCache cache(Options(/*max_bytes=*/250), Clock());
  FetchedFile fetched;
  std::string err;
  ASSERT_TRUE(cache.Fetch(origin_.Url("/big"), Dest("a"), &fetched, &err)) << err;
  EXPECT_EQ(ReadFileOrDie(Dest("a")), std::string(300, 'x'));
  EXPECT_EQ(cache.Stats()["entries"], 0);
  EXPECT_TRUE(CacheFiles(Options().dir).empty());
}

TEST_F(HttpCacheTest, TrimRemovesEntriesPastTheTtl) {
  origin_.Set("/a", HttpOrigin::Ok("aaa", "\"a\""));
  origin_.Set("/b", HttpOrigin::Ok("bbb", "\"b\""));
  HttpCache cache(Options(), Clock());
  FetchedFile fetched;
  std::string err;
  ASSERT_TRUE(cache.Fetch(origin_.Url("/a"), Dest("a"), &fetched, &err)) << err;
  now_ms_ += 600;
  ASSERT_TRUE(cache.Fetch(origin_.Url("/b"), Dest("b"), &fetched, &err)) << err;
  now_ms_ += 600;  // a unused for 1200 ms > ttl 1000; b for 600
  cache.Trim();
  nlohmann::json stats = cache.Stats();
  EXPECT_EQ(stats["entries"], 1);
  EXPECT_EQ(stats["expirations"], 1);
  EXPECT_EQ(CacheFiles(Options().dir).size(), 2u);  // b and b.meta
  ASSERT_TRUE(cache.Fetch(origin_.Url("/b"), Dest("b2"), &fetched, &err)) << err;
  EXPECT_FALSE(fetched.downloaded);
}

TEST_F(HttpCacheTest, EntriesSurviveARestartAndLeftoversGo) {
  origin_.Set("/x", HttpOrigin::Ok("kept", "\"k\""));
  FetchedFile fetched;
  std::string err;
  {
    HttpCache cache(Options(), Clock());
    ASSERT_TRUE(cache.Fetch(origin_.Url("/x"), Dest("a"), &fetched, &err)) << err;
  }
  tmp_.WriteFile("cache/tmp.abc123", "partial download");
  HttpCache cache(Options(), Clock());
  EXPECT_EQ(cache.Stats()["entries"], 1);
  EXPECT_EQ(CacheFiles(Options().dir).size(), 2u);
  ASSERT_TRUE(cache.Fetch(origin_.Url("/x"), Dest("b"), &fetched, &err)) << err;
  EXPECT_FALSE(fetched.downloaded);
  EXPECT_EQ(ReadFileOrDie(Dest("b")), "kept");
}

TEST_F(HttpCacheTest, MakesItsFolderPrivate) {
  HttpCache cache(Options(), Clock());
  struct stat st {};
  ASSERT_EQ(stat(Options().dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

TEST_F(HttpCacheTest, ConcurrentFetchesOfOneUrlShareOneEntry) {
  std::string body(64 * 1024, 'z');
  origin_.Set("/x", HttpOrigin::Ok(body, "\"z\""));
  HttpCache cache(Options(), Clock());
  constexpr int kThreads = 8;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      FetchedFile fetched;
      std::string err;
      if (!cache.Fetch(origin_.Url("/x"), Dest(std::to_string(i)), &fetched, &err)) ++failures;
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures, 0);
  for (int i = 0; i < kThreads; ++i) EXPECT_EQ(ReadFileOrDie(Dest(std::to_string(i))), body);
  nlohmann::json stats = cache.Stats();
  EXPECT_EQ(stats["entries"], 1);
  EXPECT_EQ(stats["misses"], 1);
  EXPECT_EQ(stats["hits"], kThreads - 1);
  EXPECT_EQ(CacheFiles(Options().dir).size(), 2u);  // no temporary file left
}

TEST_F(HttpCacheTest, RevalidateSaysFreshOnlyOnA304) {
  origin_.Set("/x", HttpOrigin::Ok("v1", "\"v1\""));
  HttpCache cache(Options(), Clock());
  std::string why;
  EXPECT_EQ(cache.Revalidate(origin_.Url("/x"), "\"v1\"", "", &why), Revalidation::kFresh);
  origin_.Set("/x", HttpOrigin::Ok("v2", "\"v2\""));
  EXPECT_EQ(cache.Revalidate(origin_.Url("/x"), "\"v1\"", "", &why), Revalidation::kStale);
  EXPECT_NE(why.find("200"), std::string::npos) << why;
  EXPECT_EQ(cache.Revalidate(origin_.Url("/x"), "", "", &why), Revalidation::kStale);
  EXPECT_EQ(cache.Revalidate(origin_.Url("/gone"), "\"v1\"", "", &why), Revalidation::kStale);
  EXPECT_NE(why.find("404"), std::string::npos) << why;
}

}  // namespace
}  // namespace chainctl::daemon
