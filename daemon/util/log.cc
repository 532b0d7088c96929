#include "daemon/util/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>

namespace chainctl::daemon {
namespace {

std::atomic<LogLevel> g_level{LogLevel::kInfo};
std::string g_log_path;  // set once before threads start; "" without --log-file

const char* Name(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kError:
      return "error";
  }
  return "?";
}

}  // namespace

bool ParseLogLevel(std::string_view name, LogLevel* level) {
  for (LogLevel l : {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarning, LogLevel::kError}) {
    if (name == Name(l)) {
      *level = l;
      return true;
    }
  }
  return false;
}

void SetLogLevel(LogLevel level) { g_level = level; }

bool OpenLogFile(const std::string& path, std::string* err) {
  g_log_path = path;
  return ReopenLogFile(err);
}

bool ReopenLogFile(std::string* err) {
  if (g_log_path.empty()) {
    *err = "no --log-file to reopen";
    return false;
  }
  int fd = open(g_log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  // dup2 replaces stderr at once: a line written meanwhile by another thread goes to the old
  // file or the new one, whole.
  if (fd < 0 || dup2(fd, STDERR_FILENO) < 0 || dup2(fd, STDOUT_FILENO) < 0) {
    *err = "cannot open the log file " + g_log_path + ": " + std::strerror(errno);
    if (fd >= 0) close(fd);
    return false;
  }
  close(fd);
  return true;
}

const std::string& LogFilePath() { return g_log_path; }

void Log(LogLevel level, const std::string& message) {
  if (level < g_level.load()) return;
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  char millis[8];
  snprintf(millis, sizeof millis, ".%03dZ ", static_cast<int>(ms % 1000));
  std::string line = std::string(stamp) + millis + Name(level) + " " + message + "\n";
  ssize_t ignored = write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

}  // namespace chainctl::daemon
