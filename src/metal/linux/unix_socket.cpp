// SPDX-License-Identifier: BSD-3-Clause
#include "amp/metal/linux/unix_socket.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstring>
#include <thread>

namespace amp::metal {

namespace {

using Clock = std::chrono::steady_clock;

struct Address {
  sockaddr_un sa{};
  socklen_t len = 0;

  const sockaddr* get() const noexcept { return reinterpret_cast<const sockaddr*>(&sa); }
};

bool is_abstract(const std::string& path) {
  return !path.empty() && path[0] == '@';
}

/// The sockaddr for `path` ('@name' = abstract namespace). `op` names the operation for error messages.
SysResult<Address> make_address(const std::string& path, const char* op) {
  Address a;
  a.sa.sun_family = AF_UNIX;
  const std::string what = std::string(op) + " " + path;
  if (path.empty() || path == "@") return sys_fail(Status::kInvalidArgument, what + ": empty socket name");
  if (path.find('\0') != std::string::npos) {
    return sys_fail(Status::kInvalidArgument, what + ": the socket name contains a NUL byte");
  }
  // Filesystem paths need room for their terminating NUL; abstract names for their leading one.
  if (path.size() >= sizeof a.sa.sun_path) {
    return sys_fail(Status::kInvalidArgument,
                    what + ": longer than the " + std::to_string(sizeof a.sa.sun_path - 1) +
                        " bytes a UNIX socket address can hold; use a shorter path");
  }
  if (is_abstract(path)) {
    a.sa.sun_path[0] = '\0';
    std::memcpy(a.sa.sun_path + 1, path.data() + 1, path.size() - 1);
    a.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
  } else {
    std::memcpy(a.sa.sun_path, path.data(), path.size());
    a.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  }
  return a;
}

SysResult<int> socket_type(SocketKind kind, bool connection_oriented, const char* op,
                           const std::string& path) {
  switch (kind) {
    case SocketKind::kStream:
      return SOCK_STREAM;
    case SocketKind::kSeqPacket:
      return SOCK_SEQPACKET;
    case SocketKind::kDatagram:
      if (!connection_oriented) return SOCK_DGRAM;
      break;
  }
  return sys_fail(Status::kInvalidArgument, std::string(op) + " " + path + ": needs kStream or kSeqPacket");
}

int connect_retry_eintr(int fd, const Address& a) {
  int rc;
  do {
    rc = ::connect(fd, a.get(), a.len);
  } while (rc < 0 && errno == EINTR);
  return rc;
}

/// Milliseconds left until `deadline`, for poll(2); never negative.
int ms_until(Clock::time_point deadline) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  if (left <= 0) return 0;
  return left > INT_MAX ? INT_MAX : static_cast<int>(left);
}

constexpr std::size_t kFdControlSpace = CMSG_SPACE((kMaxFdsPerMessage + 1) * sizeof(int));

}  // namespace

// ---- UnixSocket ----

SysResult<std::pair<UnixSocket, UnixSocket>> UnixSocket::pair(SocketKind kind) {
  const auto type = socket_type(kind, false, "socketpair", "AF_UNIX");
  if (!type) return Unexpected<SysError>(type.error());
  int sv[2];
  if (::socketpair(AF_UNIX, *type | SOCK_CLOEXEC, 0, sv) < 0) return sys_fail("socketpair AF_UNIX");
  return std::pair<UnixSocket, UnixSocket>(UnixSocket(UniqueFd(sv[0])), UnixSocket(UniqueFd(sv[1])));
}

