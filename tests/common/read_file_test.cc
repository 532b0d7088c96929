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
  int error = -1;
  ASSERT_TRUE(ReadFileBytes(tmp.path() + "/f", &read, &error));
  EXPECT_EQ(error, 0);
  EXPECT_EQ(read, bytes);
}

TEST(ReadFileTest, AMissingFileIsENOENT) {
  testing::ScopedTempDir tmp;
  std::string read = "old";
  int error = 0;
  EXPECT_FALSE(ReadFileBytes(tmp.path() + "/missing", &read, &error));
  EXPECT_EQ(error, ENOENT);
  EXPECT_EQ(read, "");
}

// A read(2) that fails after the open succeeded: where std::istreambuf_iterator throws
// std::ios_base::failure (what killed chaind reading /proc/PID/environ of a process that
// had just exited: ESRCH).
TEST(ReadFileTest, AFailedReadIsAnErrorNotAnException) {
  testing::ScopedTempDir tmp;
  std::string read;
  int error = 0;
  bool ok = true;
  EXPECT_NO_THROW(ok = ReadFileBytes(tmp.path(), &read, &error));
  EXPECT_FALSE(ok);
  EXPECT_EQ(error, EISDIR);
}

}  // namespace
}  // namespace chainctl
