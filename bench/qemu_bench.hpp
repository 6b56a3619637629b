// SPDX-License-Identifier: BSD-3-Clause
// amp-bench --qemu: amp's rpmsg against a bare-metal firmware under QEMU (the qemu rproc driver), next to
// the raw round trips of the same emulated board, measured in the same run (qemu_bench.cpp).
#pragma once

namespace amp::bench {

/// Runs the QEMU benchmark with amp-bench's command line (which holds --qemu); returns the exit status.
int qemu_main(int argc, char** argv);

}  // namespace amp::bench