SysResult<UnixSocket> UnixSocket::connect(const std::string& path, std::chrono::milliseconds retry_for,
                                          SocketKind kind) {
  const auto type = socket_type(kind, true, "connect", path);
  if (!type) return Unexpected<SysError>(type.error());
  const auto addr = make_address(path, "connect");
  if (!addr) return Unexpected<SysError>(addr.error());
  const bool forever = retry_for.count() < 0;
  const auto deadline = Clock::now() + (forever ? std::chrono::milliseconds(0) : retry_for);
  for (;;) {
    UniqueFd fd(::socket(AF_UNIX, *type | SOCK_CLOEXEC, 0));
    if (!fd) return sys_fail("socket AF_UNIX (to connect " + path + ")");
    if (connect_retry_eintr(fd.get(), *addr) == 0) return UnixSocket(std::move(fd));
    const int err = errno;
    // Not there yet, or not listening yet: a client started before its server.
    if ((err == ENOENT || err == ECONNREFUSED) && (forever || Clock::now() < deadline)) {
      std::this_thread::sleep_for(
          forever ? Clock::duration(std::chrono::milliseconds(5))
                  : std::min<Clock::duration>(std::chrono::milliseconds(5), deadline - Clock::now()));
      continue;
    }
    SysError e = errno_error("connect " + path, err);
    if (retry_for.count() > 0) e.message += " (retried for " + std::to_string(retry_for.count()) + " ms)";
    if (err == ENOENT) e.message += "; is the server running?";
    return Unexpected<SysError>(std::move(e));
  }
}

SysResult<std::size_t> UnixSocket::send(std::span<const std::byte> data, std::span<const int> fds) {
  const std::string what = "sendmsg on socket " + std::to_string(fd_.get());
  if (fds.size() > kMaxFdsPerMessage) {
    return sys_fail(Status::kInvalidArgument, what + ": " + std::to_string(fds.size()) +
                                                  " descriptors; at most " +
                                                  std::to_string(kMaxFdsPerMessage));
  }
  if (!fds.empty() && data.empty()) {
    return sys_fail(Status::kInvalidArgument,
                    what + ": descriptors need at least one data byte to travel with");
  }
  iovec iov{};
  iov.iov_base = const_cast<std::byte*>(data.data());  // sendmsg does not write through it
  iov.iov_len = data.size();
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) unsigned char control[kFdControlSpace];
  if (!fds.empty()) {
    const std::size_t bytes = fds.size() * sizeof(int);
    std::memset(control, 0, sizeof control);
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(bytes);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(bytes);
    std::memcpy(CMSG_DATA(c), fds.data(), bytes);
  }
  ssize_t n;
  do {
    n = ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return sys_fail(what);
  return static_cast<std::size_t>(n);
}

SysResult<std::size_t> UnixSocket::receive(std::span<std::byte> out, std::vector<UniqueFd>* fds,
                                           std::size_t max_fds) {
  return receive_with(out, fds, max_fds, 0);
}

SysResult<std::size_t> UnixSocket::receive_with(std::span<std::byte> out, std::vector<UniqueFd>* fds,
                                                std::size_t max_fds, int flags) {
  const std::string what = "recvmsg on socket " + std::to_string(fd_.get());
  if (fds == nullptr) max_fds = 0;
  max_fds = std::min(max_fds, kMaxFdsPerMessage);
  iovec iov{};
  iov.iov_base = out.data();
  iov.iov_len = out.size();
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  // Room for one descriptor more than allowed, so that "too many" is seen (and each one closed) rather than
  // left to truncation. Even without `fds` unexpected descriptors are received, to be closed.
  alignas(cmsghdr) unsigned char control[kFdControlSpace];
  msg.msg_control = control;
  msg.msg_controllen = CMSG_SPACE((max_fds + 1) * sizeof(int));
  ssize_t n;
  do {
    n = ::recvmsg(fd_.get(), &msg, MSG_CMSG_CLOEXEC | flags);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return sys_fail(what);

  std::vector<UniqueFd> received;  // closes them all on every error path below
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const unsigned char* p = CMSG_DATA(c);
    for (std::size_t i = 0; i < count; ++i) {
      int fd = -1;
      std::memcpy(&fd, p + i * sizeof(int), sizeof fd);
      received.emplace_back(fd);
    }
  }
  if ((msg.msg_flags & MSG_CTRUNC) != 0) {
    return sys_fail(Status::kMalformed, what + ": the peer sent more descriptors than the " +
                                            std::to_string(max_fds) + " expected (control data truncated); " +
                                            "all of them were closed");
  }
  if (received.size() > max_fds) {
    return sys_fail(Status::kMalformed, what + ": the peer sent " + std::to_string(received.size()) +
                                            " descriptors, " + std::to_string(max_fds) +
                                            " expected; all of them were closed");
  }
  if ((msg.msg_flags & MSG_TRUNC) != 0) {
    return sys_fail(Status::kOutOfRange, what + ": message longer than the " + std::to_string(out.size()) +
                                             "-byte buffer; the rest of it was lost");
  }
  if (fds != nullptr) {
    for (UniqueFd& f : received) fds->push_back(std::move(f));
  }
  return static_cast<std::size_t>(n);
}

