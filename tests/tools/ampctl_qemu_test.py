#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""ampctl run --driver qemu as a user would, with amp's bare-metal test images (firmware/baremetal):

    ampctl_qemu_test.py CASE --ampctl PATH --firmware VIRT_A15_IMAGE [--firmware-m4 MPS2_AN386_IMAGE]

Each CASE is one CTest (tests/CMakeLists.txt); it prints what it checked and exits 0, says what failed and
exits 1, or exits 77 (CTest's skip) saying why when qemu-system-arm or the image is missing.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

from proc_util import children

ARGS = None
SKIP = 77


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def start(*argv):
    return subprocess.Popen([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc, timeout=60):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        fail("%s did not end within %d s\nstdout:\n%s\nstderr:\n%s" % (proc.args, timeout, out, err))
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def ampctl(*argv):
    return start(ARGS.ampctl, "run", "--driver", "qemu", ARGS.firmware, *argv)


def qemu_of(proc, timeout=10):
    """The QEMU that ampctl runs (its child named qemu-system-*), once there is one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in children(proc.pid):
            try:
                with open("/proc/%d/comm" % child) as f:
                    if f.read().startswith("qemu-system"):
                        return child
            except FileNotFoundError:
                pass
        if proc.poll() is not None:
            fail("ampctl ended (%d) before its QEMU ran: %s" % (proc.returncode, proc.stderr.read()))
        time.sleep(0.02)
    fail("no QEMU under ampctl within %d s" % timeout)


def wait_stderr_line(proc, text, timeout=10):
    """Reads ampctl's stderr until a line holds `text`; returns what was read."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline().decode("utf-8", "replace")
        if not line:
            fail("ampctl's stderr ended before '%s': %s" % (text, "".join(seen)))
        seen.append(line)
        if text in line:
            return "".join(seen)
    fail("no '%s' on ampctl's stderr within %d s: %s" % (text, timeout, "".join(seen)))


ECHO_SUMMARY = "run: 496 messages, 123256 bytes, 0 errors"


def case_missing_qemu():
    # A QEMU that is not there: the package to install, exit 1, nothing started.
    code, out, err = finish(ampctl("--qemu", "/nonexistent/qemu-system-arm", "--ping", "amp-echo"))
    check(code == 1, "exit %d; %s" % (code, err))
    check(err.startswith("ampctl: QEMU: /nonexistent/qemu-system-arm is not an executable file"), "stderr: %s" % err)
    check("apt-get install qemu-system-arm" in err, "stderr: %s" % err)
    print("missing QEMU: " + err.strip())


def case_ping():
    code, out, err = finish(ampctl("--ping", "amp-echo"))
    check(code == 0, "exit %d; stderr: %s" % (code, err))
    check("service 'amp-echo' at address " in out, "stdout: %s" % out)
    check("service 'amp-version' at address " in out, "stdout: %s" % out)
    check(ECHO_SUMMARY in out, "stdout: %s" % out)
    for t in ("offline -> loaded", "loaded -> running", "running -> stopped"):
        check("ampctl run: remote " + t in err, "stderr: %s" % err)
    print("ping: " + out.strip().splitlines()[-1])


def case_ping_json():
    code, out, err = finish(ampctl("--ping", "amp-echo", "--json", "--rounds", "2", "--buffer-size", "256"))
    check(code == 0, "exit %d; stderr: %s" % (code, err))
    events = [json.loads(line) for line in out.splitlines()]
    states = [(e["from"], e["to"]) for e in events if e.get("event") == "state"]
    check(states == [("offline", "loaded"), ("loaded", "running"), ("running", "stopped")], "states: %r" % states)
    services = [e["name"] for e in events if e.get("event") == "service"]
    check("amp-echo" in services and "amp-matrix" in services, "services: %r" % services)
    summary = [e for e in events if e.get("command") == "run"]
    check(len(summary) == 1, "summaries: %r" % summary)
    s = summary[0]
    # 256-byte buffers: payloads of 1..240 bytes, twice.
    check(s["messages"] == 480 and s["errors"] == 0 and s["service"] == "amp-echo", "summary: %r" % s)
    check(s["bytes"] == 2 * sum(range(1, 241)), "summary: %r" % s)
    print("ping --json: %r" % s)


def case_recover():
    # QEMU killed under a running ampctl: a crash, reported with how QEMU ended, then a new QEMU.
    proc = ampctl("--recover", "--duration", "60000")
    first = qemu_of(proc)
    wait_stderr_line(proc, "loaded -> running")
    os.kill(first, signal.SIGKILL)
    seen = wait_stderr_line(proc, "running -> crashed")
    check("running -> crashed: QEMU killed by signal 9 (Killed)" in seen, "stderr: %s" % seen)
    seen = wait_stderr_line(proc, "loaded -> running")
    check("crashed -> loaded" in seen, "stderr: %s" % seen)
    second = qemu_of(proc)
    check(second != first, "the same QEMU after the recovery")
    check(not os.path.exists("/proc/%d" % first) or open("/proc/%d/stat" % first).read().split()[2] == "Z",
          "the killed QEMU is still there")
    proc.send_signal(signal.SIGINT)
    code, out, err = finish(proc)
    check(code == 0, "ampctl interrupted after a recovery: exit %d; %s" % (code, err))
    check("running -> stopped" in err, "stderr: %s" % err)
    check(not os.path.exists("/proc/%d" % second), "QEMU outlived ampctl")
    print("recover: QEMU %d killed, QEMU %d started, stopped on SIGINT" % (first, second))


def case_recover_limit():
    # Without --recover the crash is final: exit 1, and the reason on stderr.
    proc = ampctl("--duration", "60000")
    first = qemu_of(proc)
    wait_stderr_line(proc, "loaded -> running")
    os.kill(first, signal.SIGKILL)
    code, out, err = finish(proc)
    check(code == 1, "a crash without --recover: exit %d; %s" % (code, err))
    check("running -> crashed: QEMU killed by signal 9 (Killed)" in err, "stderr: %s" % err)
    print("no recovery: exit 1 after the crash")


def case_trace():
    code, out, err = finish(ampctl("--ping", "amp-echo", "--trace"))
    check(code == 0, "exit %d; stderr: %s" % (code, err))
    check(ECHO_SUMMARY in out, "stdout: %s" % out)
    at = out.find("firmware trace (end):\n")
    check(at >= 0, "no trace at the end: %s" % out)
    trace = out[at:]
    check("info: amp-firmware test-1 virt-a15: doorbell on" in trace, "trace: %s" % trace)
    check("info: rpmsg: up, vrings at 0x408" in trace, "trace: %s" % trace)
    print("trace: %d lines" % (len(trace.splitlines()) - 1))


def case_fault_trace():
    # A guest fault: QEMU ends with status 1, the trace printed at the crash tells what happened.
    code, out, err = finish(ampctl("--ping", "amp-fault", "--trace", "--json"))
    check(code == 1, "a ping that faults the guest: exit %d; %s" % (code, err))
    events = [json.loads(line) for line in out.splitlines()]
    crash = [e for e in events if e.get("event") == "state" and e["to"] == "crashed"]
    check(len(crash) == 1 and crash[0]["why"].startswith("QEMU exited with status 1"), "events: %r" % events)
    traces = [e for e in events if e.get("event") == "trace"]
    check([t["when"] for t in traces] == ["crash", "end"], "traces: %r" % traces)
    check("fault: undefined instruction at pc 0x401" in traces[0]["text"], "trace: %r" % traces[0])
    print("fault: %s" % crash[0]["why"])


def case_ping_m4():
    # The Cortex-M4 board, with its own image.
    code, out, err = finish(start(ARGS.ampctl, "run", "--driver", "qemu", "--board", "mps2-an386", ARGS.firmware_m4,
                                  "--ping", "amp-echo", "--trace"))
    check(code == 0, "exit %d; stderr: %s" % (code, err))
    check(ECHO_SUMMARY in out, "stdout: %s" % out)
    check("info: amp-firmware test-1 mps2-an386: doorbell on" in out, "stdout: %s" % out)
    print("ping on mps2-an386: " + [l for l in out.splitlines() if l.startswith("run: ")][0])


def case_poll():
    code, out, err = finish(ampctl("--ping", "amp-echo", "--poll"))
    check(code == 0, "exit %d; stderr: %s" % (code, err))
    check(ECHO_SUMMARY in out, "stdout: %s" % out)
    print("poll: " + out.strip().splitlines()[-1])


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("case")
    p.add_argument("--ampctl", required=True)
    p.add_argument("--firmware", default="")
    p.add_argument("--firmware-m4", default="")
    ARGS = p.parse_args()
    if ARGS.case != "missing_qemu" and shutil.which("qemu-system-arm") is None:
        print("SKIP: qemu-system-arm is not installed (Debian: apt-get install qemu-system-arm)")
        sys.exit(SKIP)
    if ARGS.case.endswith("_m4"):
        ARGS.firmware = ARGS.firmware_m4
    if not ARGS.firmware or not os.path.exists(ARGS.firmware):
        print("SKIP: the bare-metal test image was not built (arm-none-eabi-g++ missing: apt-get install "
              "gcc-arm-none-eabi): '%s'" % ARGS.firmware)
        sys.exit(SKIP)
    globals()["case_" + ARGS.case]()


if __name__ == "__main__":
    main()
