# SPDX-License-Identifier: BSD-3-Clause
# Cross-compiles amp's freestanding core and bare-metal port with Debian's gcc-arm-none-eabi.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(CMAKE_CXX_COMPILER arm-none-eabi-g++)
# For the firmware's start-up code (firmware/baremetal enables ASM; the core has none).
set(CMAKE_ASM_COMPILER arm-none-eabi-gcc)
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
set(AMP_ARM_CPU "cortex-r5" CACHE STRING "-mcpu for the arm-none-eabi build")
# More target flags for every compile and link (an instruction set, a float ABI). M-profile cores run Thumb
# code only: -mthumb is added for them whatever this says (GCC 12 picks Thumb for them on its own; the
# flag says so for every compiler, and keeps the multilib choice of the link the same as the compiles').
set(AMP_ARM_FLAGS "" CACHE STRING "More target flags for the arm-none-eabi build (e.g. -mthumb)")
set(amp_arm_target "-mcpu=${AMP_ARM_CPU}")
if(AMP_ARM_FLAGS)
  string(APPEND amp_arm_target " ${AMP_ARM_FLAGS}")
endif()
if(AMP_ARM_CPU MATCHES "^cortex-m" AND NOT " ${AMP_ARM_FLAGS} " MATCHES " -mthumb ")
  string(APPEND amp_arm_target " -mthumb")
endif()
# -Wno-psabi: silences GCC's "parameter passing ... changed in GCC 7.1" notes for spans of 64-bit values;
# they matter only when linking with objects built by GCC < 7.1.
# -fbuiltin after -ffreestanding (which implies -fno-builtin): the environment provides mem* with their
# standard meaning (a freestanding GCC needs them anyway), so a 2-, 4- or 16-byte std::memcpy can be a load,
# not a call. A file that implements mem* itself compiles with -fno-builtin (firmware/baremetal's runtime.cpp).
set(CMAKE_CXX_FLAGS_INIT "${amp_arm_target} -ffreestanding -fbuiltin -fno-exceptions -fno-rtti -Wno-psabi")
set(CMAKE_ASM_FLAGS_INIT "${amp_arm_target}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
