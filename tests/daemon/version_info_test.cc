#include "daemon/version_info.h"

#include <gtest/gtest.h>

namespace chainctl::daemon {
namespace {

TEST(VersionInfo, NamesTheDaemon) { EXPECT_TRUE(VersionLine().starts_with("chaind 0.")); }

}  // namespace
}  // namespace chainctl::daemon
