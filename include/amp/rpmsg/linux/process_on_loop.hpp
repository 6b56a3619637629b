// SPDX-License-Identifier: BSD-3-Clause
// ProcessOnLoop: the DeviceConfig::reschedule of a Device whose process() runs on an EventLoop. When
// process() stops at its budget with buffers still waiting, it posts `run` (the caller's process() call and
// what it does with the result) to the loop, so the loop serves its other sources (a hang-up, another
// device, a stop) in between. At most one such post is pending at a time. Without a loop (a thread that
// polls the rings calls process() again anyway) it does nothing.
//
// Thread-safety: bind() before the device starts; notify() may then be called from any thread
// (EventLoop::post is thread-safe). The object must outlive the loop's running (posts capture it).
#pragma once

#include <atomic>
#include <functional>
#include <utility>

#include "amp/metal/linux/event_loop.hpp"
#include "amp/rpmsg/device.hpp"

namespace amp::rpmsg {

class ProcessOnLoop final : public Notifier {
 public:
  void bind(metal::EventLoop* loop, std::function<void()> run) {
    loop_ = loop;
    run_ = std::move(run);
  }

  Status notify(std::uint32_t) noexcept override {
    if (loop_ == nullptr) return Status::kOk;
    if (pending_.exchange(true, std::memory_order_acq_rel)) return Status::kOk;  // one is on its way
    auto posted = loop_->post([this] {
      pending_.store(false, std::memory_order_release);
      run_();
    });
    if (posted) return Status::kOk;
    pending_.store(false, std::memory_order_release);
    return posted.error().status;
  }

 private:
  metal::EventLoop* loop_ = nullptr;
  std::function<void()> run_;
  std::atomic<bool> pending_{false};
};

}  // namespace amp::rpmsg
