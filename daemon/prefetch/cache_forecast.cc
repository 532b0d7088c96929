#include "daemon/prefetch/cache_forecast.h"

#include "common/source_hash.h"
#include "daemon/util/work_queue.h"

namespace chainctl::daemon {

using nlohmann::json;

namespace {

// Whether the files found are exactly those recorded ({"PATH": hex, ...} of DescribeKeyParts).
bool SameSources(const SourcesDigest& now, const json& recorded) {
  if (!recorded.is_object() || recorded.size() != now.entries.size()) return false;
  for (const SourceFile& f : now.entries) {
    auto it = recorded.find(f.path);
    if (it == recorded.end() || !it->is_string() || it->get<std::string>() != f.hash.Hex()) {
      return false;
    }
  }
  return true;
}

}  // namespace

CacheForecast::CacheForecast(uv_loop_t* loop, TaskCache* cache, HashMemo* memo,
                             std::function<void()> known, int64_t ttl_ms, UnixMsClock clock)
    : loop_(loop),
      cache_(cache),
      memo_(memo),
      known_(std::move(known)),
      ttl_ms_(ttl_ms),
      clock_(std::move(clock)) {}

CacheForecast::~CacheForecast() { *alive_ = false; }

std::optional<bool> CacheForecast::Expected(const std::string& chain_id, const TaskSpec& task) {
  if (!task.Cached() || !WhyNotCacheable(task).empty()) return false;
  std::string name = TaskCache::LastName(chain_id, task.task_id);
  Answer& answer = answers_[name];
  bool stale = !answer.hit || clock_() - answer.checked_ms >= ttl_ms_;
  if (stale && !answer.in_flight) Check(name, task);
  return answer.hit;
}

void CacheForecast::Check(const std::string& name, const TaskSpec& task) {
  answers_[name].in_flight = true;
  ++checks_;
  auto hit = std::make_shared<bool>(false);
  QueueWork(
      loop_,
      [cache = cache_, memo = memo_, name, base = task.source_dir, globs = task.sources, hit] {
        std::optional<json> last = cache->ReadLast(name);
        if (!last || !last->is_object()) return;
        SourcesDigest digest;
        std::string ignored;  // a source that cannot be read: not expected to hit
        if (!globs.empty() && !HashSources(base, globs, memo, &digest, &ignored)) return;
        *hit = SameSources(digest, last->value("sources", json::object()));
      },
      [this, alive = alive_, name, hit] {
        if (!*alive) return;
        Answer& answer = answers_[name];
        bool changed = answer.hit != *hit;
        answer = {*hit, clock_(), false};
        if (changed && known_) known_();
      });
}

}  // namespace chainctl::daemon
