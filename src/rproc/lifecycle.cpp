// SPDX-License-Identifier: BSD-3-Clause
#include "amp/rproc/lifecycle.hpp"

#include "amp/metal/log.hpp"

namespace amp::rproc {

using metal::LockGuard;

const char* to_string(State s) noexcept {
  switch (s) {
    case State::kOffline:
      return "offline";
    case State::kLoaded:
      return "loaded";
    case State::kRunning:
      return "running";
    case State::kStopped:
      return "stopped";
    case State::kCrashed:
      return "crashed";
    case State::kAttached:
      return "attached";
    case State::kDetached:
      return "detached";
  }
  return "invalid";
}

void Lifecycle::set_listener(Listener listener) noexcept {
  LockGuard g(mutex_);
  listener_ = static_cast<Listener&&>(listener);
}

void Lifecycle::set_recovery(bool enabled, std::uint32_t max_attempts) noexcept {
  LockGuard g(mutex_);
  recovery_ = enabled;
  max_attempts_ = max_attempts;
}

void Lifecycle::reset_recoveries() noexcept {
  LockGuard g(mutex_);
  recoveries_ = 0;
}

State Lifecycle::state() const noexcept {
  LockGuard g(mutex_);
  return state_;
}

std::uint32_t Lifecycle::recoveries() const noexcept {
  LockGuard g(mutex_);
  return recoveries_;
}

void Lifecycle::move_locked(State to, Status cause) noexcept {
  const Transition t{state_, to, cause};
  state_ = to;
  AMP_LOG_INFO("rproc: %s -> %s", to_string(t.from), to_string(t.to));
  if (listener_) listener_(t);
}

Status Lifecycle::load(std::span<const std::byte> firmware) noexcept {
  LockGuard g(mutex_);
  if (state_ != State::kOffline && state_ != State::kStopped && state_ != State::kCrashed)
    return Status::kBusy;
  AMP_RETURN_IF_ERROR(driver_.load(firmware));
  firmware_ = firmware;
  move_locked(State::kLoaded, Status::kOk);
  return Status::kOk;
}

Status Lifecycle::start() noexcept {
  LockGuard g(mutex_);
  if (state_ != State::kLoaded) return Status::kBusy;
  AMP_RETURN_IF_ERROR(driver_.start());
  move_locked(State::kRunning, Status::kOk);
  return Status::kOk;
}

Status Lifecycle::stop() noexcept {
  LockGuard g(mutex_);
  if (state_ != State::kRunning && state_ != State::kAttached && state_ != State::kDetached)
    return Status::kBusy;
  AMP_RETURN_IF_ERROR(driver_.stop());
  move_locked(State::kStopped, Status::kOk);
  return Status::kOk;
}

Status Lifecycle::attach() noexcept {
  LockGuard g(mutex_);
  if (state_ != State::kOffline && state_ != State::kDetached) return Status::kBusy;
  AMP_RETURN_IF_ERROR(driver_.attach());
  move_locked(State::kAttached, Status::kOk);
  return Status::kOk;
}

Status Lifecycle::detach() noexcept {
  LockGuard g(mutex_);
  if (state_ != State::kRunning && state_ != State::kAttached) return Status::kBusy;
  AMP_RETURN_IF_ERROR(driver_.detach());
  move_locked(State::kDetached, Status::kOk);
  return Status::kOk;
}

Status Lifecycle::report_crash(Status cause) noexcept {
  LockGuard g(mutex_);
  if (state_ != State::kRunning && state_ != State::kAttached && state_ != State::kDetached)
    return Status::kBusy;
  const bool had_firmware = !firmware_.empty();
  const bool was_detached = state_ == State::kDetached;
  move_locked(State::kCrashed, cause);
  if (was_detached) return cause;  // we had let go of it: not ours to restart
  if (!recovery_ || !had_firmware || recoveries_ >= max_attempts_) {
    if (recovery_ && had_firmware)
      AMP_LOG_ERROR("rproc: giving up after %u recoveries", static_cast<unsigned>(recoveries_));
    return cause;
  }
  ++recoveries_;
  // A crashed core may be left half-running: stop it (a failure here is what we already know).
  (void)driver_.stop();
  if (const Status s = driver_.load(firmware_); !ok(s)) {
    AMP_LOG_ERROR("rproc: recovery failed to reload: %s", amp::to_string(s));
    return s;
  }
  move_locked(State::kLoaded, Status::kOk);
  if (const Status s = driver_.start(); !ok(s)) {
    AMP_LOG_ERROR("rproc: recovery failed to restart: %s", amp::to_string(s));
    return s;
  }
  move_locked(State::kRunning, Status::kOk);
  return Status::kOk;
}

}  // namespace amp::rproc
