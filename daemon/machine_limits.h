// What chaind takes of the machine: its cores, file descriptors (the soft limit raised, the
// connections and the jobs fitted to it) and the capacity that tasks' resource requests are
// admitted against. What changes a flag's value is logged.
#pragma once

#include <cstddef>
#include <cstdint>

#include "daemon/daemon.h"
#include "daemon/http/types.h"
#include "daemon/run/resources.h"

namespace chainctl::daemon {

// The machine's cores (std::thread::hardware_concurrency), at least 1.
unsigned MachineCores();

// Raises the soft RLIMIT_NOFILE to the hard limit (tasks inherit it; logged) and returns it.
uint64_t RaiseDescriptorLimit();

// Caps the connections served at once to a quarter of the descriptors (at least 4), so that
// connections cannot take those that tasks, the store and the log need. Logged.
void FitConnections(uint64_t descriptors, HttpLimits* limits);

// Caps --jobs so that the tasks running at once cannot take the descriptors left once the
// connections and chaind's own (store, loop, log, prewarms, staging) are counted: a running
// task holds about kDescriptorsPerTask (its pidfd and pipes; spawns, which briefly need more,
// happen one at a time). Shortages that remain are retried (RetryShortOfResources). Logged.
size_t FitJobs(uint64_t descriptors, size_t connections, size_t jobs);

// The flags' capacity, the machine's where they gave none.
Capacity CapacityOf(const DaemonConfig& config);

}  // namespace chainctl::daemon
