// chaind: the chainctl daemon. For now it only reports its version; the
// server arrives with the gateway (DESIGN.md §1, §6).
#include <cstring>
#include <iostream>

#include "daemon/version_info.h"

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--version") == 0) {
      std::cout << chainctl::daemon::VersionLine() << "\n";
      return 0;
    }
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::cout << "Usage: chaind [--version] [--help]\n"
                   "The chainctl daemon. The server is not built yet: see DESIGN.md.\n";
      return 0;
    }
  }
  std::cerr << chainctl::daemon::VersionLine()
            << ": the server is not built yet (--version, --help)\n";
  return 2;
}
