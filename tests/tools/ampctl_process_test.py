#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""ampctl run as a user would, where a test needs more than one command line: signals at a chosen moment,
peers that misbehave or die, output that must be valid JSON or free of escape sequences.

    ampctl_process_test.py CASE --ampctl PATH --work DIR [--peer PATH] [--firmware PATH]

Each CASE is one CTest (tests/CMakeLists.txt); it prints what it checked and exits 0, or says what failed.
The processes are started with subprocess (not from a shell in the background, which would start them
with SIGINT ignored).
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

from proc_util import children

ARGS = None


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def work(name):
    path = os.path.join(ARGS.work, name)
    if os.path.lexists(path):
        os.unlink(path)
    return path


def start(*argv):
    return subprocess.Popen([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc, timeout=60):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        fail("%s did not end within %d s\nstdout:\n%s\nstderr:\n%s" % (proc.args, timeout, out, err))
    return proc.returncode, out, err


def wait_for_path(path, proc, timeout=10):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None:
            fail("%s ended (%d) before %s appeared: %s" % (proc.args, proc.returncode, path, proc.stderr.read()))
        if time.monotonic() > deadline:
            fail("%s did not appear" % path)
        time.sleep(0.01)


def ampctl(*argv):
    return start(ARGS.ampctl, *argv)


def one_json(out, what):
    try:
        return json.loads(out.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        fail("%s: not one UTF-8 JSON document (%s):\n%r" % (what, e, out))


# ---- --listen leaves no socket file behind ------------------------------------------------------------------


def case_listen_interrupted():
    sock = work("interrupted.sock")
    echo = ampctl("echo", "--listen", sock, "--timeout", "60000")
    wait_for_path(sock, echo)
    time.sleep(0.2)  # let it reach its wait for the peer
    echo.send_signal(signal.SIGINT)
    code, _, err = finish(echo)
    check(not os.path.lexists(sock), "the socket file %s is left behind" % sock)
    check(code == 130, "echo interrupted while listening: exit %d, expected 130; %s" % (code, err))
    check(b"interrupted while waiting for a peer on " + sock.encode() in err, "stderr: %r" % err)


def case_listen_timeout():
    sock = work("timeout.sock")
    code, _, err = finish(ampctl("echo", "--listen", sock, "--timeout", "300"))
    check(not os.path.lexists(sock), "the socket file %s is left behind" % sock)
    check(code == 1, "echo whose wait timed out: exit %d, expected 1; %s" % (code, err))
    check(b"none connected within 300 ms" in err, "stderr: %r" % err)


def case_listen_failed_handshake():
    # A peer that connects and says nothing: the handshake with it stays bounded (the default 10 s) even
    # when the wait for a peer has no limit; then the server goes back to waiting (a stray client cannot end
    # it) and serves the next host. The socket file goes at the end.
    sock = work("stall.sock")
    echo = ampctl("echo", "--listen", sock, "--timeout", "forever", "--verbose")
    wait_for_path(sock, echo)
    peer = start(ARGS.peer, "stall", sock)
    check(peer.stdout.readline() == b"connected\n", "the silent client did not connect")
    # The host waits in the backlog while the server gives the silent one its 10 s.
    code, _, err = finish(ampctl("ping", "--connect", sock, "--timeout", "30000", "--shutdown"), timeout=40)
    check(code == 0, "ping after a silent client: exit %d; %s" % (code, err))
    code, _, err = finish(echo, timeout=40)
    finish(peer)
    check(code == 0, "echo that outlived a silent client: exit %d, expected 0; %s" % (code, err))
    check(b"went away without joining" in err, "stderr: %r" % err)
    check(not os.path.lexists(sock), "the socket file %s is left behind" % sock)


def case_second_listen_keeps_the_first():
    # A second --listen on a busy socket is refused, and its probe connection does not end the first.
    sock = work("busy.sock")
    echo = ampctl("echo", "--listen", sock, "--timeout", "forever")
    wait_for_path(sock, echo)
    code, _, err = finish(ampctl("echo", "--listen", sock, "--timeout", "1000"))
    check(code == 1, "a second listen on a busy socket: exit %d, expected 1; %s" % (code, err))
    check(b"listening" in err or b"in use" in err, "stderr: %r" % err)
    time.sleep(0.3)
    if echo.poll() is not None:
        fail("the first server ended: %r" % echo.stderr.read())
    code, _, err = finish(ampctl("ping", "--connect", sock, "--shutdown"))
    check(code == 0, "ping to the first server: exit %d; %s" % (code, err))
    code, _, err = finish(echo)
    check(code == 0, "the first server: exit %d; %s" % (code, err))


def case_role_clash():
    # Both sides in one role: both fail at once, non-zero, with the reason.
    for role in ("driver", "device"):
        sock = work("clash-%s.sock" % role)
        t0 = time.monotonic()
        echo = ampctl("echo", "--listen", sock, "--role", role)
        wait_for_path(sock, echo)
        code, _, err = finish(ampctl("ping", "--connect", sock, "--role", role))
        check(code == 1, "ping with a role clash (%s): exit %d; %s" % (role, code, err))
        check(("both sides asked for the %s role" % role).encode() in err, "ping stderr: %r" % err)
        code, _, err = finish(echo)
        check(code == 1, "echo with a role clash (%s): exit %d; %s" % (role, code, err))
        check(("both sides asked for the %s role" % role).encode() in err, "echo stderr: %r" % err)
        check(time.monotonic() - t0 < 5, "the %s clash took %.1f s" % (role, time.monotonic() - t0))


# ---- waiting for the peer as long as asked ---------------------------------------------------------------


def case_wait_forever():
    # --timeout 0 and forever are accepted and mean "until the peer comes": ping waits for an echo that
    # starts later, echo for a ping that starts later.
    sock = work("forever.sock")
    ping = ampctl("ping", "--connect", sock, "--timeout", "forever", "--json")
    time.sleep(1.0)
    if ping.poll() is not None:
        fail("ping --timeout forever gave up: %r" % ping.stderr.read())
    echo = ampctl("echo", "--listen", sock, "--timeout", "0", "--json")
    code, out, err = finish(ping)
    check(code == 0, "ping: exit %d; %s" % (code, err))
    check(one_json(out, "ping --json")["messages"] == 496, "ping: %r" % out)
    code, out, err = finish(echo)
    check(code == 0, "echo: exit %d; %s" % (code, err))
    sock2 = work("forever2.sock")
    echo = ampctl("echo", "--listen", sock2, "--timeout", "0")
    wait_for_path(sock2, echo)
    time.sleep(1.0)
    if echo.poll() is not None:
        fail("echo --timeout 0 gave up: %r" % echo.stderr.read())
    code, _, err = finish(ampctl("ping", "--connect", sock2, "--shutdown"))
    check(code == 0, "ping: exit %d; %s" % (code, err))
    code, _, err = finish(echo)
    check(code == 0, "echo: exit %d; %s" % (code, err))


def case_preset_wait_forever():
    # The same with OpenAMP's layout: index 1 (ping, the client) waits for index 0 (echo, the server).
    sock = work("openamp.event.0")
    shm = "amp-test-%d.shm" % os.getpid()  # a name of this run's own
    preset = ["--preset", "openamp-linux", "--socket", sock, "--shm", shm]
    try:
        ping = ampctl("ping", *preset, "--timeout", "forever", "--shutdown")
        time.sleep(1.0)
        if ping.poll() is not None:
            fail("ping --preset --timeout forever gave up: %r" % ping.stderr.read())
        echo = ampctl("echo", *preset, "--json")
        code, out, err = finish(ping)
        check(code == 0, "ping: exit %d; %s %s" % (code, out, err))
        code, out, err = finish(echo)
        check(code == 0, "echo: exit %d; %s" % (code, err))
        check(one_json(out, "echo --json")["echoed"] == 496, "echo: %r" % out)
    finally:
        if os.path.exists("/dev/shm/" + shm):
            os.unlink("/dev/shm/" + shm)


# ---- Ctrl-C during ping and demo ------------------------------------------------------------------------


def interrupted_summary(proc, what, ready=None):
    """SIGINT to `proc` once `ready()` holds (or after 0.5 s), then its exit code and output checked."""
    # A signal before ampctl is interruptible (its start-up, its option parsing) ends it at once, without
    # a summary: wait until it is past that.
    deadline = time.monotonic() + 20
    while ready is not None and not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    code, out, err = finish(proc)
    check(code == 130, "%s interrupted: exit %d, expected 130; %s" % (what, code, err))
    return out


def case_demo_interrupted():
    # demo is interruptible once it has started its emulated remote (a slow start-up, under TSan and a busy
    # machine, took longer than a fixed wait).
    demo = ampctl("demo", "--rounds", "1000000", "--json")
    out = interrupted_summary(demo, "demo --json", lambda: children(demo.pid))
    summary = one_json(out, "demo --json")
    check(summary.get("interrupted") is True, "demo --json: not marked interrupted: %r" % summary)
    demo = ampctl("demo", "--rounds", "1000000")
    out = interrupted_summary(demo, "demo", lambda: children(demo.pid))
    check(b"\ninterrupted: " in out, "demo: no 'interrupted' note:\n%s" % out.decode())


def case_ping_interrupted():
    sock = work("ping-interrupted.sock")
    echo = ampctl("echo", "--listen", sock, "--json")
    wait_for_path(sock, echo)
    ping = ampctl("ping", "--connect", sock, "--rounds", "1000000", "--json")
    summary = one_json(interrupted_summary(ping, "ping --json"), "ping --json")
    check(summary.get("interrupted") is True, "ping --json: not marked interrupted: %r" % summary)
    code, out, err = finish(echo)
    check(code == 0, "echo: exit %d; %s" % (code, err))


# ---- the remote goes away --------------------------------------------------------------------------------


def case_ping_remote_killed():
    sock = work("killed.sock")
    peer = start(ARGS.peer, "die-after", sock, "100")
    wait_for_path(sock, peer)
    t0 = time.monotonic()
    code, out, err = finish(ampctl("ping", "--connect", sock))
    elapsed = time.monotonic() - t0
    finish(peer)
    check(code == 1, "ping whose remote was killed: exit %d, expected 1; %s" % (code, err))
    check(b"first error: the remote went away" in out, "ping: %s" % out.decode())
    # Its echo timeout is 5 s: noticing the hang-up at once, not by that timeout, ends it well before.
    check(elapsed < 3.0, "ping took %.1f s to notice that the remote went away" % elapsed)


def case_echo_sees_host_endpoint():
    # ping announces its endpoint and, at its end, destroys it: echo's endpoint is unbound by that
    # name-service message (it ends with "unbind", not with the hang-up that follows).
    sock = work("announce.sock")
    echo = ampctl("echo", "--listen", sock, "--json")
    wait_for_path(sock, echo)
    code, _, err = finish(ampctl("ping", "--connect", sock))
    check(code == 0, "ping: exit %d; %s" % (code, err))
    code, out, err = finish(echo)
    check(code == 0, "echo: exit %d; %s" % (code, err))
    summary = one_json(out, "echo --json")
    check(summary["ended"] == "unbind", "echo did not see the host's endpoint destroyed: %r" % summary)
    check(summary["received"] == 496 and summary["echoed"] == 496, "echo: %r" % summary)


# ---- what a misbehaving peer makes the device drop -------------------------------------------------------


def misbehaving_peer(*echo_args):
    sock = work("misbehave.sock")
    echo = ampctl("echo", "--listen", sock, "--json", *echo_args)
    wait_for_path(sock, echo)
    code, _, err = finish(start(ARGS.peer, "misbehave", sock))
    check(code == 0, "rpmsg_test_peer misbehave: exit %d; %s" % (code, err))
    code, out, err = finish(echo)
    check(code == 0, "echo: exit %d; %s" % (code, err))
    summary = one_json(out, "echo --json")
    want = {"received": 4, "echoed": 3, "rx_malformed": 1, "rx_unroutable": 1, "ended": "shutdown"}
    for key, value in want.items():
        check(summary.get(key) == value, "echo --json: %s is %r, expected %r: %r" % (key, summary.get(key), value,
                                                                                    summary))
    return err


def case_echo_stats():
    err = misbehaving_peer()
    check(b"malformed" not in err and b"name-service" not in err, "warnings without --verbose: %r" % err)


def case_echo_verbose():
    err = misbehaving_peer("--verbose")
    check(b"dropped a 3-byte name-service message" in err, "--verbose shows no warning: %r" % err)
    err = misbehaving_peer("-v", "-v")  # debug: the message for no endpoint too
    check(b"no endpoint at address %d" % 0x7777 in err, "-v -v shows no debug message: %r" % err)


# ---- strings the remote chose ----------------------------------------------------------------------------


def case_run_hostile_name():
    name = b"\x1b[31mevil\x1b]0;title\x07\xff\xfe"
    argv = [ARGS.ampctl.encode(), b"run", ARGS.firmware.encode(), b"--duration", b"1000"]
    text = subprocess.run(argv + [b"--", b"--service", name], capture_output=True, timeout=60)
    check(text.returncode == 0, "run: exit %d; %s" % (text.returncode, text.stderr))
    check(b"\x1b" not in text.stdout + text.stderr and b"\xff" not in text.stdout + text.stderr,
          "raw bytes of the name reach the terminal:\n%r" % (text.stdout + text.stderr))
    check(b"service '\\x1b[31mevil\\x1b]0;title\\x07\\xff\\xfe' at address" in text.stdout,
          "the name is not shown escaped:\n%r" % text.stdout)
    js = subprocess.run(argv + [b"--json", b"--", b"--service", name], capture_output=True, timeout=60)
    check(js.returncode == 0, "run --json: exit %d; %s" % (js.returncode, js.stderr))
    check(max(js.stdout) < 0x80, "run --json is not ASCII: %r" % js.stdout)
    names = []
    for line in js.stdout.decode("utf-8").splitlines():
        event = json.loads(line)
        if event.get("event") == "service":
            names.append(event["name"])
    check(len(names) == 1, "run --json: %d service events:\n%s" % (len(names), js.stdout.decode()))
    check(names[0].encode("latin-1") == name, "the name's bytes do not come back: %r" % names[0])


def case_run_foreign_machine():
    # The native firmware with e_machine (bytes 18-19) set to EM_SPARC: named in the message, with the file.
    fw = work("sparc-firmware")
    shutil.copyfile(ARGS.firmware, fw)
    with open(fw, "r+b") as f:
        f.seek(18)
        f.write(bytes([2, 0]))
    code, _, err = finish(ampctl("run", fw, "--duration", "100"))
    check(code == 1, "run of a SPARC firmware: exit %d; %s" % (code, err))
    want = b"ampctl: firmware " + fw.encode() + b": built for EM_SPARC, this machine is EM_"
    check(err.startswith(want), "stderr %r does not start with %r" % (err, want))


# ---- echo --vhost-user ---------------------------------------------------------------------------------------


def case_vhost_user_interrupted():
    # Serving until a signal is the normal end of a server: exit 0, the summary says why, no socket file left.
    sock = work("vhost-user.sock")
    echo = ampctl("echo", "--vhost-user", sock, "--json")
    wait_for_path(sock, echo)
    echo.send_signal(signal.SIGINT)
    code, out, err = finish(echo)
    check(code == 0, "echo --vhost-user ended by SIGINT: exit %d, expected 0; %s" % (code, err))
    j = one_json(out, "echo --vhost-user --json")
    check(j["transport"] == "vhost-user" and j["ended"] == "interrupted" and j["connections"] == 0,
          "summary: %r" % j)
    check(not os.path.lexists(sock), "the socket file %s is left behind" % sock)


def case_vhost_user_hostile_front_end():
    # A front end that sends garbage is dropped with the reason; the server goes on and takes the next one.
    sock = work("vhost-user-hostile.sock")
    echo = ampctl("echo", "--vhost-user", sock, "--json", "--connections", "2")
    wait_for_path(sock, echo)
    for garbage in (b"GET / HTTP/1.1\r\n\r\n", b"\x01\x00\x00\x00\x01\x00\x00\x00\xff\xff\xff\xff"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock)
        s.sendall(garbage)
        s.settimeout(10)
        try:
            closed = s.recv(1) == b""
        except ConnectionResetError:  # closed with some of the garbage unread
            closed = True
        check(closed, "the server did not close a connection that sent %r" % garbage)
        s.close()
    code, out, err = finish(echo)
    check(code == 0, "echo --vhost-user after two hostile front ends: exit %d; %s" % (code, err))
    j = one_json(out, "echo --vhost-user --json")
    check(j["connections"] == 2 and j["failures"] == 2 and j["sessions"] == 0, "summary: %r" % j)
    dropped = [e["error"] for e in j["events"] if e["event"] == "disconnected"]
    check(len(dropped) == 2 and "version" in dropped[0] and "bytes" in dropped[1], "events: %r" % j["events"])
    check(b"connection closed" in err, "the reason was not logged: %r" % err)


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("case")
    parser.add_argument("--ampctl", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--peer")
    parser.add_argument("--firmware")
    ARGS = parser.parse_args()
    os.makedirs(ARGS.work, exist_ok=True)
    case = globals().get("case_" + ARGS.case)
    if case is None:
        fail("no case " + ARGS.case)
    case()
    print("ampctl %s: passed" % ARGS.case)


if __name__ == "__main__":
    main()