Status UnixSocket::send_all(std::span<const std::byte> data, std::span<const int> fds) {
  bool first = true;
  while (first || !data.empty()) {
    if (data.empty()) return fds.empty() ? Status::kOk : Status::kInvalidArgument;
    auto n = send(data, first ? fds : std::span<const int>());
    if (!n) return n.error().status;
    first = false;
    data = data.subspan(*n);
  }
  return Status::kOk;
}

Status UnixSocket::receive_exact(std::span<std::byte> out, std::vector<UniqueFd>* fds, std::size_t max_fds,
                                 std::chrono::milliseconds timeout) {
  const bool bounded = timeout.count() >= 0;
  const Clock::time_point deadline = Clock::now() + (bounded ? timeout : std::chrono::milliseconds(0));
  const std::size_t had = fds != nullptr ? fds->size() : 0;
  while (!out.empty()) {
    if (bounded) {
      // One deadline for the whole message, however the peer chops it up.
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return Status::kTimeout;
      pollfd p{fd_.get(), POLLIN, 0};
      const int r = ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left.count(), INT_MAX)));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return status_from_errno(errno);
      if (r == 0) return Status::kTimeout;
    }
    // The descriptor budget is for the whole message: a peer cannot pile them up chunk by chunk.
    const std::size_t allowed = fds != nullptr ? max_fds - std::min(max_fds, fds->size() - had) : 0;
    auto n = receive_with(out, fds, allowed, bounded ? MSG_DONTWAIT : 0);
    if (!n) {
      if (bounded && n.error().status == Status::kWouldBlock) continue;
      return n.error().status;
    }
    if (*n == 0) return Status::kClosed;
    out = out.subspan(*n);
  }
  return Status::kOk;
}

Status UnixSocket::set_nonblocking(bool nonblocking) {
  const int fl = ::fcntl(fd_.get(), F_GETFL);
  if (fl < 0) return status_from_errno(errno);
  const int want = nonblocking ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
  if (want != fl && ::fcntl(fd_.get(), F_SETFL, want) < 0) return status_from_errno(errno);
  return Status::kOk;
}

// ---- UnixListener ----

