// SPDX-License-Identifier: BSD-3-Clause
// amp-ampd-bench: what going through ampd costs. The same native echo firmware (rproc::ProcessRemote,
// eventfd notifications) measured two ways in the same run, rounds alternating:
//   direct  this process is the host: an rpmsg endpoint on the Link, echoes taken in its receive callback;
//   broker  an ampd Broker (tools/ampd) on a thread of this process owns the remote; the measuring client
//           talks to it through its endpoint descriptor (write, then read), as any client process does.
// Round trips: one 16-byte message in flight, p50/p99. Throughput: 16 in flight, each echo sending the next,
// echoes per second. Every echo is checked (its sequence number). Medians over the rounds, spread min..max.
//
//   amp-ampd-bench FIRMWARE [--rounds N] [--iterations N] [--messages N]
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "amp/client/linux/connection.hpp"
#include "amp/metal/log.hpp"
#include "amp/rproc/linux/process.hpp"
#include "broker.hpp"
#include "stats.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kPayload = 16;
constexpr int kWindow = 16;

struct Figures {
  double rtt_p50_ns = 0;
  double rtt_p99_ns = 0;
  double msgs_per_s = 0;
};

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "amp-ampd-bench: %s\n", what.c_str());
  std::exit(1);
}

std::vector<std::byte> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) die("cannot read " + path);
  const std::vector<char> c{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  std::vector<std::byte> b(c.size());
  if (!c.empty()) std::memcpy(b.data(), c.data(), c.size());
  return b;
}

void put_seq(std::byte* p, std::uint64_t seq) {
  std::memset(p, 0, kPayload);
  std::memcpy(p, &seq, sizeof seq);
}
std::uint64_t get_seq(const std::byte* p) {
  std::uint64_t seq = 0;
  std::memcpy(&seq, p, sizeof seq);
  return seq;
}

