// SPDX-License-Identifier: BSD-3-Clause
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "amp/metal/log.hpp"

namespace amp::metal {

namespace {

/// Writes "amp: <level>: <message>\n" to standard error with a single write(2), so that lines from several
/// threads or processes do not interleave.
class StderrSink final : public LogSink {
 public:
  void write(LogLevel level, std::string_view message) noexcept override {
    char line[kMaxLogMessage + 32];
    const std::size_t n =
        format(line, "amp: %s: %.*s\n", to_string(level), static_cast<int>(message.size()), message.data());
    const std::size_t len = n < sizeof line ? n : sizeof line - 1;
    ssize_t rc;
    do {
      rc = ::write(STDERR_FILENO, line, len);
    } while (rc < 0 && errno == EINTR);
  }
};

}  // namespace

LogSink& default_log_sink() noexcept {
  static StderrSink sink;
  return sink;
}

}  // namespace amp::metal
