// chainctl cache stats|prune|clear (DESIGN.md §4 "Cache", §7): the task cache of the chaind
// answering, through GET /cache, POST /cache/prune and DELETE /cache.
#pragma once

#include <ostream>
#include <string>

#include "cli/daemon_client.h"

namespace chainctl::cli {

struct CacheOptions {
  DaemonOptions daemon;
  std::string action;    // stats | prune | clear
  std::string max_size;  // prune --max-size: a size (common/units.h); "": chaind's --cache-size
  std::string output;    // table, json or yaml; "": table on a terminal
};

// Exit 0, 2 for a --max-size that is no size or given to another action than prune, 3 when
// chaind cannot be reached or runs without a cache (503 no_cache).
int RunCache(const CacheOptions& options, std::ostream& out, std::ostream& err);

}  // namespace chainctl::cli
