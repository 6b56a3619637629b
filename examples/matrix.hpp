// SPDX-License-Identifier: BSD-3-Clause
// The matrix-multiply protocol (matrix_protocol.hpp) with the hosted helpers the example programs use.
#pragma once

#include <span>
#include <string>

#include "matrix_protocol.hpp"

namespace matrix {

/// Reads a request from a received message: "" when it is one, else why it is not. Everything in it comes
/// from the peer: the length and both sizes are checked before any of it is used.
inline std::string read_request(std::span<const std::byte> message, Request& out) {
  const RequestCheck r = check_request(message, out);
  switch (r.problem) {
    case RequestCheck::Problem::kNone:
      return {};
    case RequestCheck::Problem::kLength:
      return "a request is " + std::to_string(sizeof out) + " bytes, not " + std::to_string(r.length);
    case RequestCheck::Problem::kSizesDiffer:
      return "the matrices' sizes differ (" + std::to_string(r.a) + " and " + std::to_string(r.b) + ")";
    case RequestCheck::Problem::kBadSize:
      break;
  }
  return "matrix size " + std::to_string(r.a) + " (it is 1 to 6)";
}

}  // namespace matrix
