# SPDX-License-Identifier: BSD-3-Clause
# Cross-compiles amp's freestanding core and bare-metal port with Debian's gcc-arm-none-eabi.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(CMAKE_CXX_COMPILER arm-none-eabi-g++)
# For the firmware's start-up code (firmware/baremetal enables ASM; the core has none).
set(CMAKE_ASM_COMPILER arm-none-eabi-gcc)
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
set(AMP_ARM_CPU "cortex-r5" CACHE STRING "-mcpu for the arm-none-eabi build")
# -Wno-psabi: silences GCC's "parameter passing ... changed in GCC 7.1" notes for spans of 64-bit values;
# they matter only when linking with objects built by GCC < 7.1.
set(CMAKE_CXX_FLAGS_INIT "-mcpu=${AMP_ARM_CPU} -ffreestanding -fno-exceptions -fno-rtti -Wno-psabi")
set(CMAKE_ASM_FLAGS_INIT "-mcpu=${AMP_ARM_CPU}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
