#include "daemon/version_info.h"

#include "common/version.h"

namespace chainctl::daemon {

std::string VersionLine() { return std::string("chaind ") + kVersion; }

}  // namespace chainctl::daemon
