// SPDX-License-Identifier: BSD-3-Clause
// amp-bench: RPMsg round-trip latency and one-way throughput between two processes on different cores, in
// every notification mode, next to this machine's raw limits measured in the same run (a cache-line ping-pong
// through shared memory, an eventfd ping-pong), and the CPU that an idle link costs.
//
//   amp-bench [--json] [--iterations N] [--messages N] [--repeat R] [--buffer-size N]
//   amp-bench --qemu FIRMWARE.elf [...]   against a bare-metal firmware under QEMU (qemu_bench.cpp)
#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "amp/metal/linux/event_fd.hpp"
#include "amp/metal/log.hpp"
#include "amp/metal/platform.hpp"
#include "amp/metal/time.hpp"
#include "amp/rpmsg/linux/link.hpp"
#include "qemu_bench.hpp"
#include "stats.hpp"

namespace {

using namespace std::chrono_literals;
using amp::Status;
using amp::bench::Latency;
using amp::bench::Runs;
using amp::metal::monotonic_ns;
using amp::rpmsg::Endpoint;
using amp::rpmsg::Link;
using amp::rpmsg::LinkConfig;
using amp::rpmsg::Message;
using amp::rpmsg::NotifyMode;
using amp::rpmsg::Role;

[[noreturn]] void die(const std::string& m) {
  std::fprintf(stderr, "amp-bench: %s\n", m.c_str());
  std::exit(1);
}

void pin_to_cpu(int cpu) {
  const int n = static_cast<int>(std::thread::hardware_concurrency());
  if (n < 2) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(static_cast<std::size_t>(cpu % n), &set);
  (void)sched_setaffinity(0, sizeof set, &set);
}

// ---- Raw limits ------------------------------------------------------------------------------------------

/// Two processes bounce a counter through two cache lines of shared memory.
Latency raw_cacheline(int iterations) {
  void* mem = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) die("mmap");
  auto* ping = new (mem) std::atomic<std::uint64_t>(0);
  auto* pong = new (static_cast<char*>(mem) + 128) std::atomic<std::uint64_t>(0);
  const int total = iterations + 1000;
  const pid_t pid = fork();
  if (pid == 0) {
    pin_to_cpu(1);
    for (std::uint64_t i = 1; i <= static_cast<std::uint64_t>(total); ++i) {
      while (ping->load(std::memory_order_acquire) != i) amp::metal::cpu_relax();
      pong->store(i, std::memory_order_release);
    }
    _exit(0);
  }
  pin_to_cpu(0);
  // Timed in blocks of kBlock round trips, so that the clock read (~20 ns) does not inflate the figure:
  // each sample is a block's time divided by kBlock.
  constexpr std::uint64_t kBlock = 100;
  std::vector<double> samples;
  samples.reserve(static_cast<std::size_t>(iterations) / kBlock + 1);
  std::uint64_t t0 = monotonic_ns();
  for (std::uint64_t i = 1; i <= static_cast<std::uint64_t>(total); ++i) {
    ping->store(i, std::memory_order_release);
    while (pong->load(std::memory_order_acquire) != i) amp::metal::cpu_relax();
    if (i % kBlock == 0) {
      const std::uint64_t t1 = monotonic_ns();
      if (i > 1000) samples.push_back(static_cast<double>(t1 - t0) / static_cast<double>(kBlock));
      t0 = t1;
    }
  }
  waitpid(pid, nullptr, 0);
  munmap(mem, 4096);
  return Latency::of(std::move(samples));
}

