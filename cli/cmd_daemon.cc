// chainctl daemon start|stop|status|run
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ostream>
#include <thread>

#include "cli/app.h"
#include "cli/daemon_client.h"
#include "cli/output.h"

namespace chainctl::cli {
namespace {

int Start(const DaemonOptions& o, std::ostream& out, std::ostream& err) {
  nlohmann::json health;
  if (DaemonHealth(o, &health)) {
    out << "chaind is already running (pid " << health.value("pid", 0) << ") on " << o.socket
        << "\n";
    return kExitOk;
  }
  std::string why;
  if (!StartDaemon(o, &why)) {
    err << "chainctl: " << why;
    return kExitUnreachable;
  }
  DaemonHealth(o, &health);
  out << "chaind started (pid " << health.value("pid", 0) << ") on " << o.socket << "\n";
  return kExitOk;
}

// SIGTERM, then a bounded wait for the socket to fall silent.
int Stop(const DaemonOptions& o, std::ostream& out, std::ostream& err) {
  nlohmann::json health;
  if (!DaemonHealth(o, &health)) {
    out << "chaind is not running on " << o.socket << "\n";
    return kExitOk;
  }
  pid_t pid = health.value("pid", 0);
  if (pid <= 0 || kill(pid, SIGTERM) != 0) {
    err << "chainctl: cannot signal chaind (pid " << pid << ")\n";
    return kExitUnreachable;
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    if (kill(pid, 0) != 0) {
      out << "chaind stopped (pid " << pid << ")\n";
      return kExitOk;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  err << "chainctl: chaind (pid " << pid << ") is still running 30 s after SIGTERM\n";
  return kExitUnreachable;
}

// `output`: "" or "table" for the sentences below (scripts read them: not JSON by default), json
// or yaml for /health.
int Status(const DaemonOptions& o, const std::string& output, std::ostream& out) {
  nlohmann::json health;
  if (!DaemonHealth(o, &health)) {
    out << "chaind is not running on " << o.socket << "\n";
    return kExitUnreachable;
  }
  if (OutputFormat format = ParseOutputFormat(output.empty() ? "table" : output, true);
      format != OutputFormat::kTable) {
    PrintData(out, health, format);
    return kExitOk;
  }
  out << "chaind " << health.value("version", "?") << " is running (pid " << health.value("pid", 0)
      << ", up " << health.value("uptime_s", 0) << " s) on " << o.socket
      << "\nstate: " << health.value("state_dir", o.state_dir) << "\n";
  if (health.value("status", "") == "degraded") {
    out << "DEGRADED: "
        << health.value(nlohmann::json::json_pointer("/store/message"), std::string()) << "\n";
  }
  return kExitOk;
}

// Replaces chainctl with chaind in the foreground.
int Run(const DaemonOptions& o, std::ostream& err) {
  std::string chaind = FindChaind();
  std::vector<std::string> args = {chaind, "--socket", o.socket, "--state-dir", o.state_dir};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  execvp(chaind.c_str(), argv.data());
  err << "chainctl: cannot run " << chaind << ": " << std::strerror(errno) << "\n";
  return kExitUnreachable;
}

}  // namespace

int RunDaemonCommand(const DaemonCommandOptions& options, std::ostream& out, std::ostream& err) {
  DaemonOptions o = ResolveDaemonOptions(options.daemon);
  if (options.action == "start") return Start(o, out, err);
  if (options.action == "stop") return Stop(o, out, err);
  if (options.action == "status") return Status(o, options.output, out);
  return Run(o, err);
}

}  // namespace chainctl::cli
