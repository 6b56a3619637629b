// SPDX-License-Identifier: BSD-3-Clause
// What the fuzz targets share: reading typed values from the fuzzer's bytes, and a check that stops the run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace amp::fuzz {

/// Takes values from the input front to back; past its end, missing bytes read as zero.
class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  template <class T>
  T take() {
    T v{};
    const std::size_t n = size_ - pos_ < sizeof v ? size_ - pos_ : sizeof v;
    std::memcpy(&v, data_ + pos_, n);
    pos_ += n;
    return v;
  }
  bool done() const { return pos_ >= size_; }
  std::size_t left() const { return size_ - pos_; }
  const std::uint8_t* here() const { return data_ + pos_; }
  void skip(std::size_t n) { pos_ += n < left() ? n : left(); }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
};

/// A broken invariant: crash, so that the fuzzer keeps the input.
inline void check(bool cond) {
  if (!cond) __builtin_trap();
}

}  // namespace amp::fuzz
