#include "common/predict/history_file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <string>
#include <vector>

#include "tests/test_util.h"

namespace chainctl {
namespace {

using chainctl::testing::ScopedTempDir;

HistoryRecord Record(int i) {
  HistoryRecord r;
  r.run_id = "run-" + std::to_string(i / 10);
  r.chain_id = "etl";
  r.task_id = "task-" + std::to_string(i % 10);
  r.instance_id = r.task_id + "_ID" + std::to_string(i);
  r.start_unix_ms = 1711562944000 + i * 1000;
  r.end_unix_ms = r.start_unix_ms + 500 + i;
  r.status = i % 7 == 0 ? "failed" : "succeeded";
  if (i % 3 == 0) r.cpu_s = 0.25 * i;
  if (i % 5 == 0) r.bytes_in = 1000u * static_cast<uint64_t>(i);
  return r;
}

std::vector<HistoryRecord> Records(int n) {
  std::vector<HistoryRecord> records;
  for (int i = 0; i < n; ++i) records.push_back(Record(i));
  return records;
}

std::string Jsonl(const std::vector<HistoryRecord>& records) {
  std::string text;
  for (const HistoryRecord& r : records) text += ToJsonlV1(r).dump() + "\n";
  return text;
}

// `text` gzip-compressed, as gzip(1) would write it.
std::string Gzip(const std::string& text) {
  ScopedTempDir dir;
  std::string path = dir.path() + "/x.gz";
  gzFile file = gzopen(path.c_str(), "wb");
  EXPECT_NE(file, nullptr);
  EXPECT_EQ(gzwrite(file, text.data(), static_cast<unsigned>(text.size())),
            static_cast<int>(text.size()));
  EXPECT_EQ(gzclose(file), Z_OK);
  return chainctl::testing::ReadFileOrDie(path);
}

// The error of LoadHistoryFile on a file holding `content` and named `name`.
std::string LoadError(const ScopedTempDir& dir, const std::string& name, const std::string& content,
                      std::vector<HistoryRecord>* records = nullptr) {
  std::string path = dir.WriteFile(name, content);
  std::vector<HistoryRecord> out;
  std::string err;
  if (LoadHistoryFile(path, &out, &err)) return "<accepted>";
  if (records) *records = std::move(out);
  return err.starts_with(dir.path() + "/") ? err.substr(dir.path().size() + 1) : err;
}

TEST(HistoryFile, ReadsAPlainFile) {
  ScopedTempDir dir;
  std::vector<HistoryRecord> records = Records(30);
  std::string path = dir.WriteFile("h.jsonl", Jsonl(records));
  std::vector<HistoryRecord> back;
  std::string err;
  ASSERT_TRUE(LoadHistoryFile(path, &back, &err)) << err;
  EXPECT_EQ(back, records);
}

TEST(HistoryFile, ReadsAGzipFileSpanningManyChunks) {
  ScopedTempDir dir;
  std::vector<HistoryRecord> records = Records(5000);  // ~1 MB: many 64 KiB reads
  std::string text = Jsonl(records);
  ASSERT_GT(text.size(), 10u * 64 * 1024);
  std::string path = dir.WriteFile("h.jsonl.gz", Gzip(text));
  std::vector<HistoryRecord> back;
  std::string err;
  ASSERT_TRUE(LoadHistoryFile(path, &back, &err)) << err;
  EXPECT_EQ(back, records);
}

TEST(HistoryFile, SkipsBlankLinesAndReadsCrlfAndALastLineWithoutNewline) {
  ScopedTempDir dir;
  std::vector<HistoryRecord> records = Records(3);
  std::string text = "\n" + ToJsonlV1(records[0]).dump() + "\r\n  \t\r\n\n" +
                     ToJsonlV1(records[1]).dump() + "\n" + ToJsonlV1(records[2]).dump();
  std::vector<HistoryRecord> back;
  std::string err;
  ASSERT_TRUE(LoadHistoryFile(dir.WriteFile("h.jsonl", text), &back, &err)) << err;
  EXPECT_EQ(back, records);
  ASSERT_TRUE(LoadHistoryFile(dir.WriteFile("empty.jsonl", ""), &back, &err)) << err;
  EXPECT_TRUE(back.empty());
}

TEST(HistoryFile, ReadsStdin) {
  ScopedTempDir dir;
  std::vector<HistoryRecord> records = Records(4);
  std::string path = dir.WriteFile("h.jsonl.gz", Gzip(Jsonl(records)));
  int saved = dup(STDIN_FILENO);
  int fd = open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  dup2(fd, STDIN_FILENO);
  close(fd);
  std::vector<HistoryRecord> back;
  std::string err;
  bool ok = LoadHistoryFile("-", &back, &err);
  bool stdin_open = fcntl(STDIN_FILENO, F_GETFD) != -1;
  dup2(saved, STDIN_FILENO);
  close(saved);
  ASSERT_TRUE(ok) << err;
  EXPECT_EQ(back, records);
  EXPECT_TRUE(stdin_open);
}

TEST(HistoryFile, BadJsonNamesItsLineAndStopsThere) {
  ScopedTempDir dir;
  std::vector<HistoryRecord> records = Records(4);
  std::string text = ToJsonlV1(records[0]).dump() + "\n\n{\"run_id\": oops}\n" +
                     ToJsonlV1(records[1]).dump() + "\n";
  std::vector<HistoryRecord> before;
  EXPECT_EQ(LoadError(dir, "h.jsonl", text, &before),
            "h.jsonl:3: not JSON (byte 12): syntax error while parsing value - invalid literal; "
            "last read: '\"run_id\": o'");
  EXPECT_EQ(before, std::vector<HistoryRecord>{records[0]});
  // The same in a gzip file.
  EXPECT_EQ(LoadError(dir, "h.jsonl.gz", Gzip(text)).substr(0, 26), "h.jsonl.gz:3: not JSON (by");
}

TEST(HistoryFile, InvalidRecordsNameTheirLineAndField) {
  ScopedTempDir dir;
  std::string good = ToJsonlV1(Record(1)).dump() + "\n";
  EXPECT_EQ(LoadError(dir, "a.jsonl",
                      good + R"({"run_id":"r","chain_id":"c","task_id":"t","start":1,"end":2})"),
            "a.jsonl:2: missing required field \"status\"");
  EXPECT_EQ(LoadError(dir, "b.jsonl", good + good + "[1, 2]\n"),
            "b.jsonl:3: a history record must be a JSON object");
  EXPECT_EQ(
      LoadError(dir, "c.jsonl",
                R"({"run_id":"r","chain_id":"c","task_id":"t","start":1,"end":2,"status":"ok"})"),
      "c.jsonl:1: field \"status\" must be \"succeeded\" or \"failed\"");
  EXPECT_EQ(LoadError(dir, "d.jsonl", good + "{} {}\n").substr(0, 21), "d.jsonl:2: not JSON (");
  EXPECT_EQ(LoadError(dir, "e.jsonl", good + "{\"run_id\": \"\xff\"}\n"),
            "e.jsonl:2: not valid UTF-8 at byte 13 (0xff)");
}

TEST(HistoryFile, TruncatedGzipNamesTheLineWhereItEnds) {
  ScopedTempDir dir;
  std::string gz = Gzip(Jsonl(Records(5000)));
  std::vector<HistoryRecord> before;
  std::string err = LoadError(dir, "cut.jsonl.gz", gz.substr(0, gz.size() / 2), &before);
  EXPECT_EQ(err, "cut.jsonl.gz:" + std::to_string(before.size() + 1) +
                     ": the gzip stream ends early (is the file truncated?)");
  EXPECT_GT(before.size(), 100u);
  EXPECT_LT(before.size(), 5000u);
  // Cut inside the 8-byte trailer: every line was read, the end is still missing.
  err = LoadError(dir, "cut2.jsonl.gz", gz.substr(0, gz.size() - 3), &before);
  EXPECT_EQ(err, "cut2.jsonl.gz:5001: the gzip stream ends early (is the file truncated?)");
}

TEST(HistoryFile, CorruptGzipIsAnError) {
  ScopedTempDir dir;
  std::string gz = Gzip(Jsonl(Records(5000)));
  gz[gz.size() - 6] ^= 0x55;  // the CRC-32 of the trailer
  std::vector<HistoryRecord> before;
  std::string err = LoadError(dir, "bad.jsonl.gz", gz, &before);
  EXPECT_EQ(err,
            "bad.jsonl.gz:" + std::to_string(before.size() + 1) + ": gzip: incorrect data check");
  EXPECT_GT(before.size(), 100u);
}

TEST(HistoryFile, MissingFileAndFolder) {
  ScopedTempDir dir;
  std::vector<HistoryRecord> out;
  std::string err;
  EXPECT_FALSE(LoadHistoryFile(dir.path() + "/none.jsonl", &out, &err));
  EXPECT_EQ(err, dir.path() + "/none.jsonl: cannot open: No such file or directory");
  EXPECT_FALSE(LoadHistoryFile(dir.path(), &out, &err));
  EXPECT_EQ(err, dir.path() + ":1: cannot read: Is a directory");
}

TEST(HistoryFile, LineOverTheLimitIsAnError) {
  ScopedTempDir dir;
  std::string good = ToJsonlV1(Record(1)).dump() + "\n";
  std::string huge = "{\"pad\": \"" + std::string(kMaxHistoryLineBytes, 'x') + "\"}\n";
  EXPECT_EQ(LoadError(dir, "h.jsonl", good + huge + good),
            "h.jsonl:2: the line is longer than 1048576 bytes");
  // A line of exactly the limit is read.
  std::string line = ToJsonlV1(Record(2)).dump();
  line.insert(1, "\"pad\":\"" + std::string(kMaxHistoryLineBytes - line.size() - 9, 'x') + "\",");
  ASSERT_EQ(line.size(), kMaxHistoryLineBytes);
  EXPECT_EQ(LoadError(dir, "ok.jsonl", good + line + "\n"), "<accepted>");
}

TEST(HistoryFile, CallbackStopsTheReading) {
  ScopedTempDir dir;
  std::string path = dir.WriteFile("h.jsonl", Jsonl(Records(10)));
  int calls = 0;
  std::string err;
  EXPECT_FALSE(ReadHistoryFile(
      path,
      [&](HistoryRecord&& r, std::string* e) {
        ++calls;
        if (r.task_id != "task-2") return true;
        *e = "not wanted";
        return false;
      },
      &err));
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(err, path + ":3: not wanted");
}

TEST(HistoryLine, ParsesOneRecord) {
  HistoryRecord r;
  std::string err;
  ASSERT_TRUE(ParseHistoryLine(
      R"({"run_id":"r","chain_id":"c","task_id":"t","start":1.5,"end":2,"status":"failed"})", &r,
      &err))
      << err;
  EXPECT_EQ(r.start_unix_ms, 1500);
  EXPECT_EQ(r.status, "failed");
  EXPECT_FALSE(ParseHistoryLine("", &r, &err));
  EXPECT_EQ(err.substr(0, 17), "not JSON (byte 1)");
  EXPECT_TRUE(IsBlankHistoryLine(" \t\r"));
  EXPECT_FALSE(IsBlankHistoryLine(" {}"));
}

// Issue 15: a line is bytes until checked; none of these may throw (POST /history parses on
// the thread pool, where an exception ends chaind).
TEST(HistoryLine, Issue15BadBytesDeepLinesAndHugeNumbersAreErrors) {
  HistoryRecord r;
  std::string err;
  EXPECT_FALSE(ParseHistoryLine("{\"run_id\":\"\xFF\"}", &r, &err));
  EXPECT_EQ(err, "not valid UTF-8 at byte 12 (0xff)");
  std::string deep = "{\"run_id\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  EXPECT_FALSE(ParseHistoryLine(deep, &r, &err));
  EXPECT_EQ(err, "nests deeper than 64 levels");
  // nlohmann throws out_of_range (not parse_error) for this with exceptions on.
  EXPECT_FALSE(ParseHistoryLine(
      R"({"run_id":"r","chain_id":"c","task_id":"t","start":1e400,"end":2,"status":"failed"})", &r,
      &err));
  EXPECT_EQ(err.substr(0, 10), "not JSON (") << err;
}

}  // namespace
}  // namespace chainctl
