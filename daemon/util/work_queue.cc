#include "daemon/util/work_queue.h"

namespace chainctl::daemon {
namespace {

// Owns itself from QueueWork until its after-work callback.
struct WorkItem {
  uv_work_t req;
  std::function<void()> work;
  std::function<void()> done;
};

void RunWork(uv_work_t* req) { static_cast<WorkItem*>(req->data)->work(); }

void AfterWork(uv_work_t* req, int /*status: UV_ECANCELED never happens, nothing cancels*/) {
  auto* item = static_cast<WorkItem*>(req->data);
  item->done();
  delete item;
}

}  // namespace

void QueueWork(uv_loop_t* loop, std::function<void()> work, std::function<void()> done) {
  auto* item = new WorkItem{{}, std::move(work), std::move(done)};
  item->req.data = item;
  if (uv_queue_work(loop, &item->req, RunWork, AfterWork) != 0) {
    // Only fails for a null callback; run inline rather than lose the work.
    item->work();
    item->done();
    delete item;
  }
}

}  // namespace chainctl::daemon
