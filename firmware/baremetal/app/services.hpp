// SPDX-License-Identifier: BSD-3-Clause
// The firmware's rpmsg services, announced through the name service:
//   "amp-echo"                    sends every message back to its source
//   "amp-matrix"                  matrix multiply, amp's service name (examples/matrix_protocol.hpp)
//   "rpmsg-openamp-demo-channel"  the same protocol under OpenAMP's demo name
//   "amp-version"                 answers any message with "amp-firmware <version> <board>" (no newline)
//   "amp-fault"                   test images only: any message executes an undefined instruction, except
//                                 "data abort", which reads AMP_BOARD_FAULT_ADDRESS (a data abort)
// A message that is not a request (a matrix of the wrong length or size) is refused with a log line and no
// reply. Replies wait at most kReplyTimeoutNs for a buffer; one that could not be sent is logged and dropped.
//
// Thread-safety: the firmware's main loop only (a LiteDevice is single-threaded).
#pragma once

#include <cstdint>

#include "amp/metal/result.hpp"
#include "amp/rpmsg/lite_device.hpp"

namespace amp::firmware {

inline constexpr std::uint64_t kReplyTimeoutNs = 100'000'000;

/// "amp-firmware <version> <board>", the version and board this image was built with.
const char* version_line() noexcept;

class Services {
 public:
  /// Creates (and announces) every endpoint on a started device. On failure the endpoints made so far stay:
  /// stop() removes them.
  [[nodiscard]] Status start(rpmsg::LiteDevice& device) noexcept;
  /// Destroys the endpoints (announcing it while the device runs). Idempotent.
  void stop() noexcept;

 private:
  rpmsg::LiteEndpoint echo_;
  rpmsg::LiteEndpoint matrix_;
  rpmsg::LiteEndpoint openamp_matrix_;
  rpmsg::LiteEndpoint version_;
  // Always here, used only by test images: this header is compiled into code shared by every image, so the
  // class must have one layout for all of them.
  rpmsg::LiteEndpoint fault_;
};

}  // namespace amp::firmware
