// SPDX-License-Identifier: BSD-3-Clause
// The protocol of OpenAMP's matrix-multiply demo (its host `matrix_multiply`, its remote `matrix_multiplyd`),
// byte for byte. A request is one 296-byte message: two matrices {u32 size; u32 elements[6][6]}, 148 bytes
// each, of the same size (1 to 6 rows and columns in use). The reply is one 148-byte matrix: their product,
// with the operands' size and zeros outside it. A message that begins with the 32-bit value 0xEF56A55A (the
// hosts send it alone) asks the remote to stop, as OpenAMP's remote reads it; no request begins so. Numbers
// are in the byte order the two sides share (little-endian, in practice).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>

namespace matrix {

inline constexpr std::uint32_t kMaxSize = 6;

struct Matrix {
  std::uint32_t size;
  std::uint32_t elements[kMaxSize][kMaxSize];  // [row][column]
};

struct Request {
  Matrix operands[2];
};

// The layout on the wire, pinned.
static_assert(sizeof(Matrix) == 148 && offsetof(Matrix, size) == 0 && offsetof(Matrix, elements) == 4);
static_assert(sizeof(Request) == 296 && offsetof(Request, operands) == 0, "the second matrix at byte 148");

inline constexpr std::uint32_t kShutdown = 0xEF56A55A;

/// The service: OpenAMP's demo channel under the openamp-linux preset, amp's own name otherwise.
inline constexpr const char* kOpenAmpService = "rpmsg-openamp-demo-channel";
inline constexpr const char* kAmpService = "amp-matrix";

inline Matrix multiply(const Matrix& a, const Matrix& b) {
  Matrix c{};
  c.size = a.size;
  for (std::uint32_t i = 0; i < c.size; ++i)
    for (std::uint32_t j = 0; j < c.size; ++j)
      for (std::uint32_t k = 0; k < c.size; ++k) c.elements[i][j] += a.elements[i][k] * b.elements[k][j];
  return c;
}

inline bool is_shutdown(std::span<const std::byte> message) {
  std::uint32_t value = 0;
  if (message.size() < sizeof value) return false;
  std::memcpy(&value, message.data(), sizeof value);
  return value == kShutdown;
}

/// Reads a request from a received message: "" when it is one, else why it is not. Everything in it comes
/// from the peer: the length and both sizes are checked before any of it is used.
inline std::string read_request(std::span<const std::byte> message, Request& out) {
  if (message.size() != sizeof out) {
    return "a request is " + std::to_string(sizeof out) + " bytes, not " + std::to_string(message.size());
  }
  std::memcpy(&out, message.data(), sizeof out);
  const std::uint32_t n = out.operands[0].size;
  const std::uint32_t m = out.operands[1].size;
  if (n != m) return "the matrices' sizes differ (" + std::to_string(n) + " and " + std::to_string(m) + ")";
  if (n == 0 || n > kMaxSize) return "matrix size " + std::to_string(n) + " (it is 1 to 6)";
  return {};
}

}  // namespace matrix
