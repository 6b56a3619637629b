// SPDX-License-Identifier: BSD-3-Clause
#include "amp/metal/linux/bounded_io.hpp"

#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "amp/metal/log.hpp"
#include "amp/metal/time.hpp"

namespace amp::metal {

namespace {

// How often the watchdog looks at the calls in progress (the bound is a call's limit rounded up to this;
// amp's limit is 100 ms), and how long it stays awake after the last call. Each tick is a wake-up of a
// thread, so few: idle, and under traffic too, the watchdog costs next to nothing.
constexpr std::uint64_t kTickNs = 50'000'000;
constexpr std::uint64_t kIdleBeforeSleepNs = 200'000'000;

void on_deadline_signal(int) {}  // its only job is to interrupt the blocked system call (no SA_RESTART)

/// Installs amp's handler once per process; false when the program had its own there.
bool handler_installed() noexcept {
  static std::once_flag once;
  static bool installed = false;
  std::call_once(once, [] {
    struct sigaction old {};
    if (::sigaction(bounded_io_signal(), nullptr, &old) != 0) return;
    const bool free_slot =
        (old.sa_flags & SA_SIGINFO) == 0 && (old.sa_handler == SIG_DFL || old.sa_handler == SIG_IGN);
    if (!free_slot) {
      AMP_LOG_WARNING(
          "bounded I/O: signal %d has a handler of the program's; notification writes are not "
          "bounded in time against a peer that interferes",
          bounded_io_signal());
      return;
    }
    struct sigaction sa {};
    sa.sa_handler = on_deadline_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: the interrupted call returns EINTR
    installed = ::sigaction(bounded_io_signal(), &sa, nullptr) == 0;
  });
  return installed;
}

/// A thread that makes bounded calls. `seq` is odd while one is in progress (so the watchdog can tell one
/// call from the next), `deadline` says when it must end, `fired` that the watchdog interrupted it.
struct Caller {
  std::atomic<std::uint64_t> seq{0};
  std::atomic<std::uint64_t> deadline{0};
  std::atomic<bool> fired{false};
  pid_t tid = 0;
};

/// One thread for the whole process that interrupts calls past their deadline: it signals the stuck
/// thread (again at every tick until the call returns, so a signal that came just before the call began to
/// block is followed by another). The callers pay no system call for it: they publish their call in
/// atomics. It sleeps (0% CPU) once no call was made for 200 ms; the first call after that wakes it.
class Watchdog {
 public:
  static Watchdog& get() {
    static Watchdog& w = *new Watchdog;  // never destroyed: callers may run during exit
    return w;
  }

  /// Registers this thread; false if the watchdog cannot run (then calls fall back).
  bool enroll(Caller& c) {
    std::lock_guard lock(mutex_);
    if (!started_) {
      try {
        std::thread t([this] { run(); });
        (void)::pthread_setname_np(t.native_handle(), "amp-io-watch");  // named before anyone looks
        t.detach();
      } catch (...) {
        return false;
      }
      started_ = true;
    }
    callers_.push_back(&c);
    return true;
  }
  void leave(Caller& c) {
    std::lock_guard lock(mutex_);
    callers_.erase(std::remove(callers_.begin(), callers_.end(), &c), callers_.end());
  }
  /// A call begins: wake the watchdog if it sleeps (a system call only after an idle second).
  void begin() noexcept {
    activity_.fetch_add(1, std::memory_order_seq_cst);
    if (asleep_.load(std::memory_order_seq_cst) != 0 && asleep_.exchange(0, std::memory_order_seq_cst) != 0) {
      (void)::syscall(SYS_futex, &asleep_, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
    }
  }
  /// fork(): the registry is not in the middle of a change when the child's copy is made; in the child,
  /// where the watchdog thread did not come along, it starts afresh (threads enroll again).
  void before_fork() { mutex_.lock(); }
  void after_fork_in_parent() { mutex_.unlock(); }
  void after_fork_in_child() {
    callers_.clear();
    started_ = false;
    asleep_.store(0);
    ++generation_;
    mutex_.unlock();
  }
  std::uint64_t generation() const noexcept { return generation_; }  // changes only in a fork's child

 private:
  Watchdog() {
    (void)::pthread_atfork([] { Watchdog::get().before_fork(); },
                           [] { Watchdog::get().after_fork_in_parent(); },
                           [] { Watchdog::get().after_fork_in_child(); });
  }

  void run() {
    std::uint64_t last_activity = activity_.load();
    std::uint64_t quiet_since = monotonic_ns();
    for (;;) {
      sleep_ns(kTickNs);
      const std::uint64_t now = monotonic_ns();
      bool busy = false;
      {
        std::lock_guard lock(mutex_);
        for (Caller* c : callers_) {
          const std::uint64_t s = c->seq.load(std::memory_order_acquire);
          if ((s & 1) == 0) continue;
          busy = true;
          if (now < c->deadline.load(std::memory_order_acquire)) continue;
          c->fired.store(true, std::memory_order_release);
          (void)::syscall(SYS_tgkill, ::getpid(), c->tid, bounded_io_signal());
        }
      }
      const std::uint64_t a = activity_.load(std::memory_order_seq_cst);
      if (a != last_activity || busy) {
        last_activity = a;
        quiet_since = now;
        continue;
      }
      if (now - quiet_since < kIdleBeforeSleepNs) continue;
      // Quiet for a while: sleep until a call begins. Announce it, then look again (a call that began
      // before it could see the announcement would otherwise go unwatched).
      asleep_.store(1, std::memory_order_seq_cst);
      if (activity_.load(std::memory_order_seq_cst) != last_activity) {
        asleep_.store(0, std::memory_order_seq_cst);
        continue;
      }
      while (asleep_.load(std::memory_order_seq_cst) != 0) {
        (void)::syscall(SYS_futex, &asleep_, FUTEX_WAIT_PRIVATE, 1, nullptr, nullptr, 0);
      }
      quiet_since = monotonic_ns();
    }
  }

  std::mutex mutex_;
  std::vector<Caller*> callers_;
  bool started_ = false;
  std::uint64_t generation_ = 0;
  std::atomic<std::uint64_t> activity_{0};
  alignas(4) std::atomic<std::uint32_t> asleep_{0};  // a futex word
  static_assert(sizeof(std::atomic<std::uint32_t>) == 4);
};

/// This thread's registration, made on first use, removed when the thread ends.
class ThreadCaller {
 public:
  ThreadCaller() noexcept { enroll(); }
  ~ThreadCaller() {
    if (ok_) Watchdog::get().leave(caller_);
  }
  ThreadCaller(const ThreadCaller&) = delete;
  ThreadCaller& operator=(const ThreadCaller&) = delete;

