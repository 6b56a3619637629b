// SPDX-License-Identifier: BSD-3-Clause
#include "services.hpp"

#include <span>
#include <string_view>

#include "amp/metal/log.hpp"
#include "matrix_protocol.hpp"

// Set per image by the build (this file is compiled once per image; the rest of the firmware is shared).
#if !defined(AMP_FIRMWARE_VERSION) || !defined(AMP_FIRMWARE_FAULT_SERVICE)
#error "AMP_FIRMWARE_VERSION (a string) and AMP_FIRMWARE_FAULT_SERVICE (0 or 1) are set by the build"
#endif

namespace amp::firmware {

namespace {

using metal::LogLevel;
using Endpoint = rpmsg::LiteEndpoint;
using Message = rpmsg::LiteMessage;

constexpr char kVersionLine[] = "amp-firmware " AMP_FIRMWARE_VERSION " " AMP_BOARD_NAME;

void reply(Endpoint& self, std::uint32_t to, std::span<const std::byte> payload, const char* service) {
  if (const Status s = self.send_to(to, payload, kReplyTimeoutNs); !ok(s)) {
    AMP_LOG(LogLevel::kWarning, "%s: no reply to %u: %s", service, static_cast<unsigned>(to), log_name(s));
  }
}

void echo(Endpoint& self, const Message& m) {
  reply(self, m.src, m.payload, "amp-echo");
}

void multiply(Endpoint& self, const Message& m, const char* service) {
  if (matrix::is_shutdown(m.payload)) {
    // OpenAMP's remote ends there; this firmware serves other clients, and goes on.
    AMP_LOG(LogLevel::kInfo, "%s: shutdown request from %u (the firmware keeps serving)", service,
            static_cast<unsigned>(m.src));
    return;
  }
  matrix::Request req;
  const matrix::RequestCheck check = matrix::check_request(m.payload, req);
  using Problem = matrix::RequestCheck::Problem;
  switch (check.problem) {
    case Problem::kNone: {
      const matrix::Matrix product = matrix::multiply(req.operands[0], req.operands[1]);
      reply(self, m.src, std::as_bytes(std::span(&product, 1)), service);
      return;
    }
    case Problem::kLength:
      AMP_LOG(LogLevel::kWarning, "%s: refused a message from %u: a request is %zu bytes, not %zu", service,
              static_cast<unsigned>(m.src), sizeof(matrix::Request), check.length);
      return;
    case Problem::kSizesDiffer:
      AMP_LOG(LogLevel::kWarning, "%s: refused a message from %u: the matrices' sizes differ (%u and %u)",
              service, static_cast<unsigned>(m.src), static_cast<unsigned>(check.a),
              static_cast<unsigned>(check.b));
      return;
    case Problem::kBadSize:
      AMP_LOG(LogLevel::kWarning, "%s: refused a message from %u: matrix size %u (it is 1 to 6)", service,
              static_cast<unsigned>(m.src), static_cast<unsigned>(check.a));
      return;
  }
}

}  // namespace

const char* version_line() noexcept {
  return kVersionLine;
}

Status Services::start(rpmsg::LiteDevice& device) noexcept {
  using rpmsg::kAddrAny;
  AMP_RETURN_IF_ERROR(device.create_endpoint(echo_, "amp-echo", kAddrAny, kAddrAny, echo));
  AMP_RETURN_IF_ERROR(device.create_endpoint(
      matrix_, matrix::kAmpService, kAddrAny, kAddrAny,
      [](Endpoint& self, const Message& m) { multiply(self, m, matrix::kAmpService); }));
  AMP_RETURN_IF_ERROR(device.create_endpoint(
      openamp_matrix_, matrix::kOpenAmpService, kAddrAny, kAddrAny,
      [](Endpoint& self, const Message& m) { multiply(self, m, matrix::kOpenAmpService); }));
  AMP_RETURN_IF_ERROR(device.create_endpoint(
      version_, "amp-version", kAddrAny, kAddrAny, [](Endpoint& self, const Message& m) {
        // The text without its NUL, as a line of text travels in rpmsg.
        reply(self, m.src, std::as_bytes(std::span(kVersionLine, sizeof kVersionLine - 1)), "amp-version");
      }));
#if AMP_FIRMWARE_FAULT_SERVICE
  AMP_RETURN_IF_ERROR(
      device.create_endpoint(fault_, "amp-fault", kAddrAny, kAddrAny, [](Endpoint&, const Message& m) {
        constexpr std::string_view kDataAbort = "data abort";
        constexpr std::string_view kHang = "hang";
        const std::string_view text(reinterpret_cast<const char*>(m.payload.data()), m.payload.size());
        if (text == kHang) {
          // A firmware stuck in a handler: it stops answering the host's watchdog, with the CPU running.
          AMP_LOG(LogLevel::kWarning, "amp-fault: a message from %u: looping forever",
                  static_cast<unsigned>(m.src));
          for (;;) __asm__ __volatile__("" ::: "memory");
        }
        if (text == kDataAbort) {
          AMP_LOG(LogLevel::kWarning, "amp-fault: a message from %u: reading 0x%lx",
                  static_cast<unsigned>(m.src), static_cast<unsigned long>(AMP_BOARD_FAULT_ADDRESS));
          (void)*reinterpret_cast<volatile std::uint32_t*>(std::uintptr_t{AMP_BOARD_FAULT_ADDRESS});
        }
        AMP_LOG(LogLevel::kWarning, "amp-fault: a message from %u: executing an undefined instruction",
                static_cast<unsigned>(m.src));
        __asm__ __volatile__("udf #0" ::: "memory");
      }));
#endif
  return Status::kOk;
}

void Services::stop() noexcept {
  echo_.destroy();
  matrix_.destroy();
  openamp_matrix_.destroy();
  version_.destroy();
  fault_.destroy();
}

}  // namespace amp::firmware
