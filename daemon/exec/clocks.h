// The clocks of the executors (process_runner.h, worker_pool.h): the system clock that their
// results' Unix times come from unless a test gives its own, and steady durations in ms.
#pragma once

#include <chrono>
#include <cstdint>

namespace chainctl::daemon {

// Milliseconds since the Unix epoch, from the system clock.
inline int64_t SystemUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Milliseconds from `start` until now, on the steady clock.
inline double MsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

}  // namespace chainctl::daemon
