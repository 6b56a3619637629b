// SPDX-License-Identifier: BSD-3-Clause
// A client of QEMU's machine protocol (QMP) over its UNIX socket (`-qmp unix:PATH,server=on,wait=off`):
// connect, read the greeting, negotiate capabilities, then run commands one at a time ("cont", "stop",
// "quit", "query-status"). Every wait is bounded; a socket that accepts and never answers is a clear
// kTimeout, not a hang.
//
// QMP is JSON, one message per line. Everything QEMU sends is parsed by a small JSON reader of its own (the
// library uses no JSON library) and treated as untrusted: lines are at most kMaxLine bytes, nesting is
// bounded, and a malformed message is kMalformed. Commands carry an "id", and only the answer with that id
// counts: events (asynchronous messages) and a late answer to a command that timed out are skipped.
//
//   auto qmp = QmpClient::connect("/run/vm/qmp.sock", 5s, qemu_pidfd);
//   auto status = qmp->status(1s);      // "prelaunch", "running", "paused"...
//   qmp->execute("cont", 1s);
//
// Thread-safety: one thread at a time per client (commands are not pipelined).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "amp/metal/linux/sys_error.hpp"
#include "amp/metal/linux/unix_socket.hpp"

namespace amp::rproc {

class QmpClient {
 public:
  /// The longest QMP message accepted, in bytes.
  static constexpr std::size_t kMaxLine = 64 * 1024;

  /// Connects to the QMP socket at `path`, retrying while it does not exist yet or refuses (QEMU is
  /// starting), reads the greeting and negotiates capabilities, all within `timeout`. `alive_fd` (a pidfd of
  /// the QEMU process, or -1) ends the wait early, with kClosed, when it becomes readable: QEMU ended.
  /// kTimeout names the socket when QEMU never answered.
  static metal::SysResult<QmpClient> connect(const std::string& path, std::chrono::milliseconds timeout,
                                             int alive_fd = -1);
  /// The same, ending at `deadline`; messages say that QEMU did not answer within `shown` (the caller's
  /// whole bound, of which this wait is the rest).
  static metal::SysResult<QmpClient> connect(const std::string& path,
                                             std::chrono::steady_clock::time_point deadline,
                                             std::chrono::milliseconds shown, int alive_fd);

  QmpClient(QmpClient&&) noexcept = default;
  QmpClient& operator=(QmpClient&&) noexcept = default;

  /// Runs `command`, with `arguments` (the text of a JSON object, or empty), and waits up to `timeout` for
  /// its answer. Returns the "return" value as JSON text ("{}" for most commands). QEMU's refusal is kIoError
  /// "QMP cont: <class>: <desc>"; no answer in time kTimeout; the socket's end kClosed.
  metal::SysResult<std::string> execute(std::string_view command, std::chrono::milliseconds timeout,
                                        std::string_view arguments = {});

  /// query-status: "prelaunch" (started with -S, never run), "running", "paused", "shutdown"...
  metal::SysResult<std::string> status(std::chrono::milliseconds timeout);

  /// The names of the events received so far (oldest first), and forgets them.
  std::vector<std::string> take_events();

  /// What QEMU's greeting said its version is ("7.2.22"), or "".
  const std::string& version() const noexcept { return version_; }

 private:
  explicit QmpClient(metal::UnixSocket socket) : socket_(std::move(socket)) {}
  /// The next message, up to `deadline`.
  metal::SysResult<std::string> read_line(std::chrono::steady_clock::time_point deadline);

  metal::UnixSocket socket_;
  std::string buffer_;  // received bytes not yet consumed
  std::uint64_t next_id_ = 1;
  std::vector<std::string> events_;
  std::string version_;
};

/// A JSON string literal of `text` (quotes and escapes added), for building QMP arguments.
std::string qmp_quote(std::string_view text);

}  // namespace amp::rproc
