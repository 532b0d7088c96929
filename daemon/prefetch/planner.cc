#include "daemon/prefetch/planner.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace chainctl::daemon {
namespace {

bool ByScore(const Desire& a, const Desire& b) { return a.score > b.score; }

// What is warm while deciding: the entries left, their scores, and those admitted.
struct Working {
  struct Slot {
    uint64_t id = 0;  // 0: admitted now (not yet started)
    const WarmEntry* entry = nullptr;
    std::string key;
    bool process = false;
    bool busy = false;
    double score = 0;
    uint64_t memory = 0, staged = 0;
  };
  std::vector<Slot> slots;
  size_t processes = 0;
  uint64_t memory = 0, staged = 0;

  void Add(Slot s) {
    processes += s.process;
    memory += s.memory;
    staged += s.staged;
    slots.push_back(std::move(s));
  }
  void Remove(size_t i) {
    processes -= slots[i].process;
    memory -= slots[i].memory;
    staged -= slots[i].staged;
    slots.erase(slots.begin() + static_cast<ptrdiff_t>(i));
  }
  bool Fits(const Desire& d, const PlanBudgets& b) const {
    if (!d.process()) return staged + d.staged_bytes <= b.staged;
    return processes + 1 <= b.processes && memory + d.memory <= b.memory;
  }
  // Room for `d` by stopping idle entries of its kind scored clearly lower, lowest first;
  // the ids stopped go to *victims. False (and nothing stopped) if that is not enough.
  bool MakeRoom(const Desire& d, const PlanBudgets& b, std::vector<uint64_t>* victims) {
    Working trial = *this;
    std::vector<uint64_t> chosen;
    while (!trial.Fits(d, b)) {
      int victim = -1;
      for (size_t i = 0; i < trial.slots.size(); ++i) {
        const Slot& s = trial.slots[i];
        if (s.id == 0 || s.process != d.process() || s.busy || s.key == d.key ||
            s.score >= 0.8 * d.score) {
          continue;
        }
        if (victim < 0 || s.score < trial.slots[static_cast<size_t>(victim)].score) {
          victim = static_cast<int>(i);
        }
      }
      if (victim < 0) return false;
      chosen.push_back(trial.slots[static_cast<size_t>(victim)].id);
      trial.Remove(static_cast<size_t>(victim));
    }
    *this = std::move(trial);
    victims->insert(victims->end(), chosen.begin(), chosen.end());
    return true;
  }
};

// Rule 2: a second desire of a key weighs the first's probability; then best first.
void Rank(std::vector<Desire>* desires) {
  std::stable_sort(desires->begin(), desires->end(), ByScore);
  std::map<std::string, double> before;
  for (Desire& d : *desires) {
    auto [it, fresh] = before.try_emplace(d.key, 1.0);
    d.score *= it->second;
    it->second *= d.probability;
  }
  std::stable_sort(desires->begin(), desires->end(), ByScore);
}

// Rule 3: desires met by entries (or idle workers); the rest go to out->queue.
void Match(PlanInput& in, const std::set<uint64_t>& gone, Working* w, PlanDecision* out) {
  std::map<uint64_t, double> score;
  std::set<uint64_t> used;
  for (Desire& d : in.desires) {
    auto idle = in.idle_workers.find(d.key);
    if (d.level == WarmLevel::kWorker && idle != in.idle_workers.end() && idle->second > 0) {
      --idle->second;
      continue;
    }
    const WarmEntry* met = nullptr;
    for (const WarmEntry& e : in.entries) {
      if (e.key == d.key && !gone.count(e.id) && !used.count(e.id)) {
        met = &e;
        break;
      }
    }
    if (!met) {
      out->queue.push_back(std::move(d));
      continue;
    }
    used.insert(met->id);
    score[met->id] = d.score;
    if (d.fire_ms <= static_cast<double>(in.now_ms)) {
      int64_t until = in.now_ms + static_cast<int64_t>(d.keep_alive_ms);
      if (until > met->expires_ms) out->extended.emplace_back(met->id, until);
    }
  }
  for (const WarmEntry& e : in.entries) {
    if (gone.count(e.id)) continue;
    double s = score.count(e.id) ? score[e.id] : 0.0;
    out->scores.emplace_back(e.id, s);
    w->Add({.id = e.id,
            .entry = &e,
            .key = e.key,
            .process = e.process(),
            .busy = e.busy,
            .score = s,
            .memory = e.memory,
            .staged = e.staged_bytes});
  }
}

// Rule 5's consequence for when to start: with `lanes` start-ups at once, processes needed close
// together queue for the CPU, so each is started early enough that, started latest first in
// need order backwards, all are ready by their needs. A start-up's length is need − fire (its
// start-up + margin).
void Stagger(std::vector<Desire>* queue, size_t lanes) {
  std::vector<Desire*> order;
  for (Desire& d : *queue) {
    if (d.process()) order.push_back(&d);
  }
  std::stable_sort(order.begin(), order.end(),
                   [](const Desire* a, const Desire* b) { return a->need_ms > b->need_ms; });
  std::vector<double> free_until(std::max<size_t>(1, lanes), HUGE_VAL);
  for (Desire* d : order) {
    auto lane = std::max_element(free_until.begin(), free_until.end());
    double start = std::min(d->need_ms, *lane) - (d->need_ms - d->fire_ms);
    *lane = start;
    d->fire_ms = std::min(d->fire_ms, start);
  }
}

// Rule 1: the entries past their keep-alive and not busy staging go to out->expired; returns
// their ids (gone from what the later rules see).
std::set<uint64_t> Expire(const PlanInput& in, PlanDecision* out) {
  std::set<uint64_t> gone;
  for (const WarmEntry& e : in.entries) {
    if (e.expires_ms <= in.now_ms && !e.busy) {
      out->expired.push_back(e.id);
      gone.insert(e.id);
    }
  }
  return gone;
}

// A desire admitted by rule 4: its index in PlanDecision::queue, and the entries to stop for it.
struct Admitted {
  size_t queued;
  std::vector<uint64_t> victims;
};

// Rule 4: admission, best first, of the desires of `queue` that are due, each added to `w` if
// the budgets allow it (with the victims that make room for it). *next_fire: the earliest fire
// time of those not yet due, -1 if none.
std::vector<Admitted> Admit(const std::vector<Desire>& queue, const PlanBudgets& budgets,
                            int64_t now_ms, Working* w, double* next_fire) {
  const double now = static_cast<double>(now_ms);
  std::vector<Admitted> admitted;
  std::vector<double> reserved;  // fire times of better process desires not yet due
  *next_fire = -1;
  for (size_t i = 0; i < queue.size(); ++i) {
    const Desire& d = queue[i];
    if (d.fire_ms > now) {
      *next_fire = *next_fire < 0 ? d.fire_ms : std::min(*next_fire, d.fire_ms);
      if (d.process() && d.holds_room) reserved.push_back(d.fire_ms);
      continue;
    }
    // Room is kept for those that will come while `d` would still wait to be used.
    size_t kept = static_cast<size_t>(std::count_if(
        reserved.begin(), reserved.end(), [&d](double fire) { return fire < d.need_ms; }));
    if (d.process() && kept > 0 && w->processes + kept + 1 > budgets.processes) continue;
    std::vector<uint64_t> victims;
    if (!w->MakeRoom(d, budgets, &victims)) continue;
    w->Add({.key = d.key,
            .process = d.process(),
            .score = d.score,
            .memory = d.memory,
            .staged = d.staged_bytes});
    admitted.push_back({i, std::move(victims)});
  }
  return admitted;
}

// The prewarmed processes still starting up now (those of entries not gone); *slow_from: the
// earliest time one of them stops counting, -1 if none.
size_t StartingUp(const PlanInput& in, const std::set<uint64_t>& gone, int64_t* slow_from) {
  size_t starting = 0;
  *slow_from = -1;
  for (const WarmEntry& e : in.entries) {
    if (gone.count(e.id) || !e.process() || e.starting_until_ms <= in.now_ms) continue;
    ++starting;
    *slow_from = *slow_from < 0 ? e.starting_until_ms : std::min(*slow_from, e.starting_until_ms);
  }
  return starting;
}

// Rule 5: starts in need order, processes while fewer than `most_starting` (at least 1) start
// up, `starting` already. Moves the admitted desires that start from out->queue to out->start
// (in need order), their victims to out->evicted. Returns whether a process was held back.
bool Start(std::vector<Admitted> admitted, size_t starting, size_t most_starting,
           PlanDecision* out) {
  std::stable_sort(admitted.begin(), admitted.end(), [out](const Admitted& a, const Admitted& b) {
    return out->queue[a.queued].fire_ms < out->queue[b.queued].fire_ms;
  });
  bool held = false;
  std::set<size_t> started;
  for (Admitted& a : admitted) {
    const Desire& d = out->queue[a.queued];
    if (d.process() && (held || starting >= std::max<size_t>(1, most_starting))) {
      held = true;
      continue;
    }
    starting += d.process();
    out->evicted.insert(out->evicted.end(), a.victims.begin(), a.victims.end());
    started.insert(a.queued);
  }
  std::vector<Desire> waiting;
  for (size_t i = 0; i < out->queue.size(); ++i) {
    (started.count(i) ? out->start : waiting).push_back(std::move(out->queue[i]));
  }
  out->queue = std::move(waiting);
  std::stable_sort(out->start.begin(), out->start.end(),
                   [](const Desire& a, const Desire& b) { return a.fire_ms < b.fire_ms; });
  return held;
}

// Rule 6: when to plan again (PlanDecision::wake_ms): the earliest of `next_fire`, the
// keep-alive ends of the entries that stay (not gone, busy or evicted) and `held_until` (the
// end of a start-up held as slow, when starts wait on it); -1 for none of them (each -1: none).
int64_t WakeTime(const PlanInput& in, const std::set<uint64_t>& gone, const PlanDecision& out,
                 double next_fire, int64_t held_until) {
  double wake = next_fire;
  auto sooner = [&wake](double t) { wake = wake < 0 ? t : std::min(wake, t); };
  for (const WarmEntry& e : in.entries) {
    if (!gone.count(e.id) && !e.busy &&
        std::find(out.evicted.begin(), out.evicted.end(), e.id) == out.evicted.end()) {
      sooner(static_cast<double>(e.expires_ms));
    }
  }
  if (held_until >= 0) sooner(static_cast<double>(held_until));
  return wake < 0 ? -1 : static_cast<int64_t>(std::ceil(wake));
}

}  // namespace

PlanDecision Decide(PlanInput in) {
  PlanDecision out;
  std::set<uint64_t> gone = Expire(in, &out);
  Rank(&in.desires);
  Working w;
  Match(in, gone, &w, &out);
  Stagger(&out.queue, in.budgets.lanes);
  double next_fire;
  std::vector<Admitted> admitted = Admit(out.queue, in.budgets, in.now_ms, &w, &next_fire);
  int64_t slow_from;
  size_t starting = StartingUp(in, gone, &slow_from);
  bool held = Start(std::move(admitted), starting, in.budgets.starting, &out);
  out.wake_ms = WakeTime(in, gone, out, next_fire, held ? slow_from : -1);
  return out;
}

}  // namespace chainctl::daemon
