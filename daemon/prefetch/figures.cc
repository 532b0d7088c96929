#include "daemon/prefetch/figures.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <utility>
#include <vector>

#include "common/read_file.h"
#include "daemon/prefetch/chain_view.h"
#include "daemon/util/log.h"

namespace chainctl::daemon {
namespace {

using json = nlohmann::json;
constexpr uint64_t kDefaultKeepAliveMs = 60'000;
constexpr uint64_t kMinKeepAliveMs = 1000;

bool IsStaged(const std::string& key) { return key.starts_with("stage:"); }

}  // namespace

TaskFigures& FigureBook::Touch(const std::string& key, const std::string& chain_id,
                               const std::string& task_id, int64_t now_ms) {
  TaskFigures& f = figures_[key];
  f.chain_id = chain_id;
  f.task_id = task_id;
  f.seen_ms = now_ms;
  return f;
}

const TaskFigures* FigureBook::Find(const std::string& key) const {
  auto it = figures_.find(key);
  return it == figures_.end() ? nullptr : &it->second;
}

double FigureBook::StartupMs(const std::string& key) const {
  const TaskFigures* f = Find(key);
  if (!f) return kAssumedStartupMs;
  if (IsStaged(key)) return f->stage_ms.size() > 0 ? f->stage_ms.Quantile(0.5) : kAssumedStartupMs;
  if (f->startups.size() > 0) return f->startups.Quantile(0.9);
  if (f->cold_ms.size() > 0 && f->warm_ms.size() > 0) {
    return std::max(0.0, f->cold_ms.Quantile(0.5) - f->warm_ms.Quantile(0.5));
  }
  return kAssumedStartupMs;
}

bool FigureBook::Gains(const std::string& key) const { return StartupMs(key) >= kMinGainMs; }

uint64_t FigureBook::KeepAliveMs(const std::string& key) const {
  const TaskFigures* f = Find(key);
  uint64_t keep = kDefaultKeepAliveMs;
  if (f && f->gaps.size() >= 2) keep = static_cast<uint64_t>(1.5 * f->gaps.Quantile(0.99));
  return std::clamp<uint64_t>(keep, std::min(kMinKeepAliveMs, ttl_ms_), ttl_ms_);
}

uint64_t FigureBook::MemoryOf(const std::string& key, const TaskSpec& task) const {
  const TaskFigures* f = Find(key);
  if (f && f->rss_kb > 0) return f->rss_kb * 1024;
  if (task.resource_requirements.memory_bytes > 0) return task.resource_requirements.memory_bytes;
  return kAssumedMemory;
}

void FigureBook::LearnStartup(TaskFigures& f, const TaskRunner::WarmState& state) {
  if (state.ready_ms) {
    f.startup_ms = *state.ready_ms;
    f.rss_kb = state.rss_kb;
    f.startups.Add(*state.ready_ms);
  } else {
    f.startups.Add(1.5 * state.age_ms);
  }
}

void FigureBook::CountWaste(TaskFigures& f, const TaskResult& cost) {
  ++f.wasted;
  f.wasted_cpu_s += cost.cpu_s;
  double seconds = static_cast<double>(cost.end_unix_ms - cost.start_unix_ms) / 1000;
  f.wasted_mb_s += static_cast<double>(cost.max_rss_kb) / 1024 * std::max(0.0, seconds);
}

json FigureBook::Totals() const {
  uint64_t hits = 0, misses = 0, wasted = 0, prewarms = 0;
  double cpu = 0, mb_s = 0, saved = 0;
  for (const auto& [key, f] : figures_) {
    hits += f.hits;
    misses += f.misses;
    wasted += f.wasted;
    prewarms += f.prewarms;
    cpu += f.wasted_cpu_s;
    mb_s += f.wasted_mb_s;
    saved += f.saved_ms;
  }
  json hit_rate = hits + misses
                      ? json(static_cast<double>(hits) / static_cast<double>(hits + misses))
                      : json(nullptr);
  return {{"hits", hits},
          {"misses", misses},
          {"hit_rate", hit_rate},
          {"prewarms", prewarms},
          {"wasted", {{"prewarms", wasted}, {"cpu_seconds", cpu}, {"mb_seconds", mb_s}}},
          {"startup_saved_ms", saved}};
}

json FigureBook::Tasks() const {
  json tasks = json::array();
  for (const auto& [key, f] : figures_) {
    if (f.level.empty()) continue;  // only the gaps between its starts: it prewarms nothing
    json t = {
        {"chain_id", f.chain_id}, {"task_id", f.task_id},   {"level", f.level},
        {"hits", f.hits},         {"misses", f.misses},     {"prewarms", f.prewarms},
        {"wasted", f.wasted},     {"saved_ms", f.saved_ms}, {"keep_alive_ms", KeepAliveMs(key)}};
    if (f.startup_ms) t["startup_ms"] = *f.startup_ms;
    tasks.push_back(std::move(t));
  }
  return tasks;
}

// Of the `kept` tasks seen last with something measured (keys of old definitions would pile up
// otherwise): what was measured, not this daemon's counts.
json FigureBook::Measurements(size_t kept) const {
  std::vector<std::pair<const std::string*, const TaskFigures*>> rows;
  for (const auto& [key, f] : figures_) {
    if (f.startups.size() + f.gaps.size() + f.cold_ms.size() + f.stage_ms.size() == 0 &&
        f.staged_bytes == 0) {
      continue;
    }
    if (key.ends_with(kRunValuesKey)) continue;  // a run's own values: memory only (WarmKey)
    rows.emplace_back(&key, &f);
  }
  auto newer = [](const auto& a, const auto& b) { return a.second->seen_ms > b.second->seen_ms; };
  std::stable_sort(rows.begin(), rows.end(), newer);
  if (rows.size() > kept) rows.resize(kept);
  json tasks = json::object();
  for (auto [key, figures] : rows) {
    const TaskFigures& f = *figures;
    tasks[*key] = {{"chain_id", f.chain_id},
                   {"seen_ms", f.seen_ms},
                   {"task_id", f.task_id},
                   {"level", f.level},
                   {"startups", f.startups.ToJson()},
                   {"rss_kb", f.rss_kb},
                   {"staged_bytes", f.staged_bytes},
                   {"stage_ms", f.stage_ms.ToJson()},
                   {"gaps", f.gaps.ToJson()},
                   {"cold_ms", f.cold_ms.ToJson()},
                   {"warm_ms", f.warm_ms.ToJson()}};
  }
  return {{"format", 1}, {"tasks", std::move(tasks)}};
}

bool FigureBook::LoadMeasurements(const json& j, std::string* err) {
  if (!j.is_object() || j.value("format", json()) != 1 || !j.contains("tasks") ||
      !j["tasks"].is_object()) {
    *err = "not a measurements file of format 1";
    return false;
  }
  std::map<std::string, TaskFigures> loaded;
  try {
    for (const auto& [key, t] : j["tasks"].items()) {
      TaskFigures& f = loaded[key];
      f.chain_id = t.at("chain_id").get<std::string>();
      f.task_id = t.at("task_id").get<std::string>();
      f.level = t.at("level").get<std::string>();
      f.seen_ms = t.at("seen_ms").get<int64_t>();
      f.rss_kb = t.at("rss_kb").get<uint64_t>();
      f.staged_bytes = t.at("staged_bytes").get<uint64_t>();
      for (auto [name, window] :
           {std::pair{"startups", &f.startups}, std::pair{"gaps", &f.gaps},
            std::pair{"cold_ms", &f.cold_ms}, std::pair{"warm_ms", &f.warm_ms},
            std::pair{"stage_ms", &f.stage_ms}}) {
        if (!t.contains(name) && window == &f.stage_ms) continue;  // added later
        if (!window->FromJson(t.at(name), err)) {
          *err = key + ": " + name + ": " + *err;
          return false;
        }
      }
    }
  } catch (const json::exception& e) {
    *err = e.what();
    return false;
  }
  figures_ = std::move(loaded);
  return true;
}

void FigureBook::Read(const std::string& path) {
  std::string text, err;
  if (int error = ReadFileBytes(path, &text); error != 0) {
    if (error != ENOENT) {  // ENOENT: a first start
      Log(LogLevel::kWarning, "prefetch: cannot read " + path + ": " + std::strerror(error));
    }
    return;
  }
  if (!LoadMeasurements(json::parse(text, nullptr, false), &err)) {
    Log(LogLevel::kWarning, "prefetch: ignoring " + path + " (" + err + ")");
  }
}

void FigureBook::Write(const std::string& path, size_t kept) const {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << Measurements(kept).dump() << '\n';
    if (!out.flush()) {
      Log(LogLevel::kWarning, "prefetch: cannot write " + tmp);
      return;
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) Log(LogLevel::kWarning, "prefetch: cannot write " + path + ": " + ec.message());
}

}  // namespace chainctl::daemon
