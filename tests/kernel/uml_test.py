#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""amp's tests against the real Linux kernel, run as User-mode Linux (tests/kernel/README.md).

Cases:
  build   builds the UML kernel (tests/kernel/build-uml; cached) into --work/linux
  boots   boots it with the initramfs of tests/kernel/make-initramfs and checks that the kernel's rpmsg stack
          is there (virtio_rpmsg_bus, rpmsg_ns, rpmsg_char, rpmsg_ctrl registered), that /init ran and the
          machine powered off with status 0, and that the kernel printed no BUG:, WARNING:, Oops or panic
  rpmsg   `ampctl echo --vhost-user` (event idx offered) and two boots against that one process: the first
          runs the guest's echo, wire, ept and dev steps (tests/kernel/guest/rpmsg_guest.cpp) with the
          kernel hexdumping every rpmsg message (dyndbg), whose bytes for amp's announcement and for one echo
          are compared with what amp must have written; the second (the front end gone and back: a fresh
          device) runs echo again and 100,000 round trips. amp's JSON summary must show both sessions, the
          address it learned from the kernel's first message, the kernel's announcement of the channel the
          guest created and its withdrawal, and every message echoed.
  rpmsg_no_event_idx   the same without event idx: echo, ept and 100,000 round trips.
  firmware  `ampctl run amp-echo-firmware --vhost-user SOCKET`: a native firmware's service (announced as
          rpmsg-raw) relayed to the guest: its echo step and 10,000 round trips go guest -> ampctl -> firmware
          and back; SIGINT then stops the run cleanly.
  faults  amp as the source of faults, the kernel as their oracle (tests/kernel/fault_remote.cpp): a remote
          that sends name-service messages of 39 and 41 bytes, a message to no one, an announcement of
          RPMSG_ADDR_ANY and the withdrawal of a channel never announced; the kernel must say what it says
          of each (amp's own checks of the same faults are the Malformed cases of tests/rpmsg/device_test.cpp),
          print no splat, and still pass the guest's echo step.
Every boot fails the case on a kernel splat, or on one of the kernel's rpmsg complaints (a malformed
message from amp, a message to no one, a ring error).

