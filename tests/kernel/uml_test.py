#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""amp's tests against the real Linux kernel, run as User-mode Linux (tests/kernel/README.md).

Cases:
  build   builds the UML kernel (tests/kernel/build-uml; cached) into --work/linux
  boots   boots it with the initramfs of tests/kernel/make-initramfs and checks that the kernel's rpmsg stack
          is there (virtio_rpmsg_bus, rpmsg_ns, rpmsg_char, rpmsg_ctrl registered), that /init ran and the
          machine powered off with status 0, and that the kernel printed no BUG:, WARNING:, Oops or panic

Exit 0 passed, 1 failed, 77 skipped (CTest's SKIP_RETURN_CODE: linux-source-6.1 or busybox-static missing).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SPLATS = re.compile(r"BUG:|WARNING:|Oops|Kernel panic|general protection fault|Segfault with no mm")


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def skip(msg):
    print("SKIP: " + msg, file=sys.stderr)
    sys.exit(77)


def kernel_path(work):
    return os.path.join(work, "linux")


def case_build(args):
    if not os.path.exists("/usr/src/linux-source-6.1.tar.xz"):
        skip("linux-source-6.1 is not installed (scripts/install-deps installs it)")
    r = subprocess.run([os.path.join(HERE, "build-uml"), "--out", kernel_path(args.work)])
    if r.returncode != 0:
        fail("build-uml exited %d" % r.returncode)


def boot(args, initramfs, extra=()):
    """Boots the kernel; returns (exit status, console output)."""
    # UML keeps the guest's memory in a file under TMPDIR: a tmpfs that allows exec.
    tmp = "/dev/shm" if os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()
    env = dict(os.environ, TMPDIR=tmp)
    argv = [kernel_path(args.work), "mem=128M", "initrd=" + initramfs, "con=null", "con0=null,fd:1",
            "panic=-1"] + list(extra)
    try:
        r = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=args.timeout)
    except subprocess.TimeoutExpired as e:
        fail("the guest did not power off within %d s:\n%s" % (args.timeout, (e.stdout or b"").decode(errors="replace")))
    return r.returncode, r.stdout.decode(errors="replace")


def check_clean(out):
    splat = SPLATS.search(out)
    if splat:
        fail("the kernel complained (%r):\n%s" % (splat.group(0), out))


def case_boots(args):
    if not os.path.exists(kernel_path(args.work)):
        skip("no kernel at %s (the build case did not run or was skipped)" % kernel_path(args.work))
    if not shutil.which("busybox") and not os.path.exists("/bin/busybox"):
        skip("busybox-static is not installed (scripts/install-deps installs it)")
    initramfs = os.path.join(args.work, "boots.cpio")
    r = subprocess.run([os.path.join(HERE, "make-initramfs"), initramfs])
    if r.returncode != 0:
        fail("make-initramfs exited %d" % r.returncode)
    code, out = boot(args, initramfs)
    check_clean(out)
    if "amp-guest: up" not in out:
        fail("/init did not run:\n" + out)
    for d in ("/sys/bus/virtio/drivers/virtio_rpmsg_bus", "/sys/bus/rpmsg/drivers/rpmsg_chrdev",
              "/sys/bus/rpmsg/drivers/rpmsg_ns", "/sys/bus/rpmsg/drivers/rpmsg_ctrl"):
        if "amp-guest: has " + d not in out:
            fail("the kernel lacks %s:\n%s" % (d, out))
    if "amp-guest: result 0" not in out:
        fail("/init did not finish:\n" + out)
    if code != 0:
        fail("UML exited with %d after power-off:\n%s" % (code, out))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("case", choices=["build", "boots"])
    p.add_argument("--work", required=True)
    p.add_argument("--timeout", type=int, default=120)
    args = p.parse_args()
    os.makedirs(args.work, exist_ok=True)
    {"build": case_build, "boots": case_boots}[args.case](args)
    print("kernel %s: passed" % args.case)


if __name__ == "__main__":
    main()