/// Direct: this process is the remote's host.
Figures run_direct(const std::vector<std::byte>& firmware, int iterations, int messages) {
  amp::rproc::ProcessConfig pc;
  pc.name = "amp-echo-firmware";
  amp::rproc::ProcessRemote remote(pc);
  std::mutex m;
  std::condition_variable cv;
  std::uint32_t service = amp::rpmsg::kAddrAny;
  amp::rpmsg::Link* link = nullptr;
  remote.on_link_up([&](amp::rpmsg::Link& l) {
    l.device().set_name_service_handler([&](amp::rpmsg::Device&, std::string_view name, std::uint32_t addr) {
      if (name != "amp-echo") return;
      std::lock_guard lock(m);
      service = addr;
      cv.notify_all();
    });
    std::lock_guard lock(m);
    link = &l;
  });
  if (auto s = remote.start(firmware); !s) die("starting the firmware: " + s.error().message);
  {
    std::unique_lock lock(m);
    if (!cv.wait_for(lock, 10s, [&] { return service != amp::rpmsg::kAddrAny; })) die("no amp-echo");
  }
  // The echoes arrive on the link's thread: count them, check them, and (throughput) send the next.
  struct Counts {
    std::atomic<std::uint64_t> received{0};
    std::atomic<std::uint64_t> wrong{0};
    std::atomic<std::uint64_t> target{0};  // the throughput phase's end; 0 in the round-trip phase
    std::atomic<std::uint64_t> sent{0};
    std::mutex send_mutex;  // a sequence number and its send go together, from either thread
  } n;
  auto send_next = [&n](amp::rpmsg::Endpoint& e) {
    std::lock_guard lock(n.send_mutex);
    std::byte out[kPayload];
    put_seq(out, n.sent.load(std::memory_order_relaxed));
    if (!amp::ok(e.send(out, 1'000'000'000))) die("direct send failed");
    n.sent.fetch_add(1, std::memory_order_release);
  };
  struct Context {
    Counts* n;
    decltype(send_next)* send;
    std::mutex* m;
    std::condition_variable* cv;
  } ctx{&n, &send_next, &m, &cv};
  amp::rpmsg::Endpoint ep;
  const amp::Status created = link->device().create_endpoint(
      ep, "", amp::rpmsg::kAddrAny, service,
      [c = &ctx](amp::rpmsg::Endpoint& self, const amp::rpmsg::Message& msg) {
        const std::uint64_t got = c->n->received.load(std::memory_order_relaxed);
        if (msg.payload.size() != kPayload || get_seq(msg.payload.data()) != got) c->n->wrong.fetch_add(1);
        c->n->received.store(got + 1, std::memory_order_release);
        const std::uint64_t t = c->n->target.load(std::memory_order_relaxed);
        if (t != 0 && c->n->sent.load(std::memory_order_relaxed) < t) (*c->send)(self);
        std::lock_guard lock(*c->m);
        c->cv->notify_all();
      });
  if (!amp::ok(created)) die("endpoint: " + std::string(amp::to_string(created)));
  std::vector<double> rtts;
  rtts.reserve(static_cast<std::size_t>(iterations));
  for (int i = 0; i < iterations; ++i) {
    const auto t0 = Clock::now();
    send_next(ep);
    std::unique_lock lock(m);
    if (!cv.wait_for(lock, 5s, [&] { return n.received.load() == n.sent.load(); })) die("direct: no echo");
    rtts.push_back(
        static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count()));
  }
  // Throughput: `messages` in all, kWindow in flight.
  const std::uint64_t end = n.received.load() + static_cast<std::uint64_t>(messages);
  n.target.store(end);
  const auto t0 = Clock::now();
  for (int i = 0; i < kWindow; ++i) {
    if (n.sent.load() < end) send_next(ep);
  }
  {
    std::unique_lock lock(m);
    if (!cv.wait_for(lock, 60s, [&] { return n.received.load() >= end; })) die("direct: echoes missing");
  }
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  if (n.wrong.load() != 0) die("direct: wrong echoes");
  ep.destroy();
  (void)remote.stop();
  const auto l = amp::bench::Latency::of(rtts);
  return {l.p50, l.p99, static_cast<double>(messages) / secs};
}

/// Broker: an ampd Broker owns the remote; this is one of its clients.
Figures run_broker(const std::string& firmware_path, int iterations, int messages) {
  amp::ampd::Config c;
  c.socket = "@amp-ampd-bench-" + std::to_string(::getpid());
  amp::ampd::RemoteConfig r;
  r.name = "echo";
  r.firmware = firmware_path;
  c.remotes.push_back(r);
  auto b = amp::ampd::Broker::create(c);
  if (!b) die(b.error().message);
  if (auto s = (*b)->start(); !s) die(s.error().message);
  std::thread loop([&] { (void)(*b)->run(); });
  auto conn = amp::client::Connection::connect(c.socket, 5s);
  if (!conn) die(conn.error().message);
  if (!conn->wait_for(0, "amp-echo", 10s)) die("no amp-echo through ampd");
  auto ep = conn->open(0, "amp-echo", 5s);
  if (!ep) die(ep.error().message);
  const int fd = ep->fd.get();
  std::uint64_t next_out = 0;
  std::uint64_t next_in = 0;
  auto send_one = [&] {
    std::byte out[kPayload];
    put_seq(out, next_out++);
    if (::send(fd, out, kPayload, MSG_NOSIGNAL) != static_cast<ssize_t>(kPayload)) die("broker: send failed");
  };
  auto recv_one = [&] {
    std::byte in[64];
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 5000) != 1) die("broker: no echo");
    const ssize_t n = ::recv(fd, in, sizeof in, 0);
    if (n != static_cast<ssize_t>(kPayload) || get_seq(in) != next_in) die("broker: wrong echo");
    ++next_in;
  };
  std::vector<double> rtts;
  rtts.reserve(static_cast<std::size_t>(iterations));
  for (int i = 0; i < iterations; ++i) {
    const auto t0 = Clock::now();
    send_one();
    recv_one();
    rtts.push_back(
        static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count()));
  }
  // Throughput: `messages` in all, kWindow in flight.
  const auto t0 = Clock::now();
  const int window = std::min(kWindow, messages);
  for (int i = 0; i < window; ++i) send_one();
  for (int i = window; i < messages; ++i) {
    recv_one();
    send_one();
  }
  for (int i = 0; i < window; ++i) recv_one();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  ep->fd = amp::metal::UniqueFd();
  (*b)->stop();
  loop.join();
  b->reset();
  const auto l = amp::bench::Latency::of(rtts);
  return {l.p50, l.p99, static_cast<double>(messages) / secs};
}

