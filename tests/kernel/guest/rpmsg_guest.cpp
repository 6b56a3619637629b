// SPDX-License-Identifier: BSD-3-Clause
// The test program that runs inside the User-mode Linux guest (tests/kernel/README.md), against amp's
// vhost-user rpmsg device served by `ampctl echo --vhost-user`, through the kernel's own rpmsg_char and
// rpmsg_ctrl. Built static (the guest has busybox and nothing else). Prints one "amp-guest: ok ..." line per
// check passed, "amp-guest: FAIL ..." and exit status 1 at the first that fails.
//
// Usage: rpmsg_guest STEP[,STEP...]     steps, in order:
//   echo          the channel amp announced (rpmsg-raw): every payload size 1..496 echoed byte-exact, then a
//                 write of 497 bytes fails with EMSGSIZE
//   wire          sends the payload "amp-wire-check" once and reads its echo (the harness compares the
//                 kernel's hexdump of it, and of amp's announcement, with the bytes amp must have written)
//   rounds:N      N round trips over the channel, 16 in flight, each message numbered: every echo must be
//                 the next one expected, byte-exact (nothing lost, duplicated or reordered)
//   ept           /dev/rpmsg_ctrl0 RPMSG_CREATE_EPT_IOCTL: an endpoint at 0x3000 that talks to amp's echo
//                 address; 32 messages echoed; RPMSG_DESTROY_EPT_IOCTL
//   list          prints what the kernel shows of rpmsg in sysfs and /dev (for debugging)
//   dev           RPMSG_CREATE_DEV_IOCTL: a channel rpmsg-raw at 0x2000, which the kernel announces to amp;
//                 amp greets it; RPMSG_RELEASE_DEV_IOCTL, which the kernel announces as a destroy
#include <dirent.h>
#include <fcntl.h>
#include <linux/rpmsg.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

namespace {

constexpr std::size_t kMaxPayload = 496;
constexpr int kWaitMs = 10000;
constexpr long kAddrAny = -1;  // RPMSG_ADDR_ANY, as sysfs shows it

/// One result line: "amp-guest: " + `verdict` + the formatted text.
[[gnu::format(printf, 2, 0)]] void say(const char* verdict, const char* fmt, std::va_list ap) {
  std::printf("amp-guest: %s ", verdict);
  std::vprintf(fmt, ap);
  std::printf("\n");
  std::fflush(stdout);
}

[[noreturn, gnu::format(printf, 1, 2)]] void fail(const char* fmt, ...) {
  std::va_list ap;
  va_start(ap, fmt);
  say("FAIL", fmt, ap);
  va_end(ap);
  std::exit(1);
}

[[gnu::format(printf, 1, 2)]] void pass(const char* fmt, ...) {
  std::va_list ap;
  va_start(ap, fmt);
  say("ok", fmt, ap);
  va_end(ap);
}

std::uint64_t now_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000 + static_cast<std::uint64_t>(ts.tv_nsec) / 1000000;
}

/// A sysfs attribute's first line ("" when it cannot be read).
std::string attribute(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  char buf[128] = {};
  const ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return "";
  std::string s(buf, static_cast<std::size_t>(n));
  if (const auto nl = s.find('\n'); nl != std::string::npos) s.resize(nl);
  return s;
}

struct Eptdev {
  std::string node;  // /dev/rpmsgN
  long src = 0;
  long dst = 0;
};

/// Waits for an rpmsg_char endpoint device named `name` that `wanted` accepts, and for its /dev node.
template <class Wanted>
Eptdev find_eptdev(const char* name, const char* what, Wanted wanted) {
  const std::uint64_t deadline = now_ms() + kWaitMs;
  do {
    if (DIR* d = opendir("/sys/class/rpmsg")) {
      while (dirent* e = readdir(d)) {
        const std::string n = e->d_name;
        if (n.rfind("rpmsg", 0) != 0 || n.find("ctrl") != std::string::npos) continue;
        const std::string base = "/sys/class/rpmsg/" + n + "/";
        if (attribute(base + "name") != name) continue;
        Eptdev ep{"/dev/" + n, std::strtol(attribute(base + "src").c_str(), nullptr, 0),
                  std::strtol(attribute(base + "dst").c_str(), nullptr, 0)};
        if (!wanted(ep)) continue;
        if (access(ep.node.c_str(), R_OK | W_OK) != 0) continue;  // devtmpfs not there yet
        closedir(d);
        return ep;
      }
      closedir(d);
    }
    usleep(20000);
  } while (now_ms() < deadline);
  fail("no rpmsg endpoint device named %s %s within %d ms", name, what, kWaitMs);
}

int open_rw(const std::string& path) {
  const int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) fail("open %s: %s", path.c_str(), std::strerror(errno));
  return fd;
}

