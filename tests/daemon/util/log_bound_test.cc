// A task's stderr log kept within --max-log on disk (issue 15, item 5), and read around what
// was dropped.
#include "daemon/util/log_bound.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "tests/test_util.h"

namespace chainctl::daemon {
namespace {

constexpr uint64_t kMiB = 1 << 20;

// `lines` numbered lines of 32 bytes each: "line 00000001 of a chatty task\n".
std::string Lines(int lines) {
  std::string text;
  char line[40];
  for (int i = 1; i <= lines; ++i) {
    snprintf(line, sizeof line, "line %08d of a chatty task.\n", i);
    text += line;
  }
  return text;
}

uint64_t OnDisk(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0);
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

uint64_t SizeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0);
  return static_cast<uint64_t>(st.st_size);
}

class LogBoundTest : public ::testing::Test {
 protected:
  void SetUp() override {
    text_ = Lines(320 * 1024);  // 10 MiB
    path_ = dir_.WriteFile("attempt-1.log", text_);
  }
  testing::ScopedTempDir dir_;
  std::string path_;
  std::string text_;
};

TEST_F(LogBoundTest, WithinTheBoundNothingChanges) {
  EXPECT_EQ(BoundLog(path_, 16 * kMiB), 0u);
  EXPECT_EQ(BoundLog(path_, 0), 0u) << "0: no bound";
  EXPECT_EQ(testing::ReadFileOrDie(path_), text_);
  int fd = open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(StartOfLastData(fd, text_.size(), kMiB), text_.size() - kMiB);
  EXPECT_EQ(StartOfLastData(fd, text_.size(), 16 * kMiB), 0u);
  close(fd);
}

TEST_F(LogBoundTest, OverTheBoundItsFirstAndLastHalvesAreKept) {
  uint64_t freed = BoundLog(path_, 2 * kMiB);
  EXPECT_GT(freed, 7 * kMiB);
  EXPECT_LE(OnDisk(path_), 2 * kMiB + 8192);
  int fd = open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  uint64_t from = 0, to = 0, size = SizeOf(path_);
  if (size < text_.size()) {  // no PUNCH_HOLE here: cut to its first half
    EXPECT_EQ(size, kMiB);
    EXPECT_EQ(testing::ReadFileOrDie(path_), text_.substr(0, kMiB));
    close(fd);
    GTEST_SKIP() << "this file system cannot punch holes; the fallback was checked";
  }
  // Its size and offsets stay (the task writes on where it was); the middle is a hole.
  EXPECT_EQ(size, text_.size());
  LogData(fd, 0, size, &from, &to);
  EXPECT_EQ(from, 0u);
  EXPECT_EQ(to, kMiB) << "the first half is data";
  LogData(fd, to, size, &from, &to);
  EXPECT_EQ(from, (size - kMiB) / 4096 * 4096) << "then a hole up to the last half";
  EXPECT_EQ(to, size);
  std::string tail(size - from, '\0');
  ASSERT_EQ(pread(fd, tail.data(), tail.size(), static_cast<off_t>(from)),
            static_cast<ssize_t>(tail.size()));
  EXPECT_EQ(tail, text_.substr(from)) << "the last half is kept as written";
  LogData(fd, size, size, &from, &to);
  EXPECT_EQ(from, size);
  // A reader's "last N bytes" counts data only: all 2 MiB of it fit in 16 MiB.
  EXPECT_EQ(StartOfLastData(fd, size, 16 * kMiB), 0u);
  EXPECT_EQ(StartOfLastData(fd, size, kMiB / 2), size - kMiB / 2);
  close(fd);
  EXPECT_EQ(BoundLog(path_, 2 * kMiB), 0u) << "done once, nothing more to free";
}

TEST_F(LogBoundTest, TheMarkerSaysHowMuchWasDropped) {
  EXPECT_EQ(DroppedMarker(1234),
            "\n[chaind: 1234 bytes of this log were dropped here, to keep it within chaind "
            "--max-log]\n");
}

}  // namespace
}  // namespace chainctl::daemon
