// SPDX-License-Identifier: BSD-3-Clause
#include "amp/metal/linux/bounded_io.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <mutex>

#include "amp/metal/log.hpp"
#include "amp/metal/time.hpp"

namespace amp::metal {

namespace {

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

/// This thread's timer, created on first use, deleted when the thread ends.
class ThreadTimer {
 public:
  ThreadTimer() noexcept {
    if (!handler_installed()) return;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, bounded_io_signal());
    if (::pthread_sigmask(SIG_UNBLOCK, &set, nullptr) != 0) return;
    sigevent ev{};
    ev.sigev_notify = SIGEV_THREAD_ID;
    ev.sigev_signo = bounded_io_signal();
    ev._sigev_un._tid = static_cast<pid_t>(::syscall(SYS_gettid));
    ok_ = ::timer_create(CLOCK_MONOTONIC, &ev, &timer_) == 0;
  }
  ~ThreadTimer() {
    if (ok_) ::timer_delete(timer_);
  }
  ThreadTimer(const ThreadTimer&) = delete;
  ThreadTimer& operator=(const ThreadTimer&) = delete;

  bool ok() const noexcept { return ok_; }
  /// First expiry after `ns`, then every millisecond until disarmed: a signal that came just before the
  /// call started to block (handled in user space, interrupting nothing) is followed by another.
  void arm(std::uint64_t ns) noexcept {
    itimerspec its{};
    its.it_value.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    its.it_value.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) its.it_value.tv_nsec = 1;
    its.it_interval.tv_nsec = 1'000'000;
    (void)::timer_settime(timer_, 0, &its, nullptr);
  }
  void disarm() noexcept {
    const itimerspec zero{};
    (void)::timer_settime(timer_, 0, &zero, nullptr);
  }

 private:
  timer_t timer_{};
  bool ok_ = false;
};

ThreadTimer& thread_timer() noexcept {
  thread_local ThreadTimer timer;
  return timer;
}

template <class Call>
ssize_t bounded(int fd, std::chrono::nanoseconds limit, Call call) noexcept {
  const auto limit_ns = static_cast<std::uint64_t>(limit.count() > 0 ? limit.count() : 0);
  ThreadTimer& timer = thread_timer();
  if (!timer.ok()) {
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
  const std::uint64_t deadline = deadline_after(limit_ns);
  for (bool first = true;; first = false) {
    const std::uint64_t now = monotonic_ns();
    if (!first && now >= deadline) {  // the call is always tried once, even with a limit of 0
      errno = ETIMEDOUT;
      return -1;
    }
    timer.arm(deadline > now ? deadline - now : 1);
    const ssize_t rc = call();
    const int err = errno;
    timer.disarm();
    if (rc >= 0 || err != EINTR) {
      errno = err;
      return rc;
    }
    // EINTR: our timer (then the deadline has passed and the loop ends), or another signal (go on).
  }
}

}  // namespace

int bounded_io_signal() noexcept {
  return SIGRTMAX - 2;
}

bool bounded_io_guarded() noexcept {
  return thread_timer().ok();
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
