// SPDX-License-Identifier: BSD-3-Clause
// What the fuzz targets share: reading typed values from the fuzzer's bytes, a check that stops the run,
// memory reused from input to input, and outcome digests for checking that inputs do not depend on each
// other.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace amp::fuzz {

/// For LLVMFuzzerInitialize: adds `-max_len=N` to libFuzzer's arguments unless the caller gave one. An
/// input of a target that interprets operations costs in proportion to its length; a cap keeps the rate up
/// (more, shorter sequences) without hiding anything a longer sequence of the same operations reaches.
/// Files given one by one are still run whole (libFuzzer truncates only what it loads from a corpus dir).
inline void default_max_len(int* argc, char*** argv, const char* flag) {
  for (int i = 1; i < *argc; ++i) {
    if (std::strncmp((*argv)[i], "-max_len=", 9) == 0) return;
  }
  static char** args = nullptr;  // lives for the run, as libFuzzer keeps using it
  args = static_cast<char**>(std::calloc(static_cast<std::size_t>(*argc) + 2, sizeof(char*)));
  if (args == nullptr) return;
  for (int i = 0; i < *argc; ++i) args[i] = (*argv)[i];
  args[*argc] = const_cast<char*>(flag);
  *argc += 1;
  *argv = args;
}

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

/// Memory that a target reuses from input to input instead of allocating it for each: one heap block of
/// exactly `size` bytes (so ASan still reports an access one byte past its end), put back to the same
/// pristine bytes before each input, so that no input sees what an earlier one left. A fresh allocation of
/// a few hundred KiB per input costs more than the input itself (ASan maps and unmaps it: page faults and
/// zeroing each time).
class Block {
 public:
  explicit Block(std::size_t size)
      : size_(size), mem_(new std::byte[size]()), pristine_(new std::byte[size]()) {}
  std::byte* data() const { return mem_.get(); }
  std::size_t size() const { return size_; }
  /// The current contents become the pristine state.
  void snapshot() { std::memcpy(pristine_.get(), mem_.get(), size_); }
  /// Puts the pristine state back, all of it: a target's peer may write any byte, and the code under test
  /// writes wherever the (scribbled) rings point, so no smaller range is known to suffice.
  void restore() { std::memcpy(mem_.get(), pristine_.get(), size_); }
  /// The pristine bytes, and whether the block still holds them.
  const std::byte* pristine() const { return pristine_.get(); }
  bool unchanged() const { return std::memcmp(mem_.get(), pristine_.get(), size_) == 0; }

 private:
  std::size_t size_;
  std::unique_ptr<std::byte[]> mem_;
  std::unique_ptr<std::byte[]> pristine_;
};

/// FNV-1a, 64 bits: a digest of what an input did.
class Digest {
 public:
  Digest& add(const void* p, std::size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (std::size_t i = 0; i < n; ++i) h_ = (h_ ^ b[i]) * 0x100000001b3ULL;
    return *this;
  }
  template <class T>
  Digest& add(const T& v) {
    return add(&v, sizeof v);
  }
  std::uint64_t value() const { return h_; }

 private:
  std::uint64_t h_ = 0xcbf29ce484222325ULL;
};

/// Whether AMP_FUZZ_TRACE names a file: then each input's outcome is recorded there (see trace()), which
/// costs time; without it a target skips computing one.
inline std::FILE* trace_file() {
  static std::FILE* f = [] {
    const char* path = std::getenv("AMP_FUZZ_TRACE");
    return path != nullptr && *path != '\0' ? std::fopen(path, "a") : nullptr;
  }();
  return f;
}

/// Appends "INPUT_DIGEST OUTCOME_DIGEST" to AMP_FUZZ_TRACE's file. fuzz/check_independence runs a corpus
/// one input per process (each from a fresh start), then all in one process forwards and backwards, and
/// compares: an outcome that depends on earlier inputs shows as a difference.
inline void trace(const std::uint8_t* data, std::size_t size, std::uint64_t outcome) {
  std::FILE* f = trace_file();
  if (f == nullptr) return;
  std::fprintf(f, "%016llx %016llx\n", static_cast<unsigned long long>(Digest().add(data, size).value()),
               static_cast<unsigned long long>(outcome));
  std::fflush(f);
}

}  // namespace amp::fuzz
