// What `chaind --version` prints.
#pragma once

#include <string>

namespace chainctl::daemon {

std::string VersionLine();

}  // namespace chainctl::daemon
