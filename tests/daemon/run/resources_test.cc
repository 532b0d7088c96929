#include "daemon/run/resources.h"

#include <gtest/gtest.h>

namespace chainctl::daemon {
namespace {

ResourceRequirements Req(int64_t cpu_millis, uint64_t memory_bytes = 0, int gpu = 0) {
  ResourceRequirements r;
  r.cpu_millis = cpu_millis;
  r.memory_bytes = memory_bytes;
  r.gpu = gpu;
  return r;
}

constexpr uint64_t kMi = 1ull << 20;
constexpr uint64_t kGi = 1ull << 30;

TEST(Resources, NothingDeclaredAlwaysFits) {
  Resources r(Capacity{1000, kGi, {}});
  std::vector<Grant> grants;
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(r.Fits(Req(0)));
    grants.push_back(r.Acquire(Req(0)));
  }
  EXPECT_TRUE(r.Misfits(Req(0)).empty());
  EXPECT_EQ(r.cpu_millis_used(), 0);
}

TEST(Resources, MemoryRequestsWaitUntilReleased) {
  Resources r(Capacity{Capacity::kUnlimitedCpu, 1 * kGi, {}});
  ASSERT_TRUE(r.Fits(Req(0, 700 * kMi)));
  Grant first = r.Acquire(Req(0, 700 * kMi));
  EXPECT_FALSE(r.Fits(Req(0, 700 * kMi)));
  EXPECT_TRUE(r.Fits(Req(0, 324 * kMi)));  // exactly what is left
  EXPECT_FALSE(r.Fits(Req(0, 325 * kMi)));
  EXPECT_TRUE(r.Misfits(Req(0, 700 * kMi)).empty()) << "waits; is not refused";
  r.Release(first);
  EXPECT_TRUE(r.Fits(Req(0, 700 * kMi)));
  EXPECT_EQ(r.memory_bytes_used(), 0u);
}

TEST(Resources, CpuIsCountedInMillicores) {
  Resources r(Capacity{2500, Capacity::kUnlimitedMemory, {}});
  Grant a = r.Acquire(Req(1500));
  EXPECT_TRUE(r.Fits(Req(1000)));
  EXPECT_FALSE(r.Fits(Req(1001)));
  Grant b = r.Acquire(Req(1000));
  EXPECT_EQ(r.cpu_millis_used(), 2500);
  r.Release(a);
  r.Release(b);
  EXPECT_EQ(r.cpu_millis_used(), 0);
}

TEST(Resources, GpusAreHandedOutWithoutSharing) {
  Resources r(Capacity{Capacity::kUnlimitedCpu, Capacity::kUnlimitedMemory, {"0", "1", "2"}});
  Grant a = r.Acquire(Req(0, 0, 2));
  EXPECT_EQ(a.gpus, (std::vector<std::string>{"0", "1"}));
  EXPECT_FALSE(r.Fits(Req(0, 0, 2)));
  Grant b = r.Acquire(Req(0, 0, 1));
  EXPECT_EQ(b.gpus, (std::vector<std::string>{"2"}));
  EXPECT_EQ(r.gpus_free(), 0u);
  Grant none = r.Acquire(Req(0));  // asks for none: gets none, even with none free
  EXPECT_TRUE(none.gpus.empty());
  r.Release(a);
  EXPECT_EQ(r.gpus_free(), 2u);
  Grant c = r.Acquire(Req(0, 0, 1));
  EXPECT_EQ(c.gpus, (std::vector<std::string>{"0"}));  // the first free, in --gpus order
}

TEST(Resources, NeverFitsNamesTheRequestAndTheCapacity) {
  Resources one_gpu(Capacity{4000, 16 * kGi, {"0"}});
  EXPECT_EQ(one_gpu.NeverFits(Req(0, 0, 2)), "needs 2 GPUs; chaind has 1 (--gpus 0)");
  EXPECT_EQ(one_gpu.NeverFits(Req(0, 0, 1)), std::nullopt);
  EXPECT_EQ(one_gpu.NeverFits(Req(8000)), "needs 8 cores; chaind has 4 cores (--cpus)");
  EXPECT_EQ(one_gpu.NeverFits(Req(0, 64 * kGi)),
            "needs 64Gi of memory; chaind has 16Gi (--memory)");
  Resources no_gpus(Capacity{500, 23 * kGi + 400 * kMi, {}});
  EXPECT_EQ(no_gpus.NeverFits(Req(0, 0, 1)), "needs 1 GPU; chaind has none (--gpus not given)");
  EXPECT_EQ(no_gpus.NeverFits(Req(1500, 24 * kGi)),
            "needs 1.5 cores; chaind has 0.5 cores (--cpus); "
            "needs 24Gi of memory; chaind has 23.4Gi (--memory)");
  std::vector<ResourceMisfit> misfits = no_gpus.Misfits(Req(1500, 24 * kGi, 1));
  ASSERT_EQ(misfits.size(), 3u);
  EXPECT_EQ(misfits[0].field, "cpu");
  EXPECT_EQ(misfits[1].field, "memory");
  EXPECT_EQ(misfits[2].field, "gpu");
}

TEST(Resources, DefaultCapacityAdmitsAnyCpuAndMemoryButNoGpu) {
  Resources r{Capacity{}};
  EXPECT_TRUE(r.Misfits(Req(1'000'000'000, 1ull << 60)).empty());
  EXPECT_TRUE(r.Fits(Req(1'000'000'000, 1ull << 60)));
  EXPECT_EQ(r.NeverFits(Req(0, 0, 1)), "needs 1 GPU; chaind has none (--gpus not given)");
}

TEST(Resources, SizesAndCoresForPeople) {
  EXPECT_EQ(ApproximateSize(512), "512 bytes");
  EXPECT_EQ(ApproximateSize(1536), "1.5Ki");
  EXPECT_EQ(ApproximateSize(700 * kMi), "700Mi");
  EXPECT_EQ(ApproximateSize(kGi - 1), "1Gi");
  EXPECT_EQ(ApproximateSize(1'000'000'000), "953.7Mi");
  EXPECT_EQ(FormatCores(1000), "1 core");
  EXPECT_EQ(FormatCores(250), "0.25 cores");
  EXPECT_EQ(FormatCores(12000), "12 cores");
  EXPECT_EQ(DescribeCapacity(Capacity{2000, 8 * kGi, {"0", "1"}}),
            "2 cores, 8Gi of memory, GPUs 0,1");
}

}  // namespace
}  // namespace chainctl::daemon
