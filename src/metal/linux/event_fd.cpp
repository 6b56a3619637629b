// SPDX-License-Identifier: BSD-3-Clause
#include "amp/metal/linux/event_fd.hpp"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <string>

#include "amp/metal/linux/bounded_io.hpp"

namespace amp::metal {

namespace {

/// What /proc says the descriptor is ("anon_inode:[eventfd]"), or an empty string if /proc is unavailable.
std::string proc_fd_target(int fd) {
  const std::string link = "/proc/self/fd/" + std::to_string(fd);
  char buf[128];
  const ssize_t n = ::readlink(link.c_str(), buf, sizeof buf);
  if (n <= 0) return {};
  return std::string(buf, static_cast<std::size_t>(n));
}

/// /proc/self/fdinfo/N (flags, and for an eventfd its count and semaphore flag), or "" without /proc.
std::string proc_fdinfo(int fd) {
  UniqueFd f(::open(("/proc/self/fdinfo/" + std::to_string(fd)).c_str(), O_RDONLY | O_CLOEXEC));
  if (!f) return {};
  char buf[512];
  const ssize_t n = ::read(f.get(), buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

}  // namespace

SysResult<EventFd> EventFd::create(std::uint64_t initial) {
  return make(initial, true);
}

SysResult<EventFd> EventFd::create_private(std::uint64_t initial) {
  return make(initial, false);
}

SysResult<EventFd> EventFd::make(std::uint64_t initial, bool shared) {
  // eventfd(2) takes an unsigned int initial value; larger ones are added with a write.
  const unsigned int first = initial <= UINT_MAX ? static_cast<unsigned int>(initial) : 0U;
  UniqueFd fd(::eventfd(first, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd) return sys_fail("eventfd");
  EventFd e(std::move(fd), shared);
  if (initial > UINT_MAX) {
    if (const Status s = e.signal(initial); !ok(s)) {
      return sys_fail(s, std::string("eventfd: cannot set the initial value: ") + to_string(s));
    }
  }
  return e;
}

SysResult<EventFd> EventFd::adopt(UniqueFd fd) {
  const std::string what = "adopt eventfd " + std::to_string(fd.get());
  if (!fd) return sys_fail(Status::kInvalidArgument, what + ": not a valid descriptor");
  const int fl = ::fcntl(fd.get(), F_GETFL);
  if (fl < 0) return sys_fail(what + ": fcntl(F_GETFL)");
  if ((fl & O_ACCMODE) != O_RDWR) {
    return sys_fail(Status::kInvalidArgument, what + ": not an eventfd (not open for reading and writing)");
  }
  // fcntl cannot tell an eventfd from other files; /proc can. Without /proc, trust the caller.
  const std::string target = proc_fd_target(fd.get());
  if (!target.empty() && target != "anon_inode:[eventfd]") {
    return sys_fail(Status::kInvalidArgument, what + ": not an eventfd (it is " + target + ")");
  }
  // A semaphore eventfd hands out its count one by one: one huge write from the sender would keep a
  // level-triggered loop busy for ever. Refuse it (/proc shows the flag; without /proc, trust the caller).
  if (proc_fdinfo(fd.get()).find("eventfd-semaphore: 1") != std::string::npos) {
    return sys_fail(Status::kInvalidArgument, what + ": a semaphore eventfd (EFD_SEMAPHORE), not a doorbell");
  }
  if ((fl & O_NONBLOCK) == 0 && ::fcntl(fd.get(), F_SETFL, fl | O_NONBLOCK) < 0) {
    return sys_fail(what + ": fcntl(F_SETFL, O_NONBLOCK)");
  }
  const int fdfl = ::fcntl(fd.get(), F_GETFD);
  if (fdfl < 0 || ::fcntl(fd.get(), F_SETFD, fdfl | FD_CLOEXEC) < 0)
    return sys_fail(what + ": fcntl(FD_CLOEXEC)");
  return EventFd(std::move(fd), true);
}

Status EventFd::signal(std::uint64_t n) {
  ssize_t rc;
  if (shared_) {
    rc = bounded_write(fd_.get(), &n, sizeof n, kSharedFdLimit);
  } else {
    do {
      rc = ::write(fd_.get(), &n, sizeof n);  // ours alone: O_NONBLOCK is ours too
    } while (rc < 0 && errno == EINTR);
  }
  if (rc == static_cast<ssize_t>(sizeof n)) return Status::kOk;
  if (rc < 0 && errno == ETIMEDOUT) return Status::kBroken;  // someone made our non-blocking write block
  if (rc < 0) return status_from_errno(errno);
  return Status::kIoError;  // eventfd writes are all-or-nothing; a short write would be a kernel bug.
}

SysResult<std::uint64_t> EventFd::consume() {
  std::uint64_t value = 0;
  const ssize_t rc = read_nowait(fd_.get(), &value, sizeof value, kSharedFdLimit);
  if (rc == static_cast<ssize_t>(sizeof value)) return value;
  if (rc < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return std::uint64_t{0};
  if (rc < 0 && errno == ETIMEDOUT) {
    return sys_fail(Status::kBroken, "read eventfd " + std::to_string(fd_.get()) +
                                         ": blocked (another process sharing it cleared O_NONBLOCK)");
  }
  if (rc < 0) return sys_fail("read eventfd " + std::to_string(fd_.get()));
  return sys_fail(Status::kIoError, "read eventfd " + std::to_string(fd_.get()) + ": short read");
}

}  // namespace amp::metal
