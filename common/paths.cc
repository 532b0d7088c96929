#include "common/paths.h"

#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace chainctl {
namespace {

std::string NonEmpty(const EnvLookup& env, const char* name) {
  const char* v = env(name);
  return v && *v ? v : "";
}

std::string TmpFallback(unsigned uid) { return "/tmp/chainctl-" + std::to_string(uid); }

}  // namespace

EnvLookup RealEnv() {
  return [](const char* name) -> const char* { return std::getenv(name); };
}

std::string DefaultSocketPath(const EnvLookup& env, unsigned uid) {
  if (std::string s = NonEmpty(env, "CHAINCTL_SOCKET"); !s.empty()) return s;
  if (std::string run = NonEmpty(env, "XDG_RUNTIME_DIR"); !run.empty()) {
    return run + "/chainctl/chaind.sock";
  }
  return TmpFallback(uid) + "/chaind.sock";
}

std::string DefaultStateDir(const EnvLookup& env, unsigned uid) {
  if (std::string s = NonEmpty(env, "CHAINCTL_STATE_DIR"); !s.empty()) return s;
  if (std::string state = NonEmpty(env, "XDG_STATE_HOME"); !state.empty()) {
    return state + "/chainctl";
  }
  if (std::string home = NonEmpty(env, "HOME"); !home.empty()) {
    return home + "/.local/state/chainctl";
  }
  return TmpFallback(uid) + "/state";
}

std::string DefaultConfigFile(const EnvLookup& env, bool* required) {
  std::string file = NonEmpty(env, "CHAIND_CONFIG");
  if (required) *required = !file.empty();
  if (!file.empty()) return file;
  if (std::string config = NonEmpty(env, "XDG_CONFIG_HOME"); !config.empty()) {
    return config + "/chainctl/chaind.conf";
  }
  if (std::string home = NonEmpty(env, "HOME"); !home.empty()) {
    return home + "/.config/chainctl/chaind.conf";
  }
  return "";
}

bool EnsurePrivateDir(const std::string& dir, std::string* err) {
  std::error_code ec;
  std::filesystem::path parent = std::filesystem::path(dir).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    *err = "cannot create " + dir + ": " + std::strerror(errno);
    return false;
  }
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0) {
    *err = "cannot stat " + dir + ": " + std::strerror(errno);
    return false;
  }
  if (!S_ISDIR(st.st_mode)) {
    *err = dir + " is not a directory";
    return false;
  }
  if (st.st_uid != getuid()) {
    *err = dir + " belongs to uid " + std::to_string(st.st_uid) + ", not to you (uid " +
           std::to_string(getuid()) + ")";
    return false;
  }
  if ((st.st_mode & 0022) != 0) {
    char mode[8];
    snprintf(mode, sizeof mode, "%03o", st.st_mode & 0777);
    *err = dir + " is writable by other users (mode " + mode + "); chmod 700 it";
    return false;
  }
  return true;
}

bool CheckSocketPathLength(const std::string& path, std::string* err) {
  if (path.size() < sizeof(sockaddr_un::sun_path)) return true;
  *err = "socket path is too long (" + std::to_string(path.size()) + " bytes; the limit is " +
         std::to_string(sizeof(sockaddr_un::sun_path) - 1) + "): " + path +
         "; set CHAINCTL_SOCKET or --socket to a shorter path";
  return false;
}

}  // namespace chainctl
