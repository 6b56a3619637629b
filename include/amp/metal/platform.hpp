// SPDX-License-Identifier: BSD-3-Clause
// Which port of metal this build uses. Linux when the compiler targets Linux, bare metal otherwise; define
// AMP_METAL_BAREMETAL=1 to force the bare-metal port on a Linux target (for example to test it on a PC).
#pragma once

#if !defined(AMP_METAL_BAREMETAL) && defined(__linux__)
#define AMP_METAL_LINUX 1
#else
#ifndef AMP_METAL_BAREMETAL
#define AMP_METAL_BAREMETAL 1
#endif
#endif

/// Thread-local storage where the platform has threads; plain static storage on bare metal (one context).
#if AMP_METAL_LINUX
#define AMP_THREAD_LOCAL thread_local
#else
#define AMP_THREAD_LOCAL
#endif

namespace amp::metal {

/// Tells the CPU that this thread is spinning (pause/yield), so a polling loop costs the sibling less.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || (defined(__arm__) && defined(__ARM_ARCH) && __ARM_ARCH >= 7)
  __asm__ __volatile__("yield" ::: "memory");
#else
  __asm__ __volatile__("" ::: "memory");
#endif
}

}  // namespace amp::metal
