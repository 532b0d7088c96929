// ReadFileBytes (common/read_file.h): whole files, and errors as values, never thrown.
#include "common/read_file.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <fstream>
#include <string>

#include "tests/test_util.h"

namespace chainctl {
namespace {

TEST(ReadFileTest, ReadsTheWholeFileWithItsNulBytes) {
  testing::ScopedTempDir tmp;
  std::string bytes(200000, 'x');
  bytes[7] = '\0';
  std::ofstream(tmp.path() + "/f", std::ios::binary) << bytes;
  std::string read;
  EXPECT_EQ(ReadFileBytes(tmp.path() + "/f", &read), 0);
  EXPECT_EQ(read, bytes);
  EXPECT_EQ(ReadFileBytes(tmp.path() + "/f", &read, bytes.size() - 1), EFBIG);
}

TEST(ReadFileTest, AMissingFileIsENOENT) {
  testing::ScopedTempDir tmp;
  std::string read = "old";
  EXPECT_EQ(ReadFileBytes(tmp.path() + "/missing", &read), ENOENT);
  EXPECT_EQ(read, "");
}

// A /proc file (size 0 in stat) is read whole.
TEST(ReadFileTest, AProcFileIsReadWhole) {
  std::string read;
  EXPECT_EQ(ReadFileBytes("/proc/self/cmdline", &read), 0);
  EXPECT_FALSE(read.empty());
}

// Where std::istreambuf_iterator throws std::ios_base::failure (what killed chaind reading
// /proc/PID/environ of a process that had just exited: ESRCH), an error comes back.
TEST(ReadFileTest, WhatCannotBeReadIsAnErrorNotAnException) {
  testing::ScopedTempDir tmp;
  std::string read;
  int error = 0;
  EXPECT_NO_THROW(error = ReadFileBytes(tmp.path(), &read));
  EXPECT_EQ(error, EINVAL) << "a directory is not a regular file";
}

}  // namespace
}  // namespace chainctl
