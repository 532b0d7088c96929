#include "common/units.h"

#include <gtest/gtest.h>

namespace chainctl {
namespace {

using std::chrono::milliseconds;

TEST(ParseDuration, AcceptsUnitsAndFractions) {
  std::string err;
  EXPECT_EQ(ParseDuration("250ms", &err), milliseconds(250));
  EXPECT_EQ(ParseDuration("1.5s", &err), milliseconds(1500));
  EXPECT_EQ(ParseDuration("2m", &err), milliseconds(120'000));
  EXPECT_EQ(ParseDuration("1h", &err), milliseconds(3'600'000));
  EXPECT_EQ(ParseDuration("1h30m", &err), milliseconds(5'400'000));
  EXPECT_EQ(ParseDuration("30d", &err), milliseconds(2'592'000'000));
  EXPECT_EQ(ParseDuration("0s", &err), milliseconds(0));
  EXPECT_EQ(ParseDuration(".5s", &err), milliseconds(500));
  EXPECT_EQ(ParseDuration("0.0005s", &err), milliseconds(0));  // truncated below 1ms
}

TEST(ParseDuration, RejectsGarbageWithAReason) {
  std::string err;
  for (const char* bad : {"", "5", "5 s", "s", "-1s", "1.s", "1w", "5 parsecs", "1s2", "ms"}) {
    err.clear();
    EXPECT_FALSE(ParseDuration(bad, &err)) << bad;
    EXPECT_NE(err.find("duration"), std::string::npos) << bad << ": " << err;
  }
  EXPECT_FALSE(ParseDuration("5", &err));
  EXPECT_EQ(err,
            "duration \"5\" has no unit: expected a number and a unit (ms, s, m, h, d), "
            "e.g. 250ms, 1.5s, 2m, 1h30m");
}

TEST(ParseDuration, RejectsOverflow) {
  std::string err;
  EXPECT_FALSE(ParseDuration("99999999999999999999s", &err));
  EXPECT_EQ(err, "duration \"99999999999999999999s\" is too large");
  EXPECT_FALSE(ParseDuration("9223372036854775807h", &err));
  EXPECT_EQ(err, "duration \"9223372036854775807h\" is too large");
  EXPECT_TRUE(ParseDuration("9223372036854775807ms", &err));
  EXPECT_FALSE(ParseDuration("9223372036854775808ms", &err));
}

TEST(FormatDuration, ShortestExactForm) {
  EXPECT_EQ(FormatDuration(milliseconds(0)), "0s");
  EXPECT_EQ(FormatDuration(milliseconds(250)), "250ms");
  EXPECT_EQ(FormatDuration(milliseconds(1500)), "1.5s");
  EXPECT_EQ(FormatDuration(milliseconds(90'000)), "1m30s");
  EXPECT_EQ(FormatDuration(milliseconds(3'600'000)), "1h");
  EXPECT_EQ(FormatDuration(milliseconds(3'600'001)), "1h1ms");
  std::string err;
  for (int64_t ms : {1, 999, 1001, 59'999, 61'500, 86'400'000}) {
    EXPECT_EQ(ParseDuration(FormatDuration(milliseconds(ms)), &err), milliseconds(ms)) << ms;
  }
}

TEST(ParseSize, AcceptsBytesAndSuffixes) {
  std::string err;
  EXPECT_EQ(ParseSize("0", &err), 0u);
  EXPECT_EQ(ParseSize("4096", &err), 4096u);
  EXPECT_EQ(ParseSize("1K", &err), 1000u);
  EXPECT_EQ(ParseSize("1k", &err), 1000u);
  EXPECT_EQ(ParseSize("1Ki", &err), 1024u);
  EXPECT_EQ(ParseSize("512Mi", &err), 512ull << 20);
  EXPECT_EQ(ParseSize("1G", &err), 1'000'000'000u);
  EXPECT_EQ(ParseSize("1.5Gi", &err), 3ull << 29);
  EXPECT_EQ(ParseSize("2GiB", &err), 2ull << 30);
  EXPECT_EQ(ParseSize("15Ei", &err), 15ull << 60);
}

TEST(ParseSize, RejectsGarbageAndOverflow) {
  std::string err;
  for (const char* bad : {"", "Mi", "12 apples", "1m", "1Mx", "1KiKi", "-1", "1.5", "0x10"}) {
    err.clear();
    EXPECT_FALSE(ParseSize(bad, &err)) << bad;
    EXPECT_NE(err.find("size"), std::string::npos) << bad << ": " << err;
  }
  EXPECT_FALSE(ParseSize("16Ei", &err));
  EXPECT_EQ(err, "size \"16Ei\" is too large");
  EXPECT_FALSE(ParseSize("18446744073709551616", &err));
  EXPECT_EQ(err, "size \"18446744073709551616\" is too large");
  EXPECT_EQ(ParseSize("18446744073709551615", &err), UINT64_MAX);
}

TEST(FormatSize, RoundTrips) {
  std::string err;
  for (uint64_t bytes : {0ull, 1ull, 1000ull, 1024ull, 1536ull, 512ull << 20, 3ull << 40}) {
    EXPECT_EQ(ParseSize(FormatSize(bytes), &err), bytes) << FormatSize(bytes);
  }
  EXPECT_EQ(FormatSize(512ull << 20), "512Mi");
}

TEST(ParseCpu, CoresAndMillicores) {
  std::string err;
  EXPECT_EQ(ParseCpu("1", &err), 1000);
  EXPECT_EQ(ParseCpu("0.5", &err), 500);
  EXPECT_EQ(ParseCpu("250m", &err), 250);
  EXPECT_EQ(CpuFromCores(2.0, &err), 2000);
  EXPECT_FALSE(ParseCpu("0", &err));
  EXPECT_FALSE(ParseCpu("0m", &err));
  EXPECT_FALSE(ParseCpu("1.5m", &err));
  EXPECT_FALSE(ParseCpu("lots", &err));
  EXPECT_FALSE(CpuFromCores(-1, &err));
  EXPECT_FALSE(CpuFromCores(0.0001, &err));
  EXPECT_EQ(err, "cpu must be at least 1m (0.001 cores)");
}

}  // namespace
}  // namespace chainctl