/// One message from `fd` within kWaitMs (rpmsg_char: one read, one message).
std::size_t read_message(int fd, unsigned char* buf, std::size_t size, const char* what) {
  pollfd p{fd, POLLIN, 0};
  const int r = poll(&p, 1, kWaitMs);
  if (r == 0) fail("%s: no message within %d ms", what, kWaitMs);
  if (r < 0) fail("%s: poll: %s", what, std::strerror(errno));
  const ssize_t n = read(fd, buf, size);
  if (n < 0) fail("%s: read: %s", what, std::strerror(errno));
  return static_cast<std::size_t>(n);
}

void write_message(int fd, const unsigned char* buf, std::size_t len, const char* what) {
  const ssize_t n = write(fd, buf, len);
  if (n != static_cast<ssize_t>(len))
    fail("%s: write of %zu bytes: %s", what, len, n < 0 ? std::strerror(errno) : "short");
}

/// Message `seq` of `len` bytes: the number, then bytes that depend on both.
void fill(unsigned char* buf, std::size_t len, std::uint32_t seq) {
  for (std::size_t i = 0; i < len; ++i) buf[i] = static_cast<unsigned char>((seq * 131 + i * 7 + len) & 0xff);
  if (len >= 4) std::memcpy(buf, &seq, 4);
}

void echo_once(int fd, std::size_t len, std::uint32_t seq, const char* what) {
  unsigned char out[kMaxPayload];
  unsigned char in[kMaxPayload + 16];
  fill(out, len, seq);
  write_message(fd, out, len, what);
  const std::size_t n = read_message(fd, in, sizeof in, what);
  if (n != len) fail("%s: sent %zu bytes, the echo has %zu", what, len, n);
  if (std::memcmp(in, out, len) != 0) fail("%s: the echo of %zu bytes differs", what, len);
}

/// The channel the kernel made of amp's announcement (the one with a destination: amp's address).
Eptdev amp_channel() {
  return find_eptdev("rpmsg-raw", "with a destination", [](const Eptdev& e) { return e.dst != kAddrAny; });
}

void step_echo() {
  const Eptdev ch = amp_channel();
  pass("channel %s: src %ld, dst %ld (amp's address, from its announcement)", ch.node.c_str(), ch.src,
       ch.dst);
  const int fd = open_rw(ch.node);
  for (std::size_t len = 1; len <= kMaxPayload; ++len)
    echo_once(fd, len, static_cast<std::uint32_t>(len), "echo");
  pass("echo: every payload size 1..%zu echoed byte-exact", kMaxPayload);
  unsigned char big[kMaxPayload + 1] = {};
  const ssize_t n = write(fd, big, sizeof big);
  if (n >= 0 || errno != EMSGSIZE)
    fail("a write of %zu bytes gave %zd (%s), not EMSGSIZE", sizeof big, n,
         n < 0 ? std::strerror(errno) : "");
  pass("echo: a write of %zu bytes fails with EMSGSIZE", sizeof big);
  close(fd);
}

void step_wire() {
  const int fd = open_rw(amp_channel().node);
  static const char kCheck[] = "amp-wire-check";
  unsigned char in[kMaxPayload];
  write_message(fd, reinterpret_cast<const unsigned char*>(kCheck), sizeof kCheck - 1, "wire");
  const std::size_t n = read_message(fd, in, sizeof in, "wire");
  if (n != sizeof kCheck - 1 || std::memcmp(in, kCheck, n) != 0) fail("wire: the echo differs");
  pass("wire: amp-wire-check echoed");
  close(fd);
}

void step_rounds(long rounds) {
  const int fd = open_rw(amp_channel().node);
  constexpr std::uint32_t kWindow = 16;
  unsigned char out[kMaxPayload];
  unsigned char in[kMaxPayload + 16];
  const auto length = [](std::uint32_t seq) { return 4 + (seq * 37) % (kMaxPayload - 3); };  // 4..496
  const std::uint64_t t0 = now_ms();
  std::uint32_t sent = 0;
  const auto total = static_cast<std::uint32_t>(rounds);
  for (; sent < kWindow && sent < total; ++sent) {
    fill(out, length(sent), sent);
    write_message(fd, out, length(sent), "rounds");
  }
  for (std::uint32_t got = 0; got < total; ++got) {
    const std::size_t n = read_message(fd, in, sizeof in, "rounds");
    std::uint32_t seq = 0;
    if (n >= 4) std::memcpy(&seq, in, 4);
    if (n < 4 || seq != got)
      fail("rounds: message %u expected, got %u (%zu bytes): lost, duplicated or reordered", got, seq, n);
    fill(out, length(got), got);
    if (n != length(got) || std::memcmp(in, out, n) != 0) fail("rounds: message %u differs", got);
    if (sent < total) {
      fill(out, length(sent), sent);
      write_message(fd, out, length(sent), "rounds");
      ++sent;
    }
  }
  const std::uint64_t ms = now_ms() - t0;
  pass("rounds: %ld round trips, 16 in flight, every one in order and byte-exact (%llu ms)", rounds,
       static_cast<unsigned long long>(ms));
  close(fd);
}

