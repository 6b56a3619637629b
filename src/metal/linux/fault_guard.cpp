// SPDX-License-Identifier: BSD-3-Clause
#include "amp/metal/linux/fault_guard.hpp"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <mutex>

namespace amp::metal {

namespace {

/// One watched mapping. The handler reads these without a lock: begin is published last and cleared
/// first, and a handler announces itself in `handlers` before it reads begin, so reset() (which clears
/// begin, then waits for `handlers` to drop to 0) never returns while a handler may still act on the slot.
struct Slot {
  std::atomic<std::uintptr_t> begin{0};
  std::atomic<std::uintptr_t> end{0};
  std::atomic<int> notify_fd{-1};
  std::atomic<bool> tripped{false};
  std::atomic<bool> taken{false};
  std::atomic<int> handlers{0};
};

/// Counts a handler in a slot for a scope.
class InHandler {
 public:
  explicit InHandler(Slot& s) noexcept : s_(s) { s_.handlers.fetch_add(1, std::memory_order_seq_cst); }
  ~InHandler() { s_.handlers.fetch_sub(1, std::memory_order_release); }
  InHandler(const InHandler&) = delete;
  InHandler& operator=(const InHandler&) = delete;

 private:
  Slot& s_;
};

Slot g_slots[kMaxFaultGuards];
struct sigaction g_previous {};

void on_sigbus(int sig, siginfo_t* info, void* context) {
  const auto addr = reinterpret_cast<std::uintptr_t>(info->si_addr);
  for (Slot& s : g_slots) {
    if (s.begin.load(std::memory_order_relaxed) == 0) continue;  // cheap skip of free slots
    InHandler in(s);
    const std::uintptr_t begin = s.begin.load(std::memory_order_seq_cst);
    const std::uintptr_t end = s.end.load(std::memory_order_acquire);
    if (begin == 0 || addr < begin || addr >= end) continue;
    // Zero-filled memory in place of the whole mapping: the faulting access is retried and succeeds.
    void* p = ::mmap(reinterpret_cast<void*>(begin), end - begin, PROT_READ | PROT_WRITE,
                     MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) break;  // cannot save it: let the fault take its course
    s.tripped.store(true, std::memory_order_release);
    const int fd = s.notify_fd.load(std::memory_order_acquire);
    if (fd >= 0) {
      const std::uint64_t one = 1;
      (void)!::write(fd, &one, sizeof one);
    }
    return;
  }
  // Not ours: whoever was there before, or the default action (returning re-runs the faulting access).
  if ((g_previous.sa_flags & SA_SIGINFO) != 0 && g_previous.sa_sigaction != nullptr) {
    g_previous.sa_sigaction(sig, info, context);
  } else if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN) {
    g_previous.sa_handler(sig);
  } else {
    ::signal(SIGBUS, SIG_DFL);
  }
}

Status install_handler() {
  static std::once_flag once;
  static Status result = Status::kInternal;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_sigaction = on_sigbus;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    result = ::sigaction(SIGBUS, &sa, &g_previous) == 0 ? Status::kOk : status_from_errno(errno);
  });
  return result;
}

}  // namespace

SysResult<FaultGuard> FaultGuard::watch(void* base, std::size_t length) {
  if (base == nullptr || length == 0) return sys_fail(Status::kInvalidArgument, "fault guard: empty mapping");
  if (const Status s = install_handler(); !ok(s))
    return sys_fail(s, std::string("fault guard: installing the SIGBUS handler: ") + to_string(s));
  for (int i = 0; i < static_cast<int>(kMaxFaultGuards); ++i) {
    Slot& s = g_slots[i];
    bool expected = false;
    if (!s.taken.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) continue;
    s.tripped.store(false, std::memory_order_relaxed);
    s.notify_fd.store(-1, std::memory_order_relaxed);
    s.end.store(reinterpret_cast<std::uintptr_t>(base) + length, std::memory_order_relaxed);
    s.begin.store(reinterpret_cast<std::uintptr_t>(base), std::memory_order_release);
    return FaultGuard(i);
  }
  return sys_fail(Status::kNoMemory, "fault guard: " + std::to_string(kMaxFaultGuards) +
                                         " shared-memory mappings are watched already");
}

FaultGuard& FaultGuard::operator=(FaultGuard&& o) noexcept {
  if (this != &o) {
    reset();
    slot_ = o.slot_;
    o.slot_ = -1;
  }
  return *this;
}

void FaultGuard::reset() noexcept {
  if (slot_ < 0) return;
  Slot& s = g_slots[slot_];
  s.begin.store(0, std::memory_order_seq_cst);
  // A handler that saw the old begin may still be mapping zeros over the range: it must be done before the
  // caller unmaps it (and the range can be someone else's).
  while (s.handlers.load(std::memory_order_seq_cst) != 0) {
  }
  s.notify_fd.store(-1, std::memory_order_relaxed);
  s.taken.store(false, std::memory_order_release);
  slot_ = -1;
}

bool FaultGuard::tripped() const noexcept {
  return slot_ >= 0 && g_slots[slot_].tripped.load(std::memory_order_acquire);
}

void FaultGuard::notify_on_trip(int event_fd) noexcept {
  if (slot_ >= 0) g_slots[slot_].notify_fd.store(event_fd, std::memory_order_release);
}

}  // namespace amp::metal
