// SPDX-License-Identifier: BSD-3-Clause
// The life of a remote processor, like the Linux kernel's remoteproc: offline -> loaded -> running ->
// stopped, with crashed (and optional recovery: reload and restart), and attached/detached for a remote that
// runs already (started by a bootloader) or is left running.
//
//   offline --load--> loaded --start--> running --stop--> stopped --load--> loaded ...
//   running --crash--> crashed --(recovery: load, start)--> running;  detached --crash--> crashed
//   offline --attach--> attached --detach--> detached;  running --detach--> detached
//
// The platform's part (loading memory, releasing a core from reset, spawning a process...) is a Driver; this
// class keeps the state, refuses transitions that make no sense (kBusy: wrong state), tells a listener about
// every transition, and runs the recovery policy.
//
// Thread-safety: all methods may be called from any thread; one transition runs at a time (a mutex is held
// across the driver call and the listener). The listener must not call back into the Lifecycle.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "amp/metal/function.hpp"
#include "amp/metal/result.hpp"
#include "amp/metal/sync.hpp"

namespace amp::rproc {

enum class State : std::uint8_t { kOffline, kLoaded, kRunning, kStopped, kCrashed, kAttached, kDetached };

/// "offline", "loaded", "running", "stopped", "crashed", "attached", "detached".
const char* to_string(State s) noexcept;

/// The platform operations for one remote processor.
class Driver {
 public:
  /// Puts `firmware` into the remote's memory (and whatever else must precede a start).
  [[nodiscard]] virtual Status load(std::span<const std::byte> firmware) noexcept = 0;
  [[nodiscard]] virtual Status start() noexcept = 0;
  [[nodiscard]] virtual Status stop() noexcept = 0;
  /// Takes over a remote that already runs. kNotSupported by default.
  [[nodiscard]] virtual Status attach() noexcept { return Status::kNotSupported; }
  /// Leaves a running remote running and lets go of it. kNotSupported by default.
  [[nodiscard]] virtual Status detach() noexcept { return Status::kNotSupported; }

 protected:
  ~Driver() = default;
};

struct Transition {
  State from;
  State to;
  /// Why: kOk for a requested transition; the crash's cause for kCrashed; a failed recovery's error.
  Status cause;
};

class Lifecycle {
 public:
  using Listener = metal::InplaceFunction<void(const Transition&), 6 * sizeof(void*)>;

  explicit Lifecycle(Driver& driver) noexcept : driver_(driver) {}
  Lifecycle(const Lifecycle&) = delete;
  Lifecycle& operator=(const Lifecycle&) = delete;

  /// Called on every transition (set it before the first one).
  void set_listener(Listener listener) noexcept;
  /// On a crash, reload the last firmware and start again, at most `max_attempts` times in a row (a
  /// successful run does not reset the count; reset_recoveries() does).
  void set_recovery(bool enabled, std::uint32_t max_attempts = 3) noexcept;
  void reset_recoveries() noexcept;

  State state() const noexcept;
  std::uint32_t recoveries() const noexcept;

  /// offline, stopped or crashed -> loaded. `firmware` is kept (by reference) for recovery: it must stay
  /// valid until the next load() or the Lifecycle's end.
  [[nodiscard]] Status load(std::span<const std::byte> firmware) noexcept;
  /// loaded -> running.
  [[nodiscard]] Status start() noexcept;
  /// running, attached or detached -> stopped.
  [[nodiscard]] Status stop() noexcept;
  /// offline -> attached.
  [[nodiscard]] Status attach() noexcept;
  /// running or attached -> detached.
  [[nodiscard]] Status detach() noexcept;
  /// The remote died (the driver or a watchdog noticed): running, attached or detached -> crashed; then,
  /// when recovery is on, attempts remain and it was not detached (then it was no longer ours to restart),
  /// crashed -> loaded -> running with the last firmware. Returns kOk
  /// when the remote runs again, `cause` when it stays crashed, or the recovery's error.
  [[nodiscard]] Status report_crash(Status cause) noexcept;

 private:
  void move_locked(State to, Status cause) noexcept;

  Driver& driver_;
  mutable metal::Mutex mutex_;
  State state_ = State::kOffline;
  Listener listener_;
  std::span<const std::byte> firmware_{};
  bool recovery_ = false;
  std::uint32_t max_attempts_ = 3;
  std::uint32_t recoveries_ = 0;
};

}  // namespace amp::rproc
