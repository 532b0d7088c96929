// The prefetcher's decisions (DESIGN.md §5 "Decision"), pure like the Scheduler: from what the
// plan wants (desires), what is warm (entries), the budgets and the time, which entries to stop,
// which desires to start, and when to plan again. No I/O, no clock, no processes: the prefetcher
// (prefetcher.h) does what this decides.
//
// Rules, in order:
//  1. An entry past its keep-alive (and not busy staging) is stopped: waste.
//  2. Desires are ranked by score; a second desire of the same key (a second warm entry of one
//     task) is weighed by the probability of the first, so each branch of a router gets one entry
//     before any gets two.
//  3. Each desire is met by at most one entry of its key (or, for a worker, by an idle worker the
//     pool already has); an entry so met lives on, and if the desire is due (fire_ms ≤ now) its
//     keep-alive restarts now. The others wait in the queue, best first.
//  4. Admission, best first: a desire that is due is admitted if the budgets allow it, if need be
//     by stopping idle entries of its kind scored clearly lower (under 0.8 ×), never one of its
//     own key; room is kept for better process desires not yet due that will be due before it is
//     needed (a worse one due now does not take their place only to be evicted when they come),
//     but for those that do not hold room: the tasks of a chain already overdue, whose need
//     slides with the clock.
//  5. Starts, in need order (fire_ms): processes start while fewer than `starting` prewarmed
//     processes are still starting up (then strictly none after one is held back: CPU is short,
//     and what starts first is ready first); staging is not limited so. So that processes
//     needed close together are all ready in time, their fire times are first moved earlier:
//     scheduled backwards from their needs, `lanes` start-ups at once (Stagger).
//  6. Plan again at the earliest of: the next desire's fire time, the next keep-alive end, the
//     end of a start-up held as slow (when starts wait on it).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "daemon/prefetch/chain_view.h"

namespace chainctl::daemon {

// A task the plan wants warm, and when.
struct Desire {
  std::string key;  // the pool key (ChainView::Task::key; "stage:KEY" for staged inputs)
  std::shared_ptr<const ChainView> view;
  int task = 0;
  WarmLevel level = WarmLevel::kStage;
  double probability = 0;
  double need_ms = 0;  // unix ms
  double fire_ms = 0;  // need − start-up − margin: not started before
  double score = 0;    // P × start-up saved − cost of holding it warm (stage: P)
  // Whether room is kept for it until it is due. Not for the tasks of a chain already overdue:
  // their need slides with the clock, so they would never come due and hold the room for ever.
  bool holds_room = true;
  uint64_t memory = 0;        // processes: its estimated memory
  uint64_t staged_bytes = 0;  // stage: its estimated bytes
  uint64_t keep_alive_ms = 0;

  const TaskSpec& spec() const { return view->spec(task); }
  bool process() const { return level != WarmLevel::kStage; }
};

// Something warm, as the planner sees it.
struct WarmEntry {
  uint64_t id = 0;
  std::string key;
  WarmLevel level = WarmLevel::kStage;
  uint64_t memory = 0;
  uint64_t staged_bytes = 0;
  bool busy = false;  // still staging: never stopped (its end plans again)
  // A process not yet ready counts as starting up until then (a slow one stops counting then).
  int64_t starting_until_ms = 0;
  int64_t expires_ms = 0;

  bool process() const { return level != WarmLevel::kStage; }
};

struct PlanBudgets {
  size_t processes = 0;  // warm processes and workers
  uint64_t memory = 0;   // their memory
  uint64_t staged = 0;   // staged bytes
  size_t starting = 1;   // processes starting up at once, now
  size_t lanes = 1;      // ... when nothing runs: the cores (to schedule future start-ups)
};

struct PlanInput {
  std::vector<Desire> desires;  // any order
  std::vector<WarmEntry> entries;
  std::map<std::string, size_t> idle_workers;  // by key: idle workers of the pool, not entries
  PlanBudgets budgets;
  int64_t now_ms = 0;
};

struct PlanDecision {
  std::vector<uint64_t> expired;                       // stop: waste (keep-alive ended)
  std::vector<uint64_t> evicted;                       // stop: waste (room for better), first
  std::vector<std::pair<uint64_t, double>> scores;     // each entry's score now (0: unwanted)
  std::vector<std::pair<uint64_t, int64_t>> extended;  // entries' new keep-alive ends
  std::vector<Desire> start;                           // in this order, after the stops
  std::vector<Desire> queue;                           // wanted and waiting, best first
  int64_t wake_ms = -1;                                // plan again then; -1: no need
};

PlanDecision Decide(PlanInput input);

}  // namespace chainctl::daemon
