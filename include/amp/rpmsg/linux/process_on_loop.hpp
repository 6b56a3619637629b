// SPDX-License-Identifier: BSD-3-Clause
// ProcessOnLoop: the DeviceConfig::reschedule of a Device whose process() runs on an EventLoop. When
// process() stops at its budget with buffers still waiting, it posts another process() to the loop, so the
// loop serves its other sources (a hang-up, another device, a stop) in between. Without a loop (a thread
// that polls the rings calls process() again anyway) it does nothing.
//
// Thread-safety: notify() may be called from any thread (EventLoop::post is thread-safe).
#pragma once

#include "amp/metal/linux/event_loop.hpp"
#include "amp/rpmsg/device.hpp"

namespace amp::rpmsg {

class ProcessOnLoop final : public Notifier {
 public:
  ProcessOnLoop() = default;
  ProcessOnLoop(metal::EventLoop* loop, Device* device) noexcept : loop_(loop), device_(device) {}

  Status notify(std::uint32_t) noexcept override {
    if (loop_ == nullptr) return Status::kOk;
    Device* d = device_;
    auto posted = loop_->post([d] { (void)d->process(); });
    return posted ? Status::kOk : posted.error().status;
  }

 private:
  metal::EventLoop* loop_ = nullptr;
  Device* device_ = nullptr;
};

}  // namespace amp::rpmsg
