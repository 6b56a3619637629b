// SPDX-License-Identifier: BSD-3-Clause
#include "signals.hpp"

#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <thread>
#include <vector>

namespace ampctl {

// What the detached signal thread touches lives as long as the process: a signal may come while main()
// returns and static destructors run.
Wake& g_wake = *new Wake;

namespace {

std::atomic<bool> g_interrupted{false};
std::atomic<bool> g_interruptible{false};
std::atomic<int> g_signal{0};
int g_interrupt_fd = -1;

std::mutex& g_hooks_mutex = *new std::mutex;
std::vector<const std::function<void()>*>& g_hooks = *new std::vector<const std::function<void()>*>;

}  // namespace

void Wake::set() {
  {
    std::lock_guard lock(m_);
    set_ = true;
  }
  cv_.notify_all();
}

void Wake::wait() {
  std::unique_lock lock(m_);
  cv_.wait(lock, [this] { return set_; });
}

bool Wake::wait_for(std::chrono::milliseconds timeout) {
  std::unique_lock lock(m_);
  return cv_.wait_for(lock, timeout, [this] { return set_; });
}

void watch_signals() {
  g_interrupt_fd = ::eventfd(0, EFD_CLOEXEC);
  // A signal ignored at start stays ignored (a shell's background job ignores SIGINT; so does demo's
  // emulated remote): blocked, Linux would queue it for sigwait instead.
  sigset_t set;
  sigemptyset(&set);
  for (const int sig : {SIGINT, SIGTERM}) {
    struct sigaction old {};
    if (sigaction(sig, nullptr, &old) == 0 && old.sa_handler != SIG_IGN) sigaddset(&set, sig);
  }
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set] {
    for (;;) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) continue;
      // A second signal, or one while setting up (a bounded step that cannot be woken): leave now.
      if (g_interrupted.load() || !g_interruptible.load()) std::_Exit(128 + sig);
      g_signal = sig;
      g_interrupted = true;
      const std::uint64_t one = 1;
      if (g_interrupt_fd >= 0) (void)!::write(g_interrupt_fd, &one, sizeof one);
      g_wake.set();
      std::lock_guard lock(g_hooks_mutex);
      for (const auto* hook : g_hooks) (*hook)();
    }
  }).detach();
}

void set_interruptible(bool on) {
  g_interruptible = on;
}

bool interrupted() {
  return g_interrupted.load();
}

int interrupted_exit_code() {
  return 128 + (g_signal.load() != 0 ? g_signal.load() : SIGINT);
}

int interrupt_fd() {
  return g_interrupt_fd;
}

InterruptHook::InterruptHook(std::function<void()> fn) : fn_(std::move(fn)) {
  std::lock_guard lock(g_hooks_mutex);
  g_hooks.push_back(&fn_);
}

InterruptHook::~InterruptHook() {
  std::lock_guard lock(g_hooks_mutex);
  g_hooks.erase(std::remove(g_hooks.begin(), g_hooks.end(), &fn_), g_hooks.end());
}

}  // namespace ampctl
