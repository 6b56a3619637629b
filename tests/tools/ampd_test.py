#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""ampd and the ampctl commands over it, as a user runs them.

    ampd_test.py CASE --ampd PATH --ampctl PATH --firmware PATH --work DIR [--example PATH]

CASE: check (ampd --check on a good and a bad file), services_and_open (ampctl services, ampctl open with
lines in and out), signal (SIGTERM stops ampd, its clients see their endpoints end), rpmsg_char_simple
(examples/rpmsg_char_simple.cpp, an rpmsg_char program ported to ampd, twice at once), ping (ampctl ping
--via ampd: every size to the MTU echoed, then one beyond it refused; two at once; bad uses refused). Prints what it checked
and exits 0, or says what failed.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time

ARGS = None


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def write_config(name, text):
    os.makedirs(ARGS.work, exist_ok=True)
    path = os.path.join(ARGS.work, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def socket_name():
    return "@ampd-test-%d" % os.getpid()


def config_text(sock):
    return '[ampd]\nsocket = "%s"\n\n[[remote]]\nname = "echo"\nfirmware = "%s"\n' % (sock, ARGS.firmware)


def run(argv, stdin=None, timeout=30):
    p = subprocess.run([str(a) for a in argv], input=stdin, capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def start_ampd(sock):
    cfg = write_config("ampd.toml", config_text(sock))
    p = subprocess.Popen([ARGS.ampd, "--config", cfg], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Up once `services` answers with the echo service announced.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if p.poll() is not None:
            fail("ampd ended at start: %s" % p.stderr.read().decode(errors="replace"))
        rc, out, _ = run([ARGS.ampctl, "services", "--socket", sock, "--json"])
        if rc == 0 and "amp-echo" in out:
            return p
        time.sleep(0.1)
    p.kill()
    fail("ampd did not serve amp-echo within 15 s")


def stop_ampd(p):
    p.send_signal(signal.SIGTERM)
    try:
        _, err = p.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        fail("ampd did not stop on SIGTERM within 15 s")
    return p.returncode, err.decode(errors="replace")


def case_check():
    good = write_config("good.toml", config_text("@nowhere"))
    rc, out, err = run([ARGS.ampd, "--config", good, "--check"])
    check(rc == 0 and "1 remote(s)" in out, "--check of a good file: %d %r %r" % (rc, out, err))
    bad = write_config("bad.toml", '[[remote]]\nname = "a"\nfirmwre = "/x"\n')
    rc, out, err = run([ARGS.ampd, "--config", bad, "--check"])
    check(rc == 2 and "bad.toml:3:1: unknown key 'firmwre' in [[remote]] 1" in err,
          "--check of a bad file: %d %r" % (rc, err))
    rc, out, err = run([ARGS.ampd, "--config", os.path.join(ARGS.work, "missing.toml")])
    check(rc == 2 and "missing.toml" in err, "a missing file: %d %r" % (rc, err))
    print("ampd --check: good file accepted, bad file refused with file:line:col, missing file named")


def case_services_and_open():
    sock = socket_name()
    p = start_ampd(sock)
    rc, out, err = run([ARGS.ampctl, "services", "--socket", sock, "--json"])
    check(rc == 0, "services: %d %r" % (rc, err))
    remotes = json.loads(out)
    check(len(remotes) == 1 and remotes[0]["name"] == "echo" and remotes[0]["state"] == "running",
          "services: %r" % remotes)
    check([s["name"] for s in remotes[0]["services"]] == ["amp-echo"], "services: %r" % remotes)
    rc, out, err = run([ARGS.ampctl, "services", "--socket", sock])
    check(rc == 0 and "echo" in out and "amp-echo" in out, "services (text): %r" % out)
    lines = ["hello", "x" * 496, "three"]
    rc, out, err = run([ARGS.ampctl, "open", "amp-echo", "--socket", sock],
                       stdin=("\n".join(lines + ["y" * 497]) + "\n").encode())
    check(rc == 0, "open: %d %r" % (rc, err))
    check(out.splitlines() == lines, "open echoed %r" % out.splitlines())
    check("not sent" in err and "497-byte message" in err, "open: the 497-byte line: %r" % err)
    rc, out, err = run([ARGS.ampctl, "open", "no-such-service", "--socket", sock], stdin=b"")
    check(rc == 1 and "Not found" in err or "not found" in err.lower(), "open of nothing: %d %r" % (rc, err))
    rc, err = stop_ampd(p)
    check(rc == 0, "ampd on SIGTERM: %d %r" % (rc, err))
    print("services lists the remote and its service; open echoes lines, refuses one beyond the MTU")


def case_signal():
    sock = socket_name()
    p = start_ampd(sock)
    client = subprocess.Popen([ARGS.ampctl, "open", "amp-echo", "--socket", sock], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    client.stdin.write(b"ping\n")
    client.stdin.flush()
    line = client.stdout.readline()
    check(line == b"ping\n", "echo before the stop: %r" % line)
    rc, err = stop_ampd(p)
    check(rc == 0, "ampd on SIGTERM: %d %r" % (rc, err))
    try:
        _, cerr = client.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        client.kill()
        fail("the client did not see its endpoint end")
    check(client.returncode == 1 and b"endpoint ended" in cerr, "client: %d %r" % (client.returncode, cerr))
    print("SIGTERM stops ampd; its client sees its endpoint end")


def case_rpmsg_char_simple():
    sock = socket_name()
    p = start_ampd(sock)
    runs = [subprocess.Popen([ARGS.example, "-s", sock, "-n", "500"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE) for _ in range(2)]
    for r in runs:
        out, err = r.communicate(timeout=60)
        check(r.returncode == 0 and b"Communicated 500 messages successfully on amp-echo" in out,
              "rpmsg_char_simple: %d %r %r" % (r.returncode, out, err))
    stop_ampd(p)
    print("two rpmsg_char_simple programs at once through ampd: 500 messages each")


def case_ping():
    sock = socket_name()
    p = start_ampd(sock)
    rc, out, err = run([ARGS.ampctl, "ping", "--via", "ampd", "--socket", sock, "--json", "--rounds", "2"])
    check(rc == 0, "ping --via ampd: %d %r %r" % (rc, out, err))
    j = json.loads(out)
    check(j["via"] == "ampd" and j["mtu"] == 496 and j["messages"] == 2 * 496 and j["errors"] == 0 and
          j["bytes"] == 2 * 496 * 497 // 2, "ping --via ampd: %r" % j)
    # Two at once: each its own endpoint on the same remote.
    pings = [subprocess.Popen([ARGS.ampctl, "ping", "--via", "ampd", "--socket", sock, "--wait", "5000"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    for q in pings:
        out, err = q.communicate(timeout=60)
        check(q.returncode == 0 and b"496 messages" in out and b" 0 errors" in out,
              "two pings at once: %d %r %r" % (q.returncode, out, err))
    rc, out, err = run([ARGS.ampctl, "ping", "--via", "ampd", "--socket", sock, "--service", "no-such"])
    check(rc == 1 and "no-such" in err, "ping of nothing: %d %r" % (rc, err))
    rc, out, err = run([ARGS.ampctl, "ping", "--via", "ampd", "--socket", sock, "--listen", "/tmp/x"])
    check(rc == 2 and "--via ampd" in err, "ping --via ampd --listen: %d %r" % (rc, err))
    rc, out, err = run([ARGS.ampctl, "ping", "--via", "kernel"])
    check(rc == 2 and "--via is ampd" in err, "ping --via kernel: %d %r" % (rc, err))
    rc, out, err = run([ARGS.ampctl, "ping", "--listen", "/tmp/x", "--remote", "1"])
    check(rc == 2 and "for --via ampd" in err, "ping --remote without --via: %d %r" % (rc, err))
    stop_ampd(p)
    rc, out, err = run([ARGS.ampctl, "ping", "--via", "ampd", "--socket", sock])
    check(rc == 1 and "ampd at" in err, "ping with no ampd: %d %r" % (rc, err))
    print("ping --via ampd: every size to the MTU echoed (twice, and two clients at once), one beyond refused")


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("case")
    ap.add_argument("--ampd", required=True)
    ap.add_argument("--ampctl", required=True)
    ap.add_argument("--firmware", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--example")
    ARGS = ap.parse_args()
    {"check": case_check, "services_and_open": case_services_and_open, "signal": case_signal, "ping": case_ping,
     "rpmsg_char_simple": case_rpmsg_char_simple}[ARGS.case]()


if __name__ == "__main__":
    main()