  /// Registered, and in the watchdog's current life (after a fork the child registers again).
  bool ok() noexcept {
    if (ok_ && generation_ != Watchdog::get().generation()) enroll();
    return ok_;
  }
  Caller& caller() noexcept { return caller_; }

 private:
  void enroll() noexcept {
    ok_ = false;
    if (!handler_installed()) return;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, bounded_io_signal());
    if (::pthread_sigmask(SIG_UNBLOCK, &set, nullptr) != 0) return;
    caller_.tid = static_cast<pid_t>(::syscall(SYS_gettid));
    generation_ = Watchdog::get().generation();
    ok_ = Watchdog::get().enroll(caller_);
  }

  Caller caller_;
  std::uint64_t generation_ = 0;
  bool ok_ = false;
};

ThreadCaller& thread_caller() noexcept {
  thread_local ThreadCaller caller;
  return caller;
}

template <class Call>
ssize_t bounded(int fd, std::chrono::nanoseconds limit, Call call) noexcept {
  const auto limit_ns = static_cast<std::uint64_t>(limit.count() > 0 ? limit.count() : 0);
  ThreadCaller& tc = thread_caller();
  if (!tc.ok()) {
    // Best effort: a descriptor whose O_NONBLOCK was cleared is interference; we do not wait on it.
    const int fl = ::fcntl(fd, F_GETFL);
    if (fl >= 0 && (fl & O_NONBLOCK) == 0) {
      errno = ETIMEDOUT;
      return -1;
    }
    ssize_t rc;
    do {
      rc = call();
    } while (rc < 0 && errno == EINTR);
    return rc;
  }
  Caller& c = tc.caller();
  c.fired.store(false, std::memory_order_relaxed);
  c.deadline.store(deadline_after(limit_ns), std::memory_order_relaxed);
  c.seq.fetch_add(1, std::memory_order_seq_cst);  // odd: in a call
  Watchdog::get().begin();
  ssize_t rc;
  int err;
  for (;;) {
    rc = call();
    err = errno;
    if (rc >= 0 || err != EINTR) break;
    if (c.fired.load(std::memory_order_acquire)) {
      err = ETIMEDOUT;  // the watchdog: the deadline passed
      break;
    }
    // Another signal: go on.
  }
  c.seq.fetch_add(1, std::memory_order_release);  // even: done
  errno = err;
  return rc;
}

}  // namespace

int bounded_io_signal() noexcept {
  return SIGRTMAX - 2;
}

bool bounded_io_guarded() noexcept {
  return thread_caller().ok();
}

ssize_t bounded_write(int fd, const void* buf, std::size_t n, std::chrono::nanoseconds limit) noexcept {
  return bounded(fd, limit, [&] { return ::write(fd, buf, n); });
}

ssize_t bounded_read(int fd, void* buf, std::size_t n, std::chrono::nanoseconds limit) noexcept {
  return bounded(fd, limit, [&] { return ::read(fd, buf, n); });
}

ssize_t read_nowait(int fd, void* buf, std::size_t n, std::chrono::nanoseconds limit) noexcept {
  iovec iov{buf, n};
  ssize_t rc;
  do {
    rc = ::preadv2(fd, &iov, 1, -1, RWF_NOWAIT);
  } while (rc < 0 && errno == EINTR);
  if (rc >= 0 || errno != EOPNOTSUPP) return rc;
  return bounded_read(fd, buf, n, limit);  // a file (or kernel) that cannot do RWF_NOWAIT reads
}

}  // namespace amp::metal
