// Admission of tasks against chaind's capacity (DESIGN.md §4 "Resources"): the cores, memory
// and GPUs that tasks declare in resource_requirements are held from an attempt's start to its
// end, and a task starts only when its requests fit in what is free. A request of 0 (not
// declared) always fits: such a task is admitted on --jobs alone. Pure: no I/O, no clock;
// the orchestrator decides when to ask. Loop thread only (not thread-safe).
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "common/chain/chain.h"
#include "common/chain/load.h"

namespace chainctl::daemon {

// What tasks are admitted against (chaind --cpus, --memory, --gpus). The defaults admit any
// cpu and memory request and no GPU request.
struct Capacity {
  static constexpr int64_t kUnlimitedCpu = std::numeric_limits<int64_t>::max();
  static constexpr uint64_t kUnlimitedMemory = std::numeric_limits<uint64_t>::max();
  int64_t cpu_millis = kUnlimitedCpu;  // 1000 = one core
  uint64_t memory_bytes = kUnlimitedMemory;
  std::vector<std::string> gpus;  // device ids, distinct, handed out in this order
};

// What one attempt holds from Acquire to Release.
struct Grant {
  int64_t cpu_millis = 0;
  uint64_t memory_bytes = 0;
  std::vector<std::string> gpus;  // the device ids the attempt may use
};

// "8Gi", "23.4Gi", "700Mi": a byte count to one decimal in the largest binary unit.
std::string ApproximateSize(uint64_t bytes);
// "1 core", "2.5 cores".
std::string FormatCores(int64_t millis);
// "2 cores, 7.6Gi of memory, GPUs 0,1" (for the log).
std::string DescribeCapacity(const Capacity& capacity);

class Resources {
 public:
  explicit Resources(Capacity capacity);

  const Capacity& capacity() const { return capacity_; }

  // Why `req` could not be admitted even with nothing else running: one entry per field over
  // capacity, in the order cpu, memory, gpu, with messages such as "needs 2 GPUs; chaind has
  // 1 (--gpus 0)". Empty: it fits an idle daemon.
  std::vector<ResourceMisfit> Misfits(const ResourceRequirements& req) const;
  // The misfits as one line ("; " between them), or nullopt if there are none.
  std::optional<std::string> NeverFits(const ResourceRequirements& req) const;

  // Whether `req` fits in what is free now.
  bool Fits(const ResourceRequirements& req) const;
  // Takes `req` from what is free; GPUs are the first free ones in capacity order. Requires
  // Fits(req).
  Grant Acquire(const ResourceRequirements& req);
  // Gives back what Acquire took (each grant exactly once).
  void Release(const Grant& grant);

  int64_t cpu_millis_used() const { return cpu_used_; }
  uint64_t memory_bytes_used() const { return memory_used_; }
  size_t gpus_free() const;

 private:
  Capacity capacity_;
  int64_t cpu_used_ = 0;
  uint64_t memory_used_ = 0;
  std::vector<bool> gpu_taken_;  // parallel to capacity_.gpus
};

}  // namespace chainctl::daemon
