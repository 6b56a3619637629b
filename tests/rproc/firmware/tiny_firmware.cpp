// SPDX-License-Identifier: BSD-3-Clause
// A minimal static ET_EXEC "firmware" for tests: an entry point that spins and a .resource_table section
// (a table with no entries). Built with the host compiler, without the C library, by a custom command.
extern "C" {

__attribute__((used, section(".resource_table"), aligned(8))) const unsigned int amp_resource_table[4] = {
    1,  // ver
    0,  // num
    0,
    0,  // reserved
};

__attribute__((noreturn)) void amp_entry() {
  for (;;) {
    __asm__ __volatile__("" ::: "memory");
  }
}
}