SysResult<UnixListener> UnixListener::listen(const std::string& path, int backlog, SocketKind kind) {
  const auto type = socket_type(kind, true, "listen", path);
  if (!type) return Unexpected<SysError>(type.error());
  const auto addr = make_address(path, "listen");
  if (!addr) return Unexpected<SysError>(addr.error());
  // Non-blocking, so accept() after poll() cannot hang when another thread took the client.
  UniqueFd fd(::socket(AF_UNIX, *type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return sys_fail("socket AF_UNIX (to listen on " + path + ")");

  if (::bind(fd.get(), addr->get(), addr->len) < 0) {
    const int err = errno;
    if (err != EADDRINUSE || is_abstract(path)) {
      SysError e = errno_error("bind " + path, err);
      if (err == EADDRINUSE) {
        e.status = Status::kAlreadyExists;
        e.message += " (another process listens on this name)";
      }
      return Unexpected<SysError>(std::move(e));
    }
    // The file exists. Reuse it only if it is a socket nobody listens on (left by a crashed server).
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode)) {
      return sys_fail(
          Status::kAlreadyExists,
          "bind " + path + ": the path exists and is not a socket; remove it or choose another path");
    }
    UniqueFd probe(::socket(AF_UNIX, *type | SOCK_CLOEXEC, 0));
    if (!probe) return sys_fail("socket AF_UNIX (to probe " + path + ")");
    const int probe_rc = connect_retry_eintr(probe.get(), *addr);
    const int probe_err = errno;
    // ENOENT: the file vanished meanwhile; anything but a refusal means something answers there.
    if (probe_rc == 0 || (probe_err != ECONNREFUSED && probe_err != ENOENT)) {
      return sys_fail(Status::kAlreadyExists, "bind " + path + ": another process is listening on it");
    }
    if (probe_err == ECONNREFUSED && ::unlink(path.c_str()) < 0 && errno != ENOENT) {
      return sys_fail("unlink stale socket " + path);
    }
    if (::bind(fd.get(), addr->get(), addr->len) < 0)
      return sys_fail("bind " + path + " (after removing a stale socket)");
  }
  // Listen at once: between bind() and listen() a client that sees the file is refused, and another
  // server's probe above would take the fresh file for a stale one and remove it.
  if (::listen(fd.get(), backlog) < 0) {
    const int err = errno;
    if (!is_abstract(path)) (void)::unlink(path.c_str());
    return Unexpected<SysError>(errno_error("listen " + path, err));
  }
  dev_t dev = 0;
  ino_t ino = 0;
  if (!is_abstract(path)) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
      dev = st.st_dev;
      ino = st.st_ino;
    }
  }
  return UnixListener(std::move(fd), path, dev, ino);  // from here on, the destructor removes the file
}

UnixListener::UnixListener(UnixListener&& o) noexcept
    : fd_(std::move(o.fd_)), path_(std::move(o.path_)), dev_(o.dev_), ino_(o.ino_) {
  o.path_.clear();
}

UnixListener& UnixListener::operator=(UnixListener&& o) noexcept {
  if (this != &o) {
    unlink_own_file();
    fd_ = std::move(o.fd_);
    path_ = std::move(o.path_);
    o.path_.clear();
    dev_ = o.dev_;
    ino_ = o.ino_;
  }
  return *this;
}

UnixListener::~UnixListener() {
  unlink_own_file();
}

void UnixListener::unlink_own_file() noexcept {
  if (path_.empty() || is_abstract(path_)) return;
  // Only our own file: a newer server may have replaced it after removing ours as stale.
  struct stat st {};
  if (::lstat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_) ::unlink(path_.c_str());
  path_.clear();
}

SysResult<UnixSocket> UnixListener::accept(std::chrono::milliseconds timeout) {
  const bool forever = timeout.count() < 0;
  const auto deadline = Clock::now() + (forever ? std::chrono::milliseconds(0) : timeout);
  for (;;) {
    pollfd p{};
    p.fd = fd_.get();
    p.events = POLLIN;
    const int rc = ::poll(&p, 1, forever ? -1 : ms_until(deadline));
    if (rc < 0) {
      if (errno == EINTR) continue;
      return sys_fail("poll " + path_);
    }
    if (rc == 0) {
      return sys_fail(Status::kTimeout, "accept " + path_ + ": no client connected within " +
                                            std::to_string(timeout.count()) + " ms");
    }
    const int c = ::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (c >= 0) return UnixSocket(UniqueFd(c));
    // Another thread took the client, or it gave up: wait again.
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED) continue;
    return sys_fail("accept " + path_);
  }
}

}  // namespace amp::metal
