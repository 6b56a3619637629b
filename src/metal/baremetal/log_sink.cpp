// SPDX-License-Identifier: BSD-3-Clause
#include "amp/metal/baremetal/board.hpp"
#include "amp/metal/log.hpp"

namespace amp::metal {

namespace {

/// Forwards each line to the board's log_write hook; drops it when the board has none.
class BoardSink final : public LogSink {
 public:
  void write(LogLevel level, std::string_view message) noexcept override {
    const auto log_write = baremetal::board_hooks().log_write;
    if (log_write != nullptr) log_write(level, message);
  }
};

// A namespace-scope constinit object rather than a function-local static: no guard variable and no
// destructor registration, which a freestanding image may not support.
constinit BoardSink g_board_sink;

}  // namespace

LogSink& default_log_sink() noexcept {
  return g_board_sink;
}

}  // namespace amp::metal
