// Blocking work off the event loop (DESIGN.md §1: LMDB commits that fsync,
// model training, large copies never run on the loop).
#pragma once

#include <uv.h>

#include <functional>

namespace chainctl::daemon {

// Runs `work` on the libuv thread pool, then `done` on the loop thread. Both
// are always called, `done` after `work`; the loop stays alive until then.
// Call on the loop thread.
void QueueWork(uv_loop_t* loop, std::function<void()> work, std::function<void()> done);

}  // namespace chainctl::daemon
