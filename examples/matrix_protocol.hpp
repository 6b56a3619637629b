// SPDX-License-Identifier: BSD-3-Clause
// The protocol of OpenAMP's matrix-multiply demo (its host `matrix_multiply`, its remote `matrix_multiplyd`),
// byte for byte. A request is one 296-byte message: two matrices {u32 size; u32 elements[6][6]}, 148 bytes
// each, of the same size (1 to 6 rows and columns in use). The reply is one 148-byte matrix: their product,
// with the operands' size and zeros outside it. A message that begins with the 32-bit value 0xEF56A55A (the
// hosts send it alone) asks the remote to stop, as OpenAMP's remote reads it; no request begins so. Numbers
// are in the byte order the two sides share (little-endian, in practice).
//
// Freestanding (no heap, no exceptions, no hosted headers): the bare-metal firmware serves it too. matrix.hpp
// adds the hosted helpers the example programs use.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

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

/// The product of two matrices of a checked size (1 to kMaxSize; check_request makes sure).
inline Matrix multiply(const Matrix& a, const Matrix& b) noexcept {
  Matrix c{};
  c.size = a.size;
  for (std::uint32_t i = 0; i < c.size; ++i)
    for (std::uint32_t j = 0; j < c.size; ++j)
      for (std::uint32_t k = 0; k < c.size; ++k) c.elements[i][j] += a.elements[i][k] * b.elements[k][j];
  return c;
}

inline bool is_shutdown(std::span<const std::byte> message) noexcept {
  std::uint32_t value = 0;
  if (message.size() < sizeof value) return false;
  std::memcpy(&value, message.data(), sizeof value);
  return value == kShutdown;
}

/// What check_request found wrong with a message, and the values involved.
struct RequestCheck {
  enum class Problem : std::uint8_t {
    kNone,         ///< A request.
    kLength,       ///< `length` is not sizeof(Request).
    kSizesDiffer,  ///< The matrices' sizes `a` and `b` differ.
    kBadSize,      ///< The (common) size `a` is 0 or above kMaxSize.
  };
  Problem problem = Problem::kNone;
  std::size_t length = 0;
  std::uint32_t a = 0;
  std::uint32_t b = 0;
  explicit operator bool() const noexcept { return problem == Problem::kNone; }
};

/// Reads a request from a received message into `out`. Everything in it comes from the peer: the length and
/// both sizes are checked before any of it is used; `out` is a valid request only when the result is true.
inline RequestCheck check_request(std::span<const std::byte> message, Request& out) noexcept {
  RequestCheck r;
  r.length = message.size();
  if (message.size() != sizeof out) {
    r.problem = RequestCheck::Problem::kLength;
    return r;
  }
  std::memcpy(&out, message.data(), sizeof out);
  r.a = out.operands[0].size;
  r.b = out.operands[1].size;
  if (r.a != r.b) {
    r.problem = RequestCheck::Problem::kSizesDiffer;
  } else if (r.a == 0 || r.a > kMaxSize) {
    r.problem = RequestCheck::Problem::kBadSize;
  }
  return r;
}

}  // namespace matrix
