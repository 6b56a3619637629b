// SPDX-License-Identifier: BSD-3-Clause
// A static "firmware" for the sysfs + UIO run test: its .resource_table (one rpmsg vdev, vrings at ANY) is
// linked at 0x3ed00200, inside the fake remote's memory, where a kernel would load it. Never run: the test's
// fake kernel loads it, and the remote it stands for is emulated (tests/tools/fake_kernel_remote.cpp).
#include "amp/rproc/firmware_table.hpp"

extern "C" {

AMP_RPROC_RESOURCE_TABLE const amp::rproc::RpmsgFirmwareTable amp_resource_table =
    amp::rproc::rpmsg_firmware_table({.vring_num = 64});

__attribute__((noreturn)) void amp_entry() {
  for (;;) {
    __asm__ __volatile__("" ::: "memory");
  }
}
}
