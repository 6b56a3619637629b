// SPDX-License-Identifier: BSD-3-Clause
// UNIX-domain sockets with file-descriptor passing (SCM_RIGHTS): how Linux processes of an amp system hand
// each other eventfds (doorbells) and memfds / dma-bufs (shared memory).
//
// Addresses: a path starting with '@' names the Linux abstract namespace ("@amp.ctl" -> "\0amp.ctl", no file,
// gone with its last socket); any other string is a filesystem path.
//
// Thread-safety: an object must not be moved, released or destroyed while another thread uses it. Otherwise
// the kernel serialises concurrent calls: one thread may send while another receives; several threads
// sending on a stream socket may interleave their bytes (and send_all() chunks), so give a stream one sender
// at a time. UnixListener::accept() may be called from several threads at once.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "amp/metal/linux/sys_error.hpp"
#include "amp/metal/linux/unique_fd.hpp"

namespace amp::metal {

enum class SocketKind : std::uint8_t {
  kStream,     ///< SOCK_STREAM: a byte stream.
  kSeqPacket,  ///< SOCK_SEQPACKET: connected, reliable, message boundaries kept.
  kDatagram,   ///< SOCK_DGRAM: messages; only for pair().
};

/// The most descriptors one message may carry (the kernel's SCM_MAX_FD).
inline constexpr std::size_t kMaxFdsPerMessage = 253;
/// What receive() accepts per message unless told otherwise.
inline constexpr std::size_t kDefaultMaxReceivedFds = 16;

class UnixSocket {
 public:
  /// Takes ownership of a connected (or paired) UNIX socket.
  explicit UnixSocket(UniqueFd fd) noexcept : fd_(std::move(fd)) {}

  /// Two connected sockets (socketpair(2)), blocking and close-on-exec.
  static SysResult<std::pair<UnixSocket, UnixSocket>> pair(SocketKind kind = SocketKind::kStream);

  /// Connects to a listener at `path`. While the listener does not exist yet (ENOENT) or refuses
  /// (ECONNREFUSED: not listening yet, or a stale socket file) it retries every few milliseconds for up to
  /// `retry_for` (-1ms: as long as it takes), so a client may start before its server. `kind` is kStream or
  /// kSeqPacket and must match the listener's.
  static SysResult<UnixSocket> connect(const std::string& path,
                                       std::chrono::milliseconds retry_for = std::chrono::milliseconds(0),
                                       SocketKind kind = SocketKind::kStream);

  UnixSocket(UnixSocket&&) noexcept = default;
  UnixSocket& operator=(UnixSocket&&) noexcept = default;
  UnixSocket(const UnixSocket&) = delete;
  UnixSocket& operator=(const UnixSocket&) = delete;
  ~UnixSocket() = default;

  /// One sendmsg(2) of `data`, with `fds` attached (SCM_RIGHTS; at most kMaxFdsPerMessage, and only with at
  /// least one data byte). Returns the bytes sent, which on a stream socket may be fewer than data.size();
  /// the descriptors then went with the bytes that were sent. The caller keeps its own `fds` open. Never
  /// raises SIGPIPE: a closed peer gives kClosed. kWouldBlock when non-blocking and full.
  SysResult<std::size_t> send(std::span<const std::byte> data, std::span<const int> fds = {});

  /// One recvmsg(2) into `out`. Returns the bytes received, 0 at end of stream. Descriptors that came with
  /// them are appended to `*fds` (close-on-exec). Errors that close every descriptor received by this call:
  /// kMalformed when more than `max_fds` arrived (or when fds is null and any arrived) or the kernel had to
  /// drop some (MSG_CTRUNC); kOutOfRange when a datagram/seqpacket message did not fit in `out` (the rest
  /// of it is lost).
  SysResult<std::size_t> receive(std::span<std::byte> out, std::vector<UniqueFd>* fds = nullptr,
                                 std::size_t max_fds = kDefaultMaxReceivedFds);

  /// send() until all of `data` is sent; `fds` go with the first chunk. For stream sockets.
  Status send_all(std::span<const std::byte> data, std::span<const int> fds = {});
  /// receive() until `out` is full; descriptors are appended as they arrive, at most `max_fds` for the whole
  /// of `out` (kMalformed, closing those of the chunk that went over, as soon as more arrive). kClosed if the
  /// stream ends first; kTimeout when `timeout` (for all of it; -1ms: none) passes first. For stream sockets.
  Status receive_exact(std::span<std::byte> out, std::vector<UniqueFd>* fds = nullptr,
                       std::size_t max_fds = kDefaultMaxReceivedFds,
                       std::chrono::milliseconds timeout = std::chrono::milliseconds(-1));

  Status set_nonblocking(bool nonblocking);

  int fd() const noexcept { return fd_.get(); }
  bool valid() const noexcept { return fd_.valid(); }
  /// Gives up the descriptor; the socket becomes empty.
  UniqueFd release() noexcept { return UniqueFd(fd_.release()); }

 private:
  SysResult<std::size_t> receive_with(std::span<std::byte> out, std::vector<UniqueFd>* fds,
                                      std::size_t max_fds, int flags);

  UniqueFd fd_;
};

class UnixListener {
 public:
  /// A listening socket (stream or seqpacket) at `path` ('@' = abstract name). For a filesystem path a
  /// leftover socket file is removed first, but only if nothing listens on it any more (a probe connect is
  /// refused) and it is a socket; a live listener, or a file of another kind, gives kAlreadyExists.
  static SysResult<UnixListener> listen(const std::string& path, int backlog = 4,
                                        SocketKind kind = SocketKind::kStream);

  UnixListener(UnixListener&& o) noexcept;
  UnixListener& operator=(UnixListener&& o) noexcept;
  UnixListener(const UnixListener&) = delete;
  UnixListener& operator=(const UnixListener&) = delete;
  /// Closes the socket and removes the socket file it created (if that file is still the same one).
  ~UnixListener();

  /// Waits up to `timeout` (-1ms = forever) for a client; kTimeout when none came. The accepted socket is
  /// blocking and close-on-exec.
  SysResult<UnixSocket> accept(std::chrono::milliseconds timeout = std::chrono::milliseconds(-1));

  int fd() const noexcept { return fd_.get(); }
  const std::string& path() const noexcept { return path_; }

 private:
  UnixListener(UniqueFd fd, std::string path, dev_t dev, ino_t ino) noexcept
      : fd_(std::move(fd)), path_(std::move(path)), dev_(dev), ino_(ino) {}
  void unlink_own_file() noexcept;

  UniqueFd fd_;
  std::string path_;
  dev_t dev_ = 0;  // identity of the socket file we created (filesystem paths only)
  ino_t ino_ = 0;
};

}  // namespace amp::metal
