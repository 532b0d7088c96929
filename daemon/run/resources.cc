#include "daemon/run/resources.h"

#include <array>
#include <cstdio>

namespace chainctl::daemon {
namespace {

std::string Gpus(size_t n) { return std::to_string(n) + (n == 1 ? " GPU" : " GPUs"); }

std::string Join(const std::vector<std::string>& items, const char* separator) {
  std::string text;
  for (const std::string& item : items) text += (text.empty() ? "" : separator) + item;
  return text;
}

}  // namespace

std::string FormatCores(int64_t millis) {
  std::string text = std::to_string(millis / 1000);
  if (int64_t rest = millis % 1000; rest != 0) {
    char fraction[8];
    std::snprintf(fraction, sizeof fraction, ".%03lld", static_cast<long long>(rest));
    text += fraction;
    while (text.back() == '0') text.pop_back();
  }
  return text + (millis == 1000 ? " core" : " cores");
}

std::string DescribeCapacity(const Capacity& c) {
  return (c.cpu_millis == Capacity::kUnlimitedCpu ? "any cpu" : FormatCores(c.cpu_millis)) + ", " +
         (c.memory_bytes == Capacity::kUnlimitedMemory
              ? "any memory"
              : ApproximateSize(c.memory_bytes) + " of memory") +
         ", " + (c.gpus.empty() ? "no GPUs" : "GPUs " + Join(c.gpus, ","));
}

std::string ApproximateSize(uint64_t bytes) {
  static constexpr std::array<const char*, 6> kUnits = {"Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
  if (bytes < 1024) return std::to_string(bytes) + (bytes == 1 ? " byte" : " bytes");
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  for (value /= 1024; unit + 1 < kUnits.size() && value >= 1023.95; ++unit) value /= 1024;
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", value);
  std::string number = text;
  if (number.ends_with(".0")) number.resize(number.size() - 2);
  return number + kUnits[unit];
}

Resources::Resources(Capacity capacity)
    : capacity_(std::move(capacity)), gpu_taken_(capacity_.gpus.size(), false) {}

std::vector<ResourceMisfit> Resources::Misfits(const ResourceRequirements& req) const {
  std::vector<ResourceMisfit> misfits;
  if (req.cpu_millis > capacity_.cpu_millis) {
    misfits.push_back({"cpu", "needs " + FormatCores(req.cpu_millis) + "; chaind has " +
                                  FormatCores(capacity_.cpu_millis) + " (--cpus)"});
  }
  if (req.memory_bytes > capacity_.memory_bytes) {
    misfits.push_back({"memory", "needs " + ApproximateSize(req.memory_bytes) +
                                     " of memory; chaind has " +
                                     ApproximateSize(capacity_.memory_bytes) + " (--memory)"});
  }
  if (req.gpu > 0 && static_cast<size_t>(req.gpu) > capacity_.gpus.size()) {
    std::string has = capacity_.gpus.empty() ? "none (--gpus not given)"
                                             : std::to_string(capacity_.gpus.size()) + " (--gpus " +
                                                   Join(capacity_.gpus, ",") + ")";
    misfits.push_back(
        {"gpu", "needs " + Gpus(static_cast<size_t>(req.gpu)) + "; chaind has " + has});
  }
  return misfits;
}

std::optional<std::string> Resources::NeverFits(const ResourceRequirements& req) const {
  std::vector<std::string> messages;
  for (const ResourceMisfit& m : Misfits(req)) messages.push_back(m.message);
  if (messages.empty()) return std::nullopt;
  return Join(messages, "; ");
}

bool Resources::Fits(const ResourceRequirements& req) const {
  return req.cpu_millis <= capacity_.cpu_millis - cpu_used_ &&
         req.memory_bytes <= capacity_.memory_bytes - memory_used_ &&
         (req.gpu <= 0 || static_cast<size_t>(req.gpu) <= gpus_free());
}

Grant Resources::Acquire(const ResourceRequirements& req) {
  Grant grant{req.cpu_millis, req.memory_bytes, {}};
  cpu_used_ += req.cpu_millis;
  memory_used_ += req.memory_bytes;
  for (size_t i = 0; i < gpu_taken_.size() && grant.gpus.size() < static_cast<size_t>(req.gpu);
       ++i) {
    if (gpu_taken_[i]) continue;
    gpu_taken_[i] = true;
    grant.gpus.push_back(capacity_.gpus[i]);
  }
  return grant;
}

void Resources::Release(const Grant& grant) {
  cpu_used_ -= grant.cpu_millis;
  memory_used_ -= grant.memory_bytes;
  for (const std::string& id : grant.gpus) {
    for (size_t i = 0; i < capacity_.gpus.size(); ++i) {
      if (capacity_.gpus[i] == id) gpu_taken_[i] = false;
    }
  }
}

size_t Resources::gpus_free() const {
  size_t free = 0;
  for (bool taken : gpu_taken_) free += taken ? 0 : 1;
  return free;
}

}  // namespace chainctl::daemon