Exit 0 passed, 1 failed, 77 skipped (CTest's SKIP_RETURN_CODE: linux-source-6.1 or busybox-static missing).
"""

import argparse
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SPLATS = re.compile(r"BUG:|WARNING:|Oops|Kernel panic|general protection fault|Segfault with no mm")
# What virtio_rpmsg_bus, rpmsg_ns and virtio_ring say of a peer that writes something wrong: amp must never
# make the kernel say any of it.
COMPLAINTS = re.compile(r"malformed ns msg|inbound msg too big|msg received with no recipient|"
                        r"virtio_ring|id \d+ out of range|is not a head|failed to send|"
                        r"rpmsg_ns .*failed|probe of virtio0 failed")
ROUNDS = 100000  # more than 65536 + 256: both rings' 16-bit indexes wrap


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


def check_clean(out, complaints=True):
    splat = SPLATS.search(out)
    if splat:
        fail("the kernel complained (%r):\n%s" % (splat.group(0), out))
    complaint = COMPLAINTS.search(out) if complaints else None
    if complaint:
        fail("the kernel's rpmsg complained of what amp wrote (%r):\n%s" % (complaint.group(0), out))


def need_kernel(args):
    if not os.path.exists(kernel_path(args.work)):
        skip("no kernel at %s (the build case did not run or was skipped)" % kernel_path(args.work))
    if not shutil.which("busybox") and not os.path.exists("/bin/busybox"):
        skip("busybox-static is not installed (scripts/install-deps installs it)")


def guest_initramfs(args, name):
    initramfs = os.path.join(args.work, name + ".cpio")
    r = subprocess.run([os.path.join(HERE, "make-initramfs"), initramfs, args.guest])
    if r.returncode != 0:
        fail("make-initramfs exited %d" % r.returncode)
    return initramfs


class Echo:
    """`ampctl echo --vhost-user` serving `connections` front ends, its JSON summary read at the end (or
    another vhost-user remote given as `argv`, which takes the socket as its last argument)."""

    def __init__(self, args, name, connections, extra=(), argv=None):
        self.socket = os.path.join(args.work, name + ".sock")
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        self.err = open(os.path.join(args.work, name + ".ampctl.log"), "w+")
        argv = list(argv) + [self.socket] if argv else \
            [args.ampctl, "echo", "--vhost-user", self.socket, "--connections", str(connections), "--json"]
        # A remote that must listen before the guest boots says where: the socket appears.
        self.proc = subprocess.Popen(argv + list(extra), stdout=subprocess.PIPE, stderr=self.err)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.socket):  # UML must find it listening
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                fail("ampctl echo --vhost-user did not listen on %s:\n%s" % (self.socket, self.log()))
            time.sleep(0.01)

    def log(self):
        self.err.seek(0)
        return self.err.read()

    def summary(self):
        try:
            out, _ = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.stop()
            fail("ampctl echo did not end after its front ends left:\n" + self.log())
        if self.proc.returncode != 0:
            fail("ampctl echo exited %d:\n%s" % (self.proc.returncode, self.log()))
        try:
            return json.loads(out)
        except ValueError:
            fail("ampctl echo printed no JSON summary: %r\n%s" % (out, self.log()))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def boot_guest(args, echo, initramfs, steps, extra=(), complaints=True):
    code, out = boot(args, initramfs, ["virtio_uml.device=%s:7" % echo.socket, "amp_test=rpmsg_guest",
                                       "amp_args=" + ",".join(steps)] + list(extra))
    if "creating channel rpmsg-raw" not in out:
        echo.stop()
        fail("the kernel made no channel of amp's announcement:\n%s\n--- ampctl:\n%s" % (out, echo.log()))
    check_clean(out, complaints)
    if "amp-guest: ok all steps" not in out or "amp-guest: result 0" not in out:
        echo.stop()
        fail("the guest's steps %s failed:\n%s\n--- ampctl:\n%s" % (",".join(steps), out, echo.log()))
    if code != 0:
        fail("UML exited with %d after power-off:\n%s" % (code, out))
    return out


def hexdumped_messages(out, direction):
    """The messages the kernel hexdumped (dyndbg) in `direction` (RX: from amp; TX: to amp), as bytes."""
    messages, current = [], None
    for line in out.splitlines():
        m = re.search(r"rpmsg_virtio %s: ((?:[0-9a-f]{2} )+)" % direction, line)
        if not m:
            if current is not None:
                messages.append(bytes(current))
                current = None
            continue
        if current is None:
            current = bytearray()
        current += bytes(int(b, 16) for b in m.group(1).split())
    if current is not None:
        messages.append(bytes(current))
    return messages


def header(src, dst, length):
    return struct.pack("<IIIHH", src, dst, 0, length, 0)


def check_wire(out, amp_address):
    """amp's announcement and its echo of the guest's "amp-wire-check", byte for byte as the kernel saw them."""
    rx = hexdumped_messages(out, "RX")
    ns = header(amp_address, 0x35, 40) + b"rpmsg-raw".ljust(32, b"\0") + struct.pack("<II", amp_address, 0)
    if ns not in rx:
        fail("the kernel received no announcement with amp's bytes %s; it hexdumped:\n%s"
             % (ns.hex(" "), "\n".join(m.hex(" ") for m in rx)))
    tx = [m for m in hexdumped_messages(out, "TX") if m.endswith(b"amp-wire-check")]
    if len(tx) != 1:
        fail("the guest's amp-wire-check was not hexdumped once on its way out:\n" + out)
    guest_address = struct.unpack_from("<I", tx[0])[0]
    echo = header(amp_address, guest_address, 14) + b"amp-wire-check"
    if echo not in rx:
        fail("the kernel received no echo with amp's bytes %s; it hexdumped:\n%s"
             % (echo.hex(" "), "\n".join(m.hex(" ") for m in rx)))


def events(summary, session, kind):
    return [e for e in summary["events"] if e.get("session") == session and e["event"] == kind]


def check_summary(summary, sessions, event_idx, log):
    def expect(cond, what):
        if not cond:
            fail("%s; ampctl's summary: %s\n%s" % (what, json.dumps(summary, indent=1), log))
    expect(summary["sessions"] == sessions and summary["connections"] == sessions,
           "%d sessions and connections expected" % sessions)
    expect(summary["failures"] == 0 and summary["last_error"] == "", "a connection ended by an error")
    expect(summary["received"] == summary["echoed"] > ROUNDS, "not every message echoed")
    expect(summary["rx_malformed"] == 0 and summary["rx_unroutable"] == 0, "amp dropped messages")
    for n in range(1, sessions + 1):
        ready = events(summary, n, "ready")
        expect(len(ready) == 1 and ready[0]["event_idx"] == event_idx,
               "session %d: ready once, event idx %s" % (n, event_idx))
        # The kernel never answers amp's announcement: amp takes the address from its first message.
        bound = events(summary, n, "bound")
        expect(len(bound) == 1 and bound[0]["address"] == ready[0]["address"] and bound[0]["peer"] >= 1024,
               "session %d: amp's endpoint bound to the kernel's first dynamic address" % n)
        expect(len(events(summary, n, "ended")) == 1, "session %d ended once" % n)


def case_boots(args):
    need_kernel(args)
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


def case_rpmsg(args):
    need_kernel(args)
    initramfs = guest_initramfs(args, "rpmsg")
    echo = Echo(args, "rpmsg", 2)
    try:
        first = boot_guest(args, echo, initramfs, ["echo", "wire", "ept", "dev"],
                           ['dyndbg="file drivers/rpmsg/* +p"', "loglevel=8"])
        # The same amp process, a new front end: the guest rebooted.
        boot_guest(args, echo, initramfs, ["echo", "rounds:%d" % ROUNDS])
        summary = echo.summary()
    finally:
        echo.stop()
    log = echo.log()
    check_summary(summary, 2, True, log)
    check_wire(first, events(summary, 1, "ready")[0]["address"])
    # RPMSG_CREATE_DEV_IOCTL and RPMSG_RELEASE_DEV_IOCTL reached amp as the kernel's announcements.
    announced = events(summary, 1, "announced")
    withdrawn = events(summary, 1, "withdrawn")
    if not (len(announced) == 1 and announced[0]["name"] == "rpmsg-raw" and announced[0]["peer"] == 0x2000
            and announced[0]["status"] == "ok"):
        fail("amp did not see the guest's channel at 0x2000 announced: %s\n%s" % (summary["events"], log))
    if not (len(withdrawn) == 1 and withdrawn[0]["peer"] == 0x2000):
        fail("amp did not see the guest's channel at 0x2000 withdrawn: %s\n%s" % (summary["events"], log))


def case_rpmsg_no_event_idx(args):
    need_kernel(args)
    initramfs = guest_initramfs(args, "rpmsg_no_event_idx")
    echo = Echo(args, "rpmsg_no_event_idx", 1, ["--no-event-idx"])
    try:
        boot_guest(args, echo, initramfs, ["echo", "ept", "rounds:%d" % ROUNDS])
        summary = echo.summary()
    finally:
        echo.stop()
    check_summary(summary, 1, False, echo.log())


def case_firmware(args):
    need_kernel(args)
    initramfs = guest_initramfs(args, "firmware")
    run = Echo(args, "firmware", 1, argv=[args.ampctl, "run", args.firmware, "--json", "--vhost-user"],
               extra=["--", "--service", "rpmsg-raw"])
    try:
        boot_guest(args, run, initramfs, ["echo", "rounds:10000"])
        run.proc.send_signal(signal.SIGINT)
        out, _ = run.proc.communicate(timeout=30)
    finally:
        run.stop()
    if run.proc.returncode != 0:
        fail("ampctl run --vhost-user exited %d after SIGINT:\n%s" % (run.proc.returncode, run.log()))
    lines = [json.loads(l) for l in out.decode().splitlines() if l.strip()]
    kinds = [(e.get("event"), e.get("name"), e.get("to")) for e in lines]
    for want in (("service", "rpmsg-raw", None), ("vm-service", "rpmsg-raw", None), ("state", None, "running"),
                 ("state", None, "stopped")):
        if want not in kinds:
            fail("ampctl run's events lack %r: %s\n%s" % (want, kinds, run.log()))


def case_faults(args):
    need_kernel(args)
    initramfs = guest_initramfs(args, "faults")
    remote = Echo(args, "faults", 1, argv=[args.fault_remote])
    try:
        out = boot_guest(args, remote, initramfs, ["echo"], complaints=False)
        said, _ = remote.proc.communicate(timeout=30)
    finally:
        remote.stop()
    said = said.decode(errors="replace")
    for fault in ("echo", "ns39", "ns41", "nobody", "any", "unknown"):
        if "%s ok" % fault not in said:
            fail("fault_remote did not send %s:\n%s\n%s" % (fault, said, remote.log()))
    for complaint in ("malformed ns msg (39)", "malformed ns msg (41)", "msg received with no recipient",
                      "creating channel amp-fault-any addr 0xffffffff",
                      "destroying channel amp-never-announced addr 0x9999"):
        if complaint not in out:
            fail("the kernel did not say %r of amp's fault:\n%s" % (complaint, out))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("case", choices=["build", "boots", "rpmsg", "rpmsg_no_event_idx", "firmware", "faults"])
    p.add_argument("--work", required=True)
    p.add_argument("--ampctl")
    p.add_argument("--guest", help="the static guest test program (tests/kernel/guest/rpmsg_guest.cpp)")
    p.add_argument("--fault-remote", help="tests/kernel/fault_remote.cpp")
    p.add_argument("--firmware", help="the native echo firmware (firmware/native/echo.cpp)")
    p.add_argument("--timeout", type=int, default=120)
    args = p.parse_args()
    os.makedirs(args.work, exist_ok=True)
    {"build": case_build, "boots": case_boots, "rpmsg": case_rpmsg,
     "rpmsg_no_event_idx": case_rpmsg_no_event_idx, "firmware": case_firmware,
     "faults": case_faults}[args.case](args)
    print("kernel %s: passed" % args.case)


if __name__ == "__main__":
    main()