/// Two processes bounce a wake-up through two eventfds (blocking reads).
Latency raw_eventfd(int iterations) {
  auto a = amp::metal::EventFd::create();
  auto b = amp::metal::EventFd::create();
  if (!a || !b) die("eventfd");
  // Blocking reads: clear O_NONBLOCK on both.
  for (int fd : {a->fd(), b->fd()}) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  const int total = iterations + 200;
  const pid_t pid = fork();
  if (pid == 0) {
    pin_to_cpu(1);
    std::uint64_t v;
    for (int i = 0; i < total; ++i) {
      if (read(a->fd(), &v, 8) != 8) _exit(1);
      v = 1;
      if (write(b->fd(), &v, 8) != 8) _exit(1);
    }
    _exit(0);
  }
  pin_to_cpu(0);
  std::vector<double> samples;
  std::uint64_t v = 1;
  for (int i = 0; i < total; ++i) {
    const std::uint64_t t0 = monotonic_ns();
    v = 1;
    if (write(a->fd(), &v, 8) != 8 || read(b->fd(), &v, 8) != 8) die("eventfd ping-pong");
    if (i >= 200) samples.push_back(static_cast<double>(monotonic_ns() - t0));
  }
  waitpid(pid, nullptr, 0);
  return Latency::of(std::move(samples));
}

/// One core's memcpy bandwidth in MB/s for `size`-byte copies into `count` buffers in turn (the working set
/// of the link's receive side, so that caches hold as much of it as they would of the pool), best of 3.
double raw_memcpy_mb_per_s(std::size_t size, std::size_t count) {
  std::vector<std::byte> src(size, std::byte{0x5a});
  std::vector<std::byte> dst(size * count);
  pin_to_cpu(0);
  const std::size_t copies = std::max<std::size_t>(1000, (std::size_t{2} << 30) / size / 4);  // about 512 MB
  double best = 0;
  for (int round = 0; round < 3; ++round) {
    const std::uint64_t t0 = monotonic_ns();
    for (std::size_t i = 0; i < copies; ++i) {
      std::memcpy(dst.data() + (i % count) * size, src.data(), size);
      __asm__ __volatile__("" : : "r"(dst.data()) : "memory");  // keep every copy
    }
    const double secs = static_cast<double>(monotonic_ns() - t0) / 1e9;
    best = std::max(best, static_cast<double>(copies) * static_cast<double>(size) / secs / 1e6);
  }
  return best;
}

// ---- amp -------------------------------------------------------------------------------------------------

constexpr std::byte kEndMarker{0xE5};

