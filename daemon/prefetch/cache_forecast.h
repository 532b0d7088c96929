// CacheForecast: whether a task with caching on is expected to be a cache hit, so that the
// prefetcher does not prewarm a process that would not be used (DESIGN.md §5, §4 "Cache").
//
// A task is expected to hit when the files its `sources` match now are those it last ran with
// (TaskCache::ReadLast), the part of its key that changes between runs on a developer's machine;
// its input and its dependencies' files are not known before they run, so a hit expected is
// not a hit promised (a wrong guess costs a cold start, as without prefetching). The check
// hashes the sources on the thread pool through the shared HashMemo, so the task's own key,
// made when it is ready, costs a stat per file: the sources of predicted tasks are hashed ahead.
//
// An answer is kept for `ttl_ms` (sources may be edited at any time), then checked again when
// asked, the old answer given until the new one comes. Until the first answer, Expected says
// nullopt and a check is in flight; `known` is called on the loop when an answer changes (the
// prefetcher plans again).
//
// Loop thread only (the checks run on the thread pool and report back on the loop).
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "common/chain/chain.h"
#include "common/hash_memo.h"
#include "daemon/store/registry.h"
#include "daemon/store/task_cache.h"

namespace chainctl::daemon {

class CacheForecast {
 public:
  // Nothing is owned; all must outlive it.
  CacheForecast(uv_loop_t* loop, TaskCache* cache, HashMemo* memo, std::function<void()> known,
                int64_t ttl_ms = 2000, UnixMsClock clock = RealUnixMs);
  ~CacheForecast();

  // Whether `task` of `chain_id` is expected to be restored from the cache: false for a task
  // with caching off or no folder; nullopt while the first check runs.
  std::optional<bool> Expected(const std::string& chain_id, const TaskSpec& task);

  uint64_t checks() const { return checks_; }  // checks started (for tests: bounded work)

 private:
  struct Answer {
    std::optional<bool> hit;
    int64_t checked_ms = 0;
    bool in_flight = false;
  };
  void Check(const std::string& name, const TaskSpec& task);

  uv_loop_t* loop_;
  TaskCache* cache_;
  HashMemo* memo_;
  std::function<void()> known_;
  int64_t ttl_ms_;
  UnixMsClock clock_;
  std::map<std::string, Answer> answers_;  // by TaskCache::LastName
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  uint64_t checks_ = 0;
};

}  // namespace chainctl::daemon
