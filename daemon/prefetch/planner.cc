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

}  // namespace

PlanDecision Decide(PlanInput in) {
  PlanDecision out;
  const double now = static_cast<double>(in.now_ms);
  std::set<uint64_t> gone;
  for (const WarmEntry& e : in.entries) {  // rule 1
    if (e.expires_ms <= in.now_ms && !e.busy) {
      out.expired.push_back(e.id);
      gone.insert(e.id);
    }
  }
  Rank(&in.desires);
  Working w;
  Match(in, gone, &w, &out);
  Stagger(&out.queue, in.budgets.lanes);

  // Rule 4: admission, best first.
  struct Admitted {
    size_t queued;  // index in out.queue
    std::vector<uint64_t> victims;
  };
  std::vector<Admitted> admitted;
  std::vector<double> reserved;  // fire times of better process desires not yet due
  double next_fire = -1;
  for (size_t i = 0; i < out.queue.size(); ++i) {
    const Desire& d = out.queue[i];
    if (d.fire_ms > now) {
      next_fire = next_fire < 0 ? d.fire_ms : std::min(next_fire, d.fire_ms);
      if (d.process() && d.holds_room) reserved.push_back(d.fire_ms);
      continue;
    }
    // Room is kept for those that will come while `d` would still wait to be used.
    size_t kept = static_cast<size_t>(std::count_if(
        reserved.begin(), reserved.end(), [&d](double fire) { return fire < d.need_ms; }));
    if (d.process() && kept > 0 && w.processes + kept + 1 > in.budgets.processes) continue;
    std::vector<uint64_t> victims;
    if (!w.MakeRoom(d, in.budgets, &victims)) continue;
    w.Add({.key = d.key,
           .process = d.process(),
           .score = d.score,
           .memory = d.memory,
           .staged = d.staged_bytes});
    admitted.push_back({i, std::move(victims)});
  }

  // Rule 5: starts in need order, processes while few enough start up.
  std::stable_sort(admitted.begin(), admitted.end(), [&out](const Admitted& a, const Admitted& b) {
    return out.queue[a.queued].fire_ms < out.queue[b.queued].fire_ms;
  });
  size_t starting = 0;
  int64_t slow_from = -1;  // when the first start-up under way stops counting
  for (const WarmEntry& e : in.entries) {
    if (gone.count(e.id) || !e.process() || e.starting_until_ms <= in.now_ms) continue;
    ++starting;
    slow_from = slow_from < 0 ? e.starting_until_ms : std::min(slow_from, e.starting_until_ms);
  }
  bool held = false;
  std::set<size_t> started;
  for (Admitted& a : admitted) {
    const Desire& d = out.queue[a.queued];
    if (d.process() && (held || starting >= std::max<size_t>(1, in.budgets.starting))) {
      held = true;
      continue;
    }
    starting += d.process();
    out.evicted.insert(out.evicted.end(), a.victims.begin(), a.victims.end());
    started.insert(a.queued);
  }
  std::vector<Desire> waiting;
  for (size_t i = 0; i < out.queue.size(); ++i) {
    (started.count(i) ? out.start : waiting).push_back(std::move(out.queue[i]));
  }
  out.queue = std::move(waiting);
  std::stable_sort(out.start.begin(), out.start.end(),
                   [](const Desire& a, const Desire& b) { return a.fire_ms < b.fire_ms; });

  // Rule 6.
  double wake = next_fire;
  auto sooner = [&wake](double t) { wake = wake < 0 ? t : std::min(wake, t); };
  for (const WarmEntry& e : in.entries) {
    if (!gone.count(e.id) && !e.busy &&
        std::find(out.evicted.begin(), out.evicted.end(), e.id) == out.evicted.end()) {
      sooner(static_cast<double>(e.expires_ms));
    }
  }
  if (held && slow_from >= 0) sooner(static_cast<double>(slow_from));
  out.wake_ms = wake < 0 ? -1 : static_cast<int64_t>(std::ceil(wake));
  return out;
}

}  // namespace chainctl::daemon
