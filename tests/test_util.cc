#include "tests/test_util.h"

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace chainctl::testing {

ScopedTempDir::ScopedTempDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/chainctl-test-XXXXXX";
  if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

ScopedTempDir::~ScopedTempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string ScopedTempDir::WriteFile(const std::string& name, const std::string& content,
                                     bool executable) const {
  std::filesystem::path full = std::filesystem::path(path_) / name;
  std::filesystem::create_directories(full.parent_path());
  std::ofstream(full, std::ios::binary) << content;
  if (executable) chmod(full.c_str(), 0755);
  return full.string();
}

int LiveProcessesIn(const std::string& dir) {
  std::string wanted = std::filesystem::canonical(dir).string();
  int live = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::error_code ec;
    std::filesystem::path cwd = std::filesystem::read_symlink(entry.path() / "cwd", ec);
    if (!ec && cwd == wanted) ++live;
  }
  return live;
}

std::string SourcePath(const std::string& relative) {
  return std::string(CHAINCTL_SOURCE_DIR) + "/" + relative;
}

std::string ReadFileOrDie(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

HistoryRecord FullHistoryRecord() {
  HistoryRecord r;
  r.seq = 7;
  r.run_id = "run-1";
  r.chain_id = "etl";
  r.task_id = "extract";
  r.instance_id = "extract_ID01";
  r.chain_version = 3;
  r.task_version = 2;
  r.attempt = 2;
  r.start_unix_ms = 1711562944123;
  r.end_unix_ms = 1711562949001;
  r.status = "failed";
  r.cause = "signal 9 (SIGKILL)";
  r.cold = false;
  r.startup_ms = 12.5;
  r.cpu_s = 0.25;
  r.max_rss_kb = 20480;
  r.bytes_in = 1000;
  r.bytes_out = 2000;
  r.bytes_staged = 3000;
  return r;
}

HistoryRecord SucceededRecord(const std::string& run, const std::string& chain,
                              const std::string& task, int64_t start_ms) {
  HistoryRecord r;
  r.run_id = run;
  r.chain_id = chain;
  r.task_id = task;
  r.start_unix_ms = start_ms;
  r.end_unix_ms = start_ms + 10;
  r.status = "succeeded";
  return r;
}

}  // namespace chainctl::testing
