// Helpers shared by the unit tests.
#pragma once

#include <cstdint>
#include <string>

#include "common/predict/history_record.h"

namespace chainctl::testing {

// A fresh directory under $TMPDIR, removed with everything in it when the
// object goes away (ninja's ScopedTempDir).
class ScopedTempDir {
 public:
  ScopedTempDir();
  ~ScopedTempDir();
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;

  const std::string& path() const { return path_; }
  // Writes `content` to path()/name (creating folders) and returns the full path.
  std::string WriteFile(const std::string& name, const std::string& content,
                        bool executable = false) const;

 private:
  std::string path_;
};

// The source tree's path for `relative` (e.g. "tests/fixtures/x.yaml").
std::string SourcePath(const std::string& relative);

std::string ReadFileOrDie(const std::string& path);

// Processes that have not exited whose working directory is `dir` (a zombie has none): how the
// tests of prewarms and workers see that none was left running.
int LiveProcessesIn(const std::string& dir);

// A history record with every field set (seq 7, a failed second attempt, every measurement).
HistoryRecord FullHistoryRecord();
// A succeeded first attempt of `task` in `run` of `chain`, started at `start_ms`, lasting 10 ms.
HistoryRecord SucceededRecord(const std::string& run, const std::string& chain,
                              const std::string& task, int64_t start_ms);

}  // namespace chainctl::testing