double load_average() {
  double l = 0;
  if (std::FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &l) != 1) l = 0;
    std::fclose(f);
  }
  return l;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: amp-ampd-bench FIRMWARE [--rounds N] [--iterations N] [--messages N]\n");
    return 2;
  }
  const std::string firmware_path = argv[1];
  int rounds = 5;
  int iterations = 5000;
  int messages = 50000;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const int v = std::atoi(argv[i + 1]);
    if (v <= 0) die(a + " wants a positive number");
    if (a == "--rounds")
      rounds = v;
    else if (a == "--iterations")
      iterations = v;
    else if (a == "--messages")
      messages = v;
    else
      die("unknown option " + a);
  }
  amp::metal::set_log_level(amp::metal::LogLevel::kError);
  const auto firmware = read_file(firmware_path);
  std::printf(
      "amp-ampd-bench: %d rounds, %d round trips and %d messages (%d in flight) each, %zu-byte payloads\n",
      rounds, iterations, messages, kWindow, kPayload);
  std::printf("load average (1 min) at the start: %.2f\n", load_average());
  amp::bench::Runs d_rtt, b_rtt, d_rate, b_rate, ratio_rtt, ratio_rate;
  for (int round = 0; round < rounds; ++round) {
    // Alternate which goes first, so that a trend in the machine's load hits both alike.
    Figures d, bf;
    if (round % 2 == 0) {
      d = run_direct(firmware, iterations, messages);
      bf = run_broker(firmware_path, iterations, messages);
    } else {
      bf = run_broker(firmware_path, iterations, messages);
      d = run_direct(firmware, iterations, messages);
    }
    d_rtt.values.push_back(d.rtt_p50_ns);
    b_rtt.values.push_back(bf.rtt_p50_ns);
    d_rate.values.push_back(d.msgs_per_s);
    b_rate.values.push_back(bf.msgs_per_s);
    ratio_rtt.values.push_back(bf.rtt_p50_ns / d.rtt_p50_ns);
    ratio_rate.values.push_back(bf.msgs_per_s / d.msgs_per_s);
    std::printf(
        "round %d: direct RTT p50 %.0f ns (p99 %.0f), %.0f msgs/s; broker RTT p50 %.0f ns (p99 %.0f), %.0f "
        "msgs/s\n",
        round + 1, d.rtt_p50_ns, d.rtt_p99_ns, d.msgs_per_s, bf.rtt_p50_ns, bf.rtt_p99_ns, bf.msgs_per_s);
  }
  std::printf("load average (1 min) at the end: %.2f\n\n", load_average());
  std::printf("                 direct                 broker                 broker/direct\n");
  std::printf(
      "RTT p50    %8.0f ns (%.0f..%.0f)  %8.0f ns (%.0f..%.0f)  %.2fx (%.2f..%.2f)  target <= 1.5x %s\n",
      d_rtt.median(), d_rtt.lo(), d_rtt.hi(), b_rtt.median(), b_rtt.lo(), b_rtt.hi(), ratio_rtt.median(),
      ratio_rtt.lo(), ratio_rtt.hi(), ratio_rtt.median() <= 1.5 ? "met" : "MISSED");
  std::printf("msgs/s     %8.0f (%.0f..%.0f)  %8.0f (%.0f..%.0f)  %.2fx (%.2f..%.2f)  target >= 0.5x %s\n",
              d_rate.median(), d_rate.lo(), d_rate.hi(), b_rate.median(), b_rate.lo(), b_rate.hi(),
              ratio_rate.median(), ratio_rate.lo(), ratio_rate.hi(),
              ratio_rate.median() >= 0.5 ? "met" : "MISSED");
  return 0;
}