/// amp's echo address: the destination of the channel it announced.
long amp_address() {
  return amp_channel().dst;
}

void step_ept() {
  const long amp = amp_address();
  const int ctrl = open_rw("/dev/rpmsg_ctrl0");
  rpmsg_endpoint_info info{};
  std::snprintf(info.name, sizeof info.name, "amp-guest-ept");
  info.src = 0x3000;
  info.dst = static_cast<std::uint32_t>(amp);
  if (ioctl(ctrl, RPMSG_CREATE_EPT_IOCTL, &info) != 0)
    fail("RPMSG_CREATE_EPT_IOCTL: %s", std::strerror(errno));
  const Eptdev ep =
      find_eptdev("amp-guest-ept", "at 0x3000", [](const Eptdev& e) { return e.src == 0x3000; });
  const int fd = open_rw(ep.node);
  for (std::uint32_t i = 0; i < 32; ++i) echo_once(fd, 1 + (i * 15) % kMaxPayload, 1000 + i, "ept");
  pass("ept: %s (src 0x3000, dst %ld) exchanged 32 messages with amp's echo endpoint", ep.node.c_str(), amp);
  if (ioctl(fd, RPMSG_DESTROY_EPT_IOCTL) != 0) fail("RPMSG_DESTROY_EPT_IOCTL: %s", std::strerror(errno));
  close(fd);
  close(ctrl);
  pass("ept: destroyed");
}

void step_dev() {
  const int ctrl = open_rw("/dev/rpmsg_ctrl0");
  rpmsg_endpoint_info info{};
  std::snprintf(info.name, sizeof info.name, "rpmsg-raw");
  info.src = 0x2000;
  info.dst = 0xffffffff;  // RPMSG_ADDR_ANY: the kernel announces the channel
  if (ioctl(ctrl, RPMSG_CREATE_DEV_IOCTL, &info) != 0)
    fail("RPMSG_CREATE_DEV_IOCTL: %s", std::strerror(errno));
  const Eptdev ch = find_eptdev("rpmsg-raw", "at 0x2000", [](const Eptdev& e) { return e.src == 0x2000; });
  const int fd = open_rw(ch.node);
  unsigned char in[kMaxPayload + 16] = {};
  const std::size_t n = read_message(fd, in, sizeof in - 1, "dev");
  static const char kGreeting[] = "amp greets 'rpmsg-raw'";
  if (n != sizeof kGreeting - 1 || std::memcmp(in, kGreeting, n) != 0)
    fail("dev: amp's answer to the announcement is '%.*s', not '%s'", static_cast<int>(n), in, kGreeting);
  pass("dev: %s (src 0x2000) announced; amp answered: %s", ch.node.c_str(), kGreeting);
  close(fd);
  if (ioctl(ctrl, RPMSG_RELEASE_DEV_IOCTL, &info) != 0)
    fail("RPMSG_RELEASE_DEV_IOCTL: %s", std::strerror(errno));
  close(ctrl);
  pass("dev: released");
}

/// What the kernel shows of rpmsg (for debugging a failing step).
void step_list() {
  for (const char* dir : {"/sys/class/rpmsg", "/sys/bus/rpmsg/devices", "/dev"}) {
    if (DIR* d = opendir(dir)) {
      while (dirent* e = readdir(d)) {
        const std::string n = e->d_name;
        if (n[0] == '.' || (std::string(dir) == "/dev" && n.rfind("rpmsg", 0) != 0)) continue;
        const std::string base = std::string(dir) + "/" + n + "/";
        std::printf("amp-guest: %s%s name=%s src=%s dst=%s\n", base.c_str(), "",
                    attribute(base + "name").c_str(), attribute(base + "src").c_str(),
                    attribute(base + "dst").c_str());
      }
      closedir(d);
    }
  }
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) fail("usage: rpmsg_guest STEP[,STEP...]");
  std::vector<std::string> steps;
  for (std::string rest = argv[1]; !rest.empty();) {
    const auto comma = rest.find(',');
    steps.push_back(rest.substr(0, comma));
    rest = comma == std::string::npos ? "" : rest.substr(comma + 1);
  }
  for (const std::string& s : steps) {
    if (s == "echo") {
      step_echo();
    } else if (s == "wire") {
      step_wire();
    } else if (s.rfind("rounds:", 0) == 0) {
      const long n = std::strtol(s.c_str() + 7, nullptr, 10);
      if (n < 1) fail("rounds wants a count, not '%s'", s.c_str() + 7);
      step_rounds(n);
    } else if (s == "ept") {
      step_ept();
    } else if (s == "dev") {
      step_dev();
    } else if (s == "list") {
      step_list();
    } else {
      fail("unknown step '%s'", s.c_str());
    }
  }
  pass("all steps");
  return 0;
}