/// CPU seconds (user + system) a process used so far, from /proc.
double cpu_seconds(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  FILE* f = std::fopen(path, "r");
  if (f == nullptr) return 0;
  char buf[1024] = {};
  const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  // Fields after the command name (which may contain spaces) start after the last ')'.
  const char* p = std::strrchr(buf, ')');
  if (n == 0 || p == nullptr) return 0;
  unsigned long utime = 0, stime = 0;
  // state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime
  if (std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
    return 0;
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

/// The remote: echoes on "bench-echo"; counts on "bench-sink" and answers the end marker with the count.
int remote_main(amp::metal::UnixSocket sock) {
  pin_to_cpu(1);
  LinkConfig cfg;
  cfg.role = Role::kDevice;
  auto link = Link::join(std::move(sock), cfg);
  if (!link) {
    std::fprintf(stderr, "remote: %s\n", link.error().message.c_str());
    return 1;
  }
  std::uint64_t sunk = 0;
  volatile std::uint64_t touched = 0;  // what the sink read, kept so that the reads are made
  Endpoint echo, sink;
  auto& dev = (*link)->device();
  if (!ok(dev.create_endpoint(echo, "bench-echo", amp::rpmsg::kAddrAny, amp::rpmsg::kAddrAny,
                              [](Endpoint& ep, const Message& m) { (void)ep.send(m.payload); })) ||
      !ok(dev.create_endpoint(sink, "bench-sink", amp::rpmsg::kAddrAny, amp::rpmsg::kAddrAny,
                              [&](Endpoint& ep, const Message& m) {
                                if (m.payload.size() == 1 && m.payload[0] == kEndMarker) {
                                  (void)ep.send(std::as_bytes(std::span(&sunk, 1)));
                                  sunk = 0;
                                } else {
                                  // Read the message where it lies (zero-copy): a word of every cache line,
                                  // so that its bytes really cross to this core.
                                  std::uint64_t sum = 0;
                                  for (std::size_t i = 0; i + 8 <= m.payload.size(); i += 64) {
                                    std::uint64_t w;
                                    std::memcpy(&w, m.payload.data() + i, 8);
                                    sum += w;
                                  }
                                  touched = touched + sum;
                                  ++sunk;
                                }
                              }))) {
    return 2;
  }
  while (!(*link)->wait_peer_gone(std::chrono::hours(1))) {
  }
  return 0;
}

struct ModeResult {
  NotifyMode mode{};
  std::size_t payload = 0;
  Latency rtt;
  double msgs_per_s = 0;
  double mb_per_s = 0;
};

struct Host {
  std::unique_ptr<Link> link;
  pid_t remote = -1;
  Endpoint echo, sink;
  std::uint32_t echo_addr = 0, sink_addr = 0;
  // Round trips are driven from the receive callback, on the link's thread, so that no extra thread hop
  // is measured: receive the echo, stamp it, send the next.
  std::mutex m;
  std::condition_variable cv;
  std::vector<double> samples;
  std::atomic<int> remaining{0};
  std::uint64_t t_sent = 0;
  std::vector<std::byte> payload;
  std::uint64_t sink_count = 0;
  bool sink_done = false;
};

std::unique_ptr<Host> start_host(NotifyMode mode, bool single_threaded, std::uint32_t buffer_size) {
  auto socks = amp::metal::UnixSocket::pair();
  if (!socks) die(socks.error().message);
  auto h = std::make_unique<Host>();
  h->remote = fork();
  if (h->remote == 0) {
    socks->first = amp::metal::UnixSocket(amp::metal::UniqueFd());
    _exit(remote_main(std::move(socks->second)));
  }
  socks->second = amp::metal::UnixSocket(amp::metal::UniqueFd());
  pin_to_cpu(0);
  LinkConfig cfg;
  cfg.role = Role::kDriver;
  cfg.notify = mode;
  cfg.own_thread = mode != NotifyMode::kPoll;  // poll mode: this thread sends and polls, one core per side
  cfg.single_threaded = single_threaded;
  cfg.buffer_size = buffer_size;  // the remote joins with it, and takes it through VIRTIO_RPMSG_F_BUFSZ
  auto link = Link::create(std::move(socks->first), cfg);
  if (!link) die(link.error().message);
  h->link = std::move(*link);
  std::mutex m;
  std::condition_variable cv;
  int found = 0;
  Host* hp = h.get();
  h->link->device().set_name_service_handler(
      [&, hp](amp::rpmsg::Device&, std::string_view name, std::uint32_t addr) {
        std::lock_guard lock(m);
        if (name == "bench-echo") hp->echo_addr = addr, ++found;
        if (name == "bench-sink") hp->sink_addr = addr, ++found;
        cv.notify_all();
      });
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  for (;;) {
    {
      std::unique_lock lock(m);
      if (found == 2) break;
      if (cfg.own_thread) cv.wait_until(lock, deadline);
    }
    if (!cfg.own_thread) (void)h->link->poll_events(1ms);
    if (std::chrono::steady_clock::now() > deadline) die("the remote's services were not announced");
  }
  h->link->device().set_name_service_handler(nullptr);
  auto& dev = h->link->device();
  if (!ok(dev.create_endpoint(h->echo, "", amp::rpmsg::kAddrAny, h->echo_addr,
                              [hp](Endpoint& ep, const Message&) {
                                // One clock read per round trip, nothing else between the echo and the
                                // next send (samples has room reserved).
                                const std::uint64_t now = monotonic_ns();
                                hp->samples.push_back(static_cast<double>(now - hp->t_sent));
                                if (hp->remaining.fetch_sub(1) > 1) {
                                  hp->t_sent = now;
                                  (void)ep.send(hp->payload);
                                } else {
                                  std::lock_guard lock(hp->m);
                                  hp->cv.notify_all();
                                }
                              })) ||
      !ok(dev.create_endpoint(h->sink, "", amp::rpmsg::kAddrAny, h->sink_addr,
                              [hp](Endpoint&, const Message& msg) {
                                std::lock_guard lock(hp->m);
                                if (msg.payload.size() == 8)
                                  std::memcpy(&hp->sink_count, msg.payload.data(), 8);
                                hp->sink_done = true;
                                hp->cv.notify_all();
                              }))) {
    die("creating endpoints");
  }
  return h;
}

void stop_host(Host& h) {
  h.echo.destroy();
  h.sink.destroy();
  h.link.reset();
  int status = 0;
  waitpid(h.remote, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) die("the remote failed");
}

/// Waits for `done` while driving the link if the host has no link thread.
template <class Pred>
void wait_for(Host& h, Pred done) {
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  const bool own = h.link->notify_mode() != NotifyMode::kPoll;
  for (;;) {
    {
      std::unique_lock lock(h.m);
      if (done()) return;
      if (own) h.cv.wait_for(lock, 100ms);
    }
    if (!own) (void)h.link->device().process();
    if (std::chrono::steady_clock::now() > deadline) die("timed out waiting for the remote");
  }
}

ModeResult measure(Host& h, NotifyMode mode, std::size_t size, int iterations, int messages) {
  ModeResult r;
  r.mode = mode;
  r.payload = size;
  h.payload.assign(size, std::byte{0x5a});
  // Round trips (after a warm-up).
  for (int pass = 0; pass < 2; ++pass) {
    {
      std::lock_guard lock(h.m);
      h.samples.clear();
      h.samples.reserve(static_cast<std::size_t>(iterations) + 1);
      h.remaining = pass == 0 ? 200 : iterations;
      h.t_sent = monotonic_ns();
    }
    if (!ok(h.echo.send(h.payload))) die("send");
    wait_for(h, [&] { return h.remaining == 0; });
  }
  {
    std::lock_guard lock(h.m);
    r.rtt = Latency::of(h.samples);
  }
  // One-way throughput: `messages` back to back, then the end marker; the remote answers with its count.
  // A first, untimed pass of a tenth as many warms caches and branch predictors on both sides.
  const bool own = mode != NotifyMode::kPoll;
  auto burst = [&](int count) {
    {
      std::lock_guard lock(h.m);
      h.sink_done = false;
    }
    const std::uint64_t t0 = monotonic_ns();
    for (int i = 0; i < count; ++i) {
      if (own) {
        if (!ok(h.sink.send(h.payload, 10'000'000'000))) die("throughput send");
      } else {
        while (h.sink.try_send(h.payload) == Status::kWouldBlock) amp::metal::cpu_relax();
      }
    }
    const std::byte end = kEndMarker;
    if (!ok(h.sink.send(std::span(&end, 1), 10'000'000'000))) die("end marker");
    wait_for(h, [&] { return h.sink_done; });
    if (h.sink_count != static_cast<std::uint64_t>(count)) {
      die("the remote counted " + std::to_string(h.sink_count) + " of " + std::to_string(count) +
          " messages");
    }
    return static_cast<double>(monotonic_ns() - t0) / 1e9;
  };
  (void)burst(std::max(1, messages / 10));
  const double secs = burst(messages);
  r.msgs_per_s = messages / secs;
  r.mb_per_s = r.msgs_per_s * static_cast<double>(size) / 1e6;
  return r;
}

/// CPU used by both processes while a blocking link sits idle for `seconds`.
double idle_cpu_percent(Host& h, double seconds) {
  rusage before{}, after{};
  getrusage(RUSAGE_SELF, &before);
  const double remote_before = cpu_seconds(h.remote);
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  getrusage(RUSAGE_SELF, &after);
  const double remote_after = cpu_seconds(h.remote);
  auto secs = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  const double self =
      secs(after.ru_utime) + secs(after.ru_stime) - secs(before.ru_utime) - secs(before.ru_stime);
  return 100.0 * (self + remote_after - remote_before) / seconds;
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--qemu") == 0) return amp::bench::qemu_main(argc, argv);
  }
  bool json = false;
  int iterations = 20000;
  int messages = 200000;
  int repeat = 3;
  int buffer_size = static_cast<int>(amp::rpmsg::kDefaultBufferSize);
  std::string only;  // --notify: a comma-separated subset of the modes
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto num = [&](int& out) {
      if (i + 1 >= argc) die(a + " needs a number");
      out = std::atoi(argv[++i]);
      if (out <= 0) die(a + " needs a positive number");
    };
    if (a == "--json") {
      json = true;
    } else if (a == "--iterations") {
      num(iterations);
    } else if (a == "--messages") {
      num(messages);
    } else if (a == "--repeat") {
      num(repeat);
    } else if (a == "--buffer-size") {
      num(buffer_size);
      if (!amp::rpmsg::valid_buffer_size(static_cast<std::uint32_t>(buffer_size)))
        die("--buffer-size must be a multiple of 8 in [24, 65544]");
    } else if (a == "--notify") {
      if (i + 1 >= argc) die("--notify needs a list, e.g. poll,eventfd");
      only = argv[++i];
    } else if (a == "--help" || a == "-h") {
      std::printf(
          "usage: amp-bench [--json] [--iterations N] [--messages N] [--repeat R] [--notify "
          "poll-1t,poll,adaptive,eventfd,socket] [--buffer-size N]\n"
          "       amp-bench --qemu FIRMWARE.elf [--raw RAW.elf] ... (amp-bench --qemu --help)\n");
      return 0;
    } else {
      die("unknown argument " + a);
    }
  }
  amp::metal::set_log_level(amp::metal::LogLevel::kError);
  std::signal(SIGPIPE, SIG_IGN);

  // Rounds: each measures every variant, each figure right after the raw limits it is compared with (see
  // below). Every figure reported is the median over the rounds; the spread is the min..max of the rounds.
  // A variant: a notification mode, and for polling whether the host is single-threaded (no locks).
  struct Variant {
    NotifyMode mode;
    bool single_threaded;
    std::string name() const {
      return std::string(amp::rpmsg::to_string(mode)) + (single_threaded ? "-1t" : "");
    }
  };
  struct Row {
    Variant variant;
    std::size_t size;
    Runs p50, p99, max, mps, mbps, rtt_ratio, msgs_per_raw, of_memcpy;
  };
  std::vector<Variant> variants;
  for (const Variant v : {Variant{NotifyMode::kPoll, true}, Variant{NotifyMode::kPoll, false},
                          Variant{NotifyMode::kAdaptive, false}, Variant{NotifyMode::kEventFd, false},
                          Variant{NotifyMode::kSocket, false}}) {
    if (only.empty() || ("," + only + ",").find("," + v.name() + ",") != std::string::npos)
      variants.push_back(v);
  }
  // Payloads: 16 and 256 bytes and the MTU (buffer size - 16), as far as the MTU allows.
  const std::size_t mtu = static_cast<std::size_t>(buffer_size) - amp::rpmsg::kHeaderSize;
  std::vector<std::size_t> sizes;
  for (std::size_t size : {std::size_t{16}, std::size_t{256}, mtu}) {
    if (size <= mtu && (sizes.empty() || size > sizes.back())) sizes.push_back(size);
  }
  std::vector<Row> rows;
  for (const Variant& v : variants) {
    for (std::size_t size : sizes) rows.push_back(Row{v, size, {}, {}, {}, {}, {}, {}, {}, {}});
  }
  Runs raw_cl_p50, raw_cl_p99, raw_ev_p50, raw_ev_p99, raw_memcpy;
  std::vector<std::pair<std::string, double>> idle;
  for (int r = 0; r < repeat; ++r) {
    for (auto& row : rows) {
      const Variant& v = row.variant;
      const NotifyMode mode = v.mode;
      // The raw limits right before each measurement (with no link running): on a VM the placement of the
      // two vCPUs, and with it the cost of a cache-line transfer, can change within seconds.
      const Latency cl = raw_cacheline(iterations * 5);
      const Latency ev = raw_eventfd(std::max(200, iterations / 2));
      raw_cl_p50.values.push_back(cl.p50);
      raw_cl_p99.values.push_back(cl.p99);
      raw_ev_p50.values.push_back(ev.p50);
      raw_ev_p99.values.push_back(ev.p99);
      // Polling modes compare with the cache-line ping-pong, blocking ones with the eventfd ping-pong.
      const double raw = (mode == NotifyMode::kPoll || mode == NotifyMode::kAdaptive) ? cl.p50 : ev.p50;
      // Bulk rows (the MTU of a buffer of 4 KiB or more): also against one core's memcpy of that size over
      // a working set as large as the link's 256 receive buffers, measured right before.
      const bool bulk = row.size == mtu && buffer_size >= 4096;
      const double memcpy_mbps = bulk ? raw_memcpy_mb_per_s(row.size, 256) : 0;
      if (bulk) raw_memcpy.values.push_back(memcpy_mbps);
      auto host = start_host(mode, v.single_threaded, static_cast<std::uint32_t>(buffer_size));
      const ModeResult m = measure(*host, mode, row.size, iterations, messages);
      row.p50.values.push_back(m.rtt.p50);
      row.p99.values.push_back(m.rtt.p99);
      row.max.values.push_back(m.rtt.max);
      row.mps.values.push_back(m.msgs_per_s);
      row.mbps.values.push_back(m.mb_per_s);
      row.rtt_ratio.values.push_back(m.rtt.p50 / raw);
      row.msgs_per_raw.values.push_back(m.msgs_per_s * raw / 1e9);
      if (bulk) row.of_memcpy.values.push_back(m.mb_per_s / memcpy_mbps);
      if (r == 0 && row.size == 16 && !v.single_threaded)
        idle.emplace_back(v.name(), idle_cpu_percent(*host, 2.0));
      stop_host(*host);
    }
  }

  char cpu_model[256] = "unknown";
  if (FILE* f = std::fopen("/proc/cpuinfo", "r")) {
    char line[512];
    while (std::fgets(line, sizeof line, f)) {
      if (std::strncmp(line, "model name", 10) == 0) {
        const char* c = std::strchr(line, ':');
        if (c) std::snprintf(cpu_model, sizeof cpu_model, "%s", c + 2);
        cpu_model[std::strcspn(cpu_model, "\n")] = '\0';
        break;
      }
    }
    std::fclose(f);
  }

  if (json) {
    std::printf(
        "{\"machine\":{\"cpu\":\"%s\",\"cpus\":%u},\"rounds\":%d,\"iterations\":%d,\"messages\":%d,"
        "\"buffer_size\":%d,\n",
        cpu_model, std::thread::hardware_concurrency(), repeat, iterations, messages, buffer_size);
    if (!raw_memcpy.values.empty()) {
      std::printf(" \"raw_memcpy_mb_per_s\":{\"median\":%.0f,\"min\":%.0f,\"max\":%.0f},\n",
                  raw_memcpy.median(), raw_memcpy.lo(), raw_memcpy.hi());
    }
    std::printf(
        " \"raw\":{\"cacheline_rtt_ns\":{\"p50\":%.0f,\"p99\":%.0f,\"min_p50\":%.0f,\"max_p50\":%.0f},"
        "\"eventfd_rtt_ns\":{\"p50\":%.0f,\"p99\":%.0f,\"min_p50\":%.0f,\"max_p50\":%.0f}},\n \"amp\":[",
        raw_cl_p50.median(), raw_cl_p99.median(), raw_cl_p50.lo(), raw_cl_p50.hi(), raw_ev_p50.median(),
        raw_ev_p99.median(), raw_ev_p50.lo(), raw_ev_p50.hi());
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      std::printf(
          "%s\n  {\"notify\":\"%s\",\"payload\":%zu,\"rtt_ns\":{\"p50\":%.0f,\"p99\":%.0f,\"max\":%.0f,"
          "\"min_p50\":%.0f,\"max_p50\":%.0f},\"rtt_p50_vs_raw\":{\"median\":%.2f,\"min\":%.2f,\"max\":%.2f},"
          "\"msgs_per_s\":%.0f,\"mb_per_s\":%.1f,\"msgs_per_raw_rtt\":{\"median\":%.2f,\"min\":%.2f,\"max\":%"
          ".2f}",
          i == 0 ? "" : ",", r.variant.name().c_str(), r.size, r.p50.median(), r.p99.median(), r.max.median(),
          r.p50.lo(), r.p50.hi(), r.rtt_ratio.median(), r.rtt_ratio.lo(), r.rtt_ratio.hi(), r.mps.median(),
          r.mbps.median(), r.msgs_per_raw.median(), r.msgs_per_raw.lo(), r.msgs_per_raw.hi());
      if (!r.of_memcpy.values.empty()) {
        std::printf(",\"of_memcpy\":{\"median\":%.2f,\"min\":%.2f,\"max\":%.2f}", r.of_memcpy.median(),
                    r.of_memcpy.lo(), r.of_memcpy.hi());
      }
      std::printf("}");
    }
    std::printf("],\n \"idle_cpu_percent\":{");
    for (std::size_t i = 0; i < idle.size(); ++i) {
      std::printf("%s\"%s\":%.2f", i == 0 ? "" : ",", idle[i].first.c_str(), idle[i].second);
    }
    std::printf("}}\n");
    return 0;
  }
  std::printf(
      "amp-bench on %s (%u CPUs), host on CPU 0, remote on CPU 1; %d rounds, medians (spread: min..max over "
      "rounds); %d-byte buffers\n\n",
      cpu_model, std::thread::hardware_concurrency(), repeat, buffer_size);
  std::printf(
      "raw limits:  cache-line ping-pong RTT p50 %.0f ns (%.0f..%.0f), p99 %.0f   eventfd ping-pong RTT p50 "
      "%.0f ns (%.0f..%.0f), p99 %.0f\n\n",
      raw_cl_p50.median(), raw_cl_p50.lo(), raw_cl_p50.hi(), raw_cl_p99.median(), raw_ev_p50.median(),
      raw_ev_p50.lo(), raw_ev_p50.hi(), raw_ev_p99.median());
  if (!raw_memcpy.values.empty()) {
    std::printf("raw memcpy:  one core, %zu-byte copies over 256 buffers, %.0f MB/s (%.0f..%.0f)\n\n", mtu,
                raw_memcpy.median(), raw_memcpy.lo(), raw_memcpy.hi());
  }
  std::printf("%-8s %7s  %9s %9s %9s  %16s  %11s  %18s\n", "notify", "payload", "RTT p50", "p99", "max",
              "p50/raw", "msgs/s", "msgs per raw RTT");
  for (const Row& r : rows) {
    char ratio[64], per_rtt[64];
    std::snprintf(ratio, sizeof ratio, "%.2fx (%.2f..%.2f)", r.rtt_ratio.median(), r.rtt_ratio.lo(),
                  r.rtt_ratio.hi());
    std::snprintf(per_rtt, sizeof per_rtt, "%.2f (%.2f..%.2f)", r.msgs_per_raw.median(), r.msgs_per_raw.lo(),
                  r.msgs_per_raw.hi());
    char of_memcpy[64] = "";
    if (!r.of_memcpy.values.empty()) {
      std::snprintf(of_memcpy, sizeof of_memcpy, "  %.0f%% of memcpy (%.0f..%.0f)",
                    100 * r.of_memcpy.median(), 100 * r.of_memcpy.lo(), 100 * r.of_memcpy.hi());
    }
    std::printf("%-8s %5zu B  %6.0f ns %6.0f ns %6.0f ns  %16s  %11.0f  %18s   %.1f MB/s%s\n",
                r.variant.name().c_str(), r.size, r.p50.median(), r.p99.median(), r.max.median(), ratio,
                r.mps.median(), per_rtt, r.mbps.median(), of_memcpy);
  }
  std::printf(
      "\n(p50/raw and msgs per raw RTT: poll and adaptive against the cache-line ping-pong, eventfd and "
      "socket\n"
      " against the eventfd ping-pong, each measured right before. poll-1t: the host drives a\n"
      " single-threaded link, so its rpmsg device takes no locks.)\n\nidle CPU of both processes, 2 s:");
  for (const auto& [name, pct] : idle) std::printf("  %s %.2f%%", name.c_str(), pct);
  std::printf("\n");
  return 0;
}
