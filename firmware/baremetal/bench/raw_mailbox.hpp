// SPDX-License-Identifier: BSD-3-Clause
// The mailbox of the raw baseline image (raw.cpp), shared by the image and the host that measures it
// (amp-bench --qemu ... --raw): four 32-bit words at the start of the board's shared-memory carveout
// (AMP_BOARD_SHM_DA; virt-a15: 0x40800000), each on its own 64-byte line so that the host's store to one does
// not move the line it spins on.
//
//   mode   host -> image, written before the CPU starts: kModeDoorbell or kModePoll (read once, at boot)
//   ready  image -> host: kReadyDoorbell or kReadyPoll once the image answers (anything else: not yet)
//   ping   host -> image (poll mode): a new value is a ping
//   pong   image -> host (poll mode): the last ping's value, written back
//
// Doorbell mode: every wake-up of the image on which the doorbell rang is answered with one doorbell byte
// (with one byte in flight, one byte per byte). Poll mode: no doorbell; the image spins on ping.
//
// Thread-safety: each word has one writer; readers load it with acquire, writers store with release.
#pragma once

#include <cstddef>
#include <cstdint>

namespace amp::firmware::raw {

inline constexpr std::size_t kModeAt = 0x00;
inline constexpr std::size_t kReadyAt = 0x40;
inline constexpr std::size_t kPingAt = 0x80;
inline constexpr std::size_t kPongAt = 0xC0;
inline constexpr std::size_t kMailboxSize = 0x100;

inline constexpr std::uint32_t kModeDoorbell = 0;
inline constexpr std::uint32_t kModePoll = 1;
inline constexpr std::uint32_t kReadyDoorbell = 0x52415744;  // "RAWD"
inline constexpr std::uint32_t kReadyPoll = 0x52415750;      // "RAWP"

}  // namespace amp::firmware::raw
