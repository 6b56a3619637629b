// SPDX-License-Identifier: BSD-3-Clause
// amp-bench --qemu: rpmsg round trips and throughput between this host and amp's bare-metal firmware under
// qemu-system-arm (board virt-a15, through the qemu rproc driver: QemuRemote), in interrupt and poll mode,
// next to the raw round trips of the same emulated board, measured in the same run with the raw baseline
// image (firmware/baremetal/bench/raw.cpp):
//  - interrupt mode against the raw doorbell: one byte to the doorbell socket, the guest's interrupt, WFI
//    wake-up and one byte back (the firmware's own doorbell path, without rpmsg);
//  - poll mode against a raw shared-memory ping-pong: the host stores a word in guest RAM, the guest, which
//    spins, stores it into another, and the host, spinning too, sees it.
// Each round measures both modes, each in new QEMUs (as the driver loads every image), so that the machine's
// noise hits raw and rpmsg alike: in interrupt mode the raw QEMU and the firmware's run side by side, their
// round trips in interleaved blocks (the one not measured idles in WFI); in poll mode, where an idle guest
// spins, one after the other, which goes first alternating by round. Every figure is the median over the
// rounds with the min..max of the rounds as its spread; each ratio is taken against the raw figure of its own
// round.
//
//   amp-bench --qemu FIRMWARE.elf [--raw RAW.elf] [--rounds R] [--iterations N] [--messages N] [--window W]
//             [--sizes 16,256,496] [--modes interrupt,poll] [--qemu-binary PATH] [--pin] [--json]
//
// Threads are left to the scheduler unless --pin puts the host's on CPU 0 and QEMU's on CPU 1 (as amp-bench
// places its two processes). QEMU has more than one thread (the vCPU, and the main loop that serves the
// doorbell's socket): pinned, they share a CPU, which on a shared machine made round trips slower and
// noisier than the scheduler's placement.
#include "qemu_bench.hpp"

#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "amp/metal/log.hpp"
#include "amp/metal/platform.hpp"
#include "amp/metal/time.hpp"
#include "amp/rproc/elf.hpp"
#include "amp/rproc/linux/qemu.hpp"
#include "amp/rproc/linux/qemu_process.hpp"
#include "raw_mailbox.hpp"
#include "stats.hpp"

namespace amp::bench {
namespace {

using namespace std::chrono_literals;
using metal::monotonic_ns;
using rpmsg::Endpoint;
using rpmsg::Message;

/// Where the raw image's mailbox is on virt-a15: the start of the board's shared-memory carveout
/// (firmware/baremetal/boards/virt-a15/CMakeLists.txt, SHM_DA).
constexpr metal::DeviceAddress kRawMailboxDa = 0x4080'0000;
/// Targets of the issue: interrupt-mode RTT p50 against the raw doorbell, poll-mode RTT p50 against the raw
/// shared-memory ping-pong.
constexpr double kInterruptTarget = 1.3;
constexpr double kPollTarget = 3.0;
/// Poll mode is about a hundred times faster than interrupt mode: it does this many times the work.
constexpr int kPollScale = 10;
/// Interrupt mode: blocks of round trips per round, raw and rpmsg interleaved.
constexpr int kBlocks = 10;

struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Options {
  std::string firmware;
  std::string raw;
  std::string qemu_binary;
  int rounds = 5;
  int iterations = 2000;  // round trips per size in interrupt mode (poll mode: kPollScale times as many)
  int messages = 5000;    // throughput messages per size in interrupt mode (poll mode: kPollScale times)
  int window = 16;        // messages in flight in the throughput test
  std::vector<std::size_t> sizes{16, 256, 496};
  bool interrupt = true;
  bool poll = true;
  bool json = false;
  bool pin = false;  // host on CPU 0, QEMU on CPU 1 (with at least two CPUs)
};

std::vector<std::byte> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Failure("cannot read " + path);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(bytes.size());
  std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

/// The 1-minute load average.
double load_average() {
  double one = -1;
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &one) != 1) one = -1;
    std::fclose(f);
  }
  return one;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(colon + 2);
    }
  }
  return "unknown";
}

/// Whether the machine has the two CPUs that pinning needs.
bool can_pin() {
  return std::thread::hardware_concurrency() >= 2;
}

cpu_set_t one_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(static_cast<std::size_t>(cpu), &set);
  return set;
}

/// Puts every thread of process `pid` on `cpu` (threads it makes later inherit it).
void pin_process(pid_t pid, int cpu) {
  const cpu_set_t set = one_cpu(cpu);
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    const pid_t tid = static_cast<pid_t>(std::strtol(task.path().filename().c_str(), nullptr, 10));
    if (tid > 0) (void)::sched_setaffinity(tid, sizeof set, &set);
  }
}

// ---- The raw baselines -----------------------------------------------------------------------------------

/// The raw image in a new QEMU, started in `poll` or doorbell mode, answering once it says it is ready.
class RawQemu {
 public:
  RawQemu(const Options& o, std::span<const std::byte> image, bool poll) {
    auto elf = rproc::ElfImage::parse(image);
    if (!elf) throw Failure("the raw image: " + std::string(rproc::to_string(elf.error())));
    const rproc::QemuBoard board = rproc::QemuBoard::virt_a15();
    rproc::QemuLaunch launch;
    launch.binary = o.qemu_binary.empty() ? board.binary : o.qemu_binary;
    launch.package = board.package;
    launch.machine = board.machine;
    launch.cpu = board.cpu;
    launch.ram_base = board.ram_base;
    launch.ram_size = board.ram_size;
    launch.entry = elf->entry();
    auto qemu = rproc::QemuProcess::launch(launch);
    if (!qemu) throw Failure("raw image: " + qemu.error().message);
    qemu_ = std::move(*qemu);
    if (o.pin && can_pin()) pin_process(qemu_->pid(), 1);
    const std::array<metal::IoRegion, 1> ram{qemu_->ram()};
    if (auto loaded = rproc::load(*elf, ram, {.machine = board.elf_machine}); !loaded)
      throw Failure("loading the raw image: " + std::string(rproc::to_string(loaded.error())));
    mailbox_ = static_cast<std::size_t>(kRawMailboxDa - board.ram_base);
    if (!ok(ram[0].store<std::uint32_t>(mailbox_ + firmware::raw::kModeAt,
                                        poll ? firmware::raw::kModePoll : firmware::raw::kModeDoorbell)))
      throw Failure("the raw image's mailbox is outside guest RAM");
    if (auto r = qemu_->qmp().execute("cont", 5s); !r)
      throw Failure("raw image: QMP cont: " + r.error().message);
    // Ready: the image says so in its mailbox once it answers.
    const std::uint32_t ready = poll ? firmware::raw::kReadyPoll : firmware::raw::kReadyDoorbell;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (word(firmware::raw::kReadyAt).load(std::memory_order_acquire) != ready) {
      pollfd ended{qemu_->pidfd(), POLLIN, 0};
      if (::poll(&ended, 1, 1) > 0) throw Failure("the raw image's QEMU ended: " + qemu_->reap() + said());
      if (std::chrono::steady_clock::now() > deadline)
        throw Failure("the raw image did not say it is ready within 10 s" + said());
    }
  }
  ~RawQemu() { (void)qemu_->stop(2s); }
  RawQemu(const RawQemu&) = delete;
  RawQemu& operator=(const RawQemu&) = delete;

  /// `warmup` then `n` doorbell round trips, one byte in flight, their times appended to `samples`: the
  /// host writes a byte and waits (poll(2), as the qemu driver's thread waits in epoll) for the guest's
  /// answer.
  void doorbell(int warmup, int n, std::vector<double>& samples) {
    const int fd = qemu_->doorbell();
    (void)rproc::drain_doorbell(fd);
    for (int i = 0; i < warmup + n; ++i) {
      const std::uint64_t t0 = monotonic_ns();
      const char ring = 'p';
      if (::send(fd, &ring, 1, MSG_DONTWAIT | MSG_NOSIGNAL) != 1)
        throw Failure(std::string("raw doorbell: send: ") + std::strerror(errno));
      for (;;) {
        pollfd p{fd, POLLIN, 0};
        const int r = ::poll(&p, 1, 2000);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) throw Failure("raw doorbell: no answer within 2 s" + said());
        char bytes[64];
        const ssize_t got = ::recv(fd, bytes, sizeof bytes, MSG_DONTWAIT);
        if (got > 0) {
          extra_bytes_ += static_cast<std::uint64_t>(got - 1);
          break;
        }
        if (got == 0) throw Failure("raw doorbell: QEMU closed the socket" + said());
        if (errno != EAGAIN && errno != EINTR)
          throw Failure(std::string("raw doorbell: recv: ") + std::strerror(errno));
      }
      if (i >= warmup) samples.push_back(static_cast<double>(monotonic_ns() - t0));
    }
  }

  /// `warmup` then `n` shared-memory round trips, appended to `samples`: store ping, spin until pong has its
  /// value. One clock read per round trip, as in the rpmsg figure.
  void ping_pong(int warmup, int n, std::vector<double>& samples) {
    auto ping = word(firmware::raw::kPingAt);
    auto pong = word(firmware::raw::kPongAt);
    std::uint32_t seq = pong.load(std::memory_order_acquire);
    for (int i = 0; i < warmup + n; ++i) {
      ++seq;
      const std::uint64_t t0 = monotonic_ns();
      ping.store(seq, std::memory_order_release);
      std::uint32_t spins = 0;
      while (pong.load(std::memory_order_acquire) != seq) {
        metal::cpu_relax();
        if ((++spins & 0xFFFF) == 0 && monotonic_ns() - t0 > 2'000'000'000)
          throw Failure("raw ping-pong: no answer within 2 s" + said());
      }
      const std::uint64_t t1 = monotonic_ns();
      if (i >= warmup) samples.push_back(static_cast<double>(t1 - t0));
    }
  }

  std::uint64_t extra_bytes() const { return extra_bytes_; }

 private:
  std::atomic_ref<std::uint32_t> word(std::size_t at) const {
    auto w = qemu_->ram().atomic<std::uint32_t>(mailbox_ + at);
    if (!w) throw Failure("the raw image's mailbox is outside guest RAM");
    return *w;
  }
  std::string said() const { return "\n--- the guest's console ---\n" + qemu_->console(2048); }

  std::unique_ptr<rproc::QemuProcess> qemu_;
  std::size_t mailbox_ = 0;
  std::uint64_t extra_bytes_ = 0;
};

// ---- rpmsg against amp-echo ------------------------------------------------------------------------------

/// What the host's echo endpoint shares with its receive callback (which runs on the vdev host's thread).
struct EchoState {
  std::mutex m;
  std::condition_variable cv;
  std::uint32_t echo_addr = 0;
  bool announced = false;
  bool down = false;
  bool done = false;
  std::string failure;
  // Set by the main thread before the first send of a test; the device's rings order them for the callback.
  std::vector<std::byte> payload;
  bool throughput = false;
  // Round trips: the callback stamps the echo and sends the next one at once.
  std::vector<double> samples;
  std::atomic<int> remaining{0};
  std::uint64_t t_sent = 0;
  // Throughput: `total` echoes with a window in flight; each echo sends one more while some are left.
  int total = 0;
  std::atomic<int> to_send{0};
  std::atomic<int> received{0};
  std::uint64_t t_end = 0;
  std::atomic<std::uint64_t> bad{0};  // echoes whose bytes differ from what was sent

  void finish(std::string why = {}) {
    std::lock_guard lock(m);
    if (failure.empty()) failure = std::move(why);
    done = true;
    cv.notify_all();
  }
};

class EchoRemote {
 public:
  EchoRemote(const Options& o, const std::vector<std::byte>& firmware, bool poll) {
    rproc::QemuConfig c;
    c.poll = poll;
    c.binary = o.qemu_binary;
    c.timeout = 10s;
    remote_ = std::make_unique<rproc::QemuRemote>(std::move(c));
    remote_->set_recovery(false);
    EchoState* st = &st_;
    remote_->on_link_up([st](rpmsg::Device& dev) {
      {
        std::lock_guard lock(st->m);
        st->down = false;
      }
      dev.set_name_service_handler([st](rpmsg::Device&, std::string_view name, std::uint32_t addr) {
        if (name != "amp-echo") return;
        std::lock_guard lock(st->m);
        st->echo_addr = addr;
        st->announced = true;
        st->cv.notify_all();
      });
    });
    remote_->on_link_down([this](rpmsg::Device&) {
      {
        std::lock_guard lock(st_.m);
        st_.down = true;
        if (st_.failure.empty()) st_.failure = "the rpmsg link went down";
        st_.done = true;
        st_.cv.notify_all();
      }
      std::lock_guard sending(sending_);
      ep_.destroy();  // before the device goes
    });
    if (auto r = remote_->load(firmware); !r) throw Failure("loading the firmware: " + r.error().message);
    if (o.pin && can_pin()) pin_process(remote_->driver().pid(), 1);
    if (auto r = remote_->start_loaded(); !r) throw Failure("starting the firmware: " + r.error().message);
    {
      std::unique_lock lock(st_.m);
      if (!st_.cv.wait_for(lock, 10s, [&] { return st_.announced || st_.down; }) || !st_.announced)
        throw Failure("the firmware did not announce amp-echo within 10 s" + said());
    }
    rpmsg::Device* dev = remote_->driver().device();
    if (dev == nullptr) throw Failure("no rpmsg device");
    mtu_ = dev->payload_size();
    std::lock_guard sending(sending_);
    const Status s = dev->create_endpoint(ep_, "", rpmsg::kAddrAny, st_.echo_addr,
                                          [st](Endpoint& ep, const Message& msg) { on_echo(*st, ep, msg); });
    if (!ok(s)) throw Failure(std::string("create_endpoint: ") + to_string(s));
  }
  ~EchoRemote() {
    {
      std::lock_guard sending(sending_);
      ep_.destroy();
    }
    (void)remote_->stop();
  }
  EchoRemote(const EchoRemote&) = delete;
  EchoRemote& operator=(const EchoRemote&) = delete;

  std::uint32_t mtu() const { return mtu_; }

  /// `warmup` then `n` round trips of `size` bytes, one in flight, their times appended to `samples`.
  void round_trips(std::size_t size, int warmup, int n, std::vector<double>& samples) {
    set_payload(size);
    for (const int count : {warmup, n}) {
      if (count == 0) continue;
      {
        std::lock_guard lock(st_.m);
        st_.throughput = false;
        st_.samples.clear();
        st_.samples.reserve(static_cast<std::size_t>(count) + 1);
        st_.remaining = count;
        st_.done = false;
        st_.t_sent = monotonic_ns();
      }
      send_first(1);
      wait();
    }
    samples.insert(samples.end(), st_.samples.begin(), st_.samples.end());
    check_echoes();
  }

  /// Echoes per second of `messages` messages of `size` bytes with `window` in flight, after an untimed pass
  /// of a tenth as many.
  double throughput(std::size_t size, int messages, int window) {
    set_payload(size);
    double per_s = 0;
    for (const int n : {std::max(window, messages / 10), messages}) {
      const int w = std::min(window, n);
      {
        std::lock_guard lock(st_.m);
        st_.throughput = true;
        st_.total = n;
        st_.received = 0;
        st_.to_send = n - w;
        st_.done = false;
      }
      const std::uint64_t t0 = monotonic_ns();
      send_first(w);
      wait();
      per_s = static_cast<double>(n) / (static_cast<double>(st_.t_end - t0) / 1e9);
    }
    check_echoes();
    return per_s;
  }

 private:
  static void on_echo(EchoState& st, Endpoint& ep, const Message& msg) {
    const std::uint64_t now = monotonic_ns();
    // Checked after the next send (out of the measured path) but before the test is declared done (the
    // main thread then changes the payload).
    auto check = [&] {
      if (msg.payload.size() != st.payload.size() ||
          std::memcmp(msg.payload.data(), st.payload.data(), st.payload.size()) != 0)
        st.bad.fetch_add(1);
    };
    Status s = Status::kOk;
    if (!st.throughput) {
      st.samples.push_back(static_cast<double>(now - st.t_sent));
      const bool last = st.remaining.fetch_sub(1) <= 1;
      if (!last) {
        st.t_sent = now;
        s = ep.send(st.payload, 1'000'000'000);
      }
      check();
      if (!ok(s)) st.finish(std::string("send: ") + to_string(s));
      if (last) st.finish();
    } else {
      if (st.to_send.fetch_sub(1) > 0) s = ep.send(st.payload, 1'000'000'000);
      check();
      if (!ok(s)) st.finish(std::string("send: ") + to_string(s));
      if (st.received.fetch_add(1) + 1 == st.total) {
        st.t_end = now;
        st.finish();
      }
    }
  }

  void set_payload(std::size_t size) {
    if (size > mtu_) throw Failure("a payload of " + std::to_string(size) + " bytes is beyond the MTU");
    st_.payload.resize(size);
    for (std::size_t i = 0; i < size; ++i)
      st_.payload[i] = std::byte(static_cast<std::uint8_t>(i * 7 + size));
  }

  void check_echoes() const {
    if (const std::uint64_t bad = st_.bad.load(); bad != 0)
      throw Failure(std::to_string(bad) + " echoes differed from what was sent");
  }

  void send_first(int count) {
    std::lock_guard sending(sending_);
    for (int i = 0; i < count; ++i) {
      if (const Status s = ep_.send(st_.payload, 1'000'000'000); !ok(s))
        throw Failure(std::string("send: ") + to_string(s) + said());
    }
  }

  void wait() {
    std::unique_lock lock(st_.m);
    if (!st_.cv.wait_for(lock, 60s, [&] { return st_.done; })) throw Failure("no echo within 60 s" + said());
    if (!st_.failure.empty()) throw Failure(st_.failure + said());
  }

  std::string said() const {
    return "\n--- the firmware's trace ---\n" + remote_->driver().trace() + "--- QEMU's output ---\n" +
           remote_->driver().qemu_output();
  }

  EchoState st_;
  std::mutex sending_;  // the main thread's sends against the link-down's destroy
  Endpoint ep_;
  std::unique_ptr<rproc::QemuRemote> remote_;  // after ep_: stopped (link down) before ep_ is destroyed
  std::uint32_t mtu_ = 0;
};

// ---- The run ---------------------------------------------------------------------------------------------

struct RawRow {
  Runs p50, p99, max;
};
struct EchoRow {
  bool poll = false;
  std::size_t size = 0;
  Runs p50, p99, max, ratio, mps, mbps;
};

std::vector<std::size_t> parse_sizes(const std::string& text) {
  std::vector<std::size_t> sizes;
  std::size_t at = 0;
  while (at <= text.size()) {
    const std::size_t comma = std::min(text.find(',', at), text.size());
    const std::string item = text.substr(at, comma - at);
    char* end = nullptr;
    const unsigned long v = std::strtoul(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v == 0 || v > 65536)
      throw Failure("--sizes: bad size '" + item + "'");
    sizes.push_back(v);
    at = comma + 1;
  }
  return sizes;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw Failure(a + " needs a value");
      return argv[++i];
    };
    auto number = [&](int& out) {
      const std::string v = value();
      char* end = nullptr;
      const long n = std::strtol(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || n <= 0 || n > 100'000'000)
        throw Failure(a + " needs a positive number");
      out = static_cast<int>(n);
    };
    if (a == "--qemu") {
      o.firmware = value();
    } else if (a == "--raw") {
      o.raw = value();
    } else if (a == "--qemu-binary") {
      o.qemu_binary = value();
    } else if (a == "--rounds" || a == "--repeat") {
      number(o.rounds);
    } else if (a == "--iterations") {
      number(o.iterations);
    } else if (a == "--messages") {
      number(o.messages);
    } else if (a == "--window") {
      number(o.window);
    } else if (a == "--sizes") {
      o.sizes = parse_sizes(value());
    } else if (a == "--modes") {
      const std::string m = "," + value() + ",";
      o.interrupt = m.find(",interrupt,") != std::string::npos;
      o.poll = m.find(",poll,") != std::string::npos;
      if (!o.interrupt && !o.poll) throw Failure("--modes: interrupt, poll or both");
    } else if (a == "--json") {
      o.json = true;
    } else if (a == "--pin") {
      o.pin = true;
    } else {
      throw Failure("unknown argument " + a +
                    " (with --qemu: --raw, --rounds, --iterations, --messages, "
                    "--window, --sizes, --modes, --qemu-binary, --pin, --json)");
    }
  }
  if (o.window > 32) throw Failure("--window: at most 32 (the vrings have 64 entries)");
  if (o.raw.empty()) {
    // Next to the firmware, as the build puts it.
    o.raw = (std::filesystem::path(o.firmware).parent_path() / "amp-firmware-virt-a15-raw.elf").string();
  }
  return o;
}

void print_usage() {
  std::printf(
      "usage: amp-bench --qemu FIRMWARE.elf [--raw RAW.elf] [--rounds R] [--iterations N] [--messages N]\n"
      "                 [--window W] [--sizes 16,256,496] [--modes interrupt,poll] [--qemu-binary PATH]\n"
      "                 [--pin] [--json]\n"
      "  FIRMWARE.elf: amp's bare-metal firmware for virt-a15 (its amp-echo service); RAW.elf: the raw\n"
      "  baseline image (default: amp-firmware-virt-a15-raw.elf next to FIRMWARE.elf). Per size N round "
      "trips\n"
      "  (default 2000) and N messages with W in flight (default 5000, 16) in interrupt mode, %d times as "
      "many\n"
      "  in poll mode; R rounds (default 5), new QEMUs each round. --pin: the host on CPU 0, QEMU on CPU "
      "1.\n",
      kPollScale);
}

const char* verdict(double ratio, double target) {
  return ratio <= target ? "met" : "MISSED";
}

int run(const Options& o) {
  // --pin: the host's threads on CPU 0, QEMU's on CPU 1 (moved there once started), the same placement for
  // raw and rpmsg.
  const bool pinned = o.pin && can_pin();
  if (pinned) {
    const cpu_set_t set = one_cpu(0);
    (void)::sched_setaffinity(0, sizeof set, &set);
  }
  const std::vector<std::byte> firmware = read_file(o.firmware);
  const std::vector<std::byte> raw = read_file(o.raw);
  RawRow raw_doorbell, raw_shm;
  std::vector<EchoRow> rows;
  for (const bool poll : {false, true}) {
    if ((poll && !o.poll) || (!poll && !o.interrupt)) continue;
    for (const std::size_t size : o.sizes) {
      EchoRow r;
      r.poll = poll;
      r.size = size;
      rows.push_back(std::move(r));
    }
  }
  Runs load;
  const double load_start = load_average();
  std::uint64_t extra_bytes = 0;
  const std::uint64_t t_start = monotonic_ns();
  for (int round = 0; round < o.rounds; ++round) {
    load.values.push_back(load_average());
    for (const bool poll : {false, true}) {
      if ((poll && !o.poll) || (!poll && !o.interrupt)) continue;
      const int scale = poll ? kPollScale : 1;
      const int n = o.iterations * scale;
      const int warmup = std::max(10, o.iterations / 10) * scale;
      std::vector<double> raw_samples;
      std::vector<std::vector<double>> echo_samples(o.sizes.size());
      std::vector<double> per_s(o.sizes.size());
      raw_samples.reserve(static_cast<std::size_t>(n));
      if (!poll) {
        // Both QEMUs at once, their round trips in kBlocks interleaved blocks (which goes first alternates):
        // the one not measured idles in WFI and its host thread in epoll, so it costs the other nothing.
        RawQemu q(o, raw, false);
        EchoRemote remote(o, firmware, false);
        for (int b = 0; b < kBlocks; ++b) {
          const int first = b == 0 ? warmup : 0;
          const int count = n / kBlocks + (b < n % kBlocks ? 1 : 0);
          auto do_raw = [&] { q.doorbell(first, count, raw_samples); };
          auto do_echo = [&] {
            for (std::size_t i = 0; i < o.sizes.size(); ++i)
              remote.round_trips(o.sizes[i], first, count, echo_samples[i]);
          };
          if ((round + b) % 2 == 0) {
            do_raw();
            do_echo();
          } else {
            do_echo();
            do_raw();
          }
        }
        for (std::size_t i = 0; i < o.sizes.size(); ++i)
          per_s[i] = remote.throughput(o.sizes[i], o.messages * scale, o.window);
        extra_bytes += q.extra_bytes();
      } else {
        // One QEMU at a time (an idle one would spin too), which goes first alternating by round.
        auto do_raw = [&] {
          RawQemu q(o, raw, true);
          q.ping_pong(warmup, n, raw_samples);
        };
        auto do_echo = [&] {
          EchoRemote remote(o, firmware, true);
          for (std::size_t i = 0; i < o.sizes.size(); ++i) {
            remote.round_trips(o.sizes[i], warmup, n, echo_samples[i]);
            per_s[i] = remote.throughput(o.sizes[i], o.messages * scale, o.window);
          }
        };
        if (round % 2 == 0) {
          do_raw();
          do_echo();
        } else {
          do_echo();
          do_raw();
        }
      }
      const Latency raw_rtt = Latency::of(std::move(raw_samples));
      RawRow& rr = poll ? raw_shm : raw_doorbell;
      rr.p50.values.push_back(raw_rtt.p50);
      rr.p99.values.push_back(raw_rtt.p99);
      rr.max.values.push_back(raw_rtt.max);
      std::size_t k = 0;
      for (EchoRow& row : rows) {
        if (row.poll != poll) continue;
        const Latency rtt = Latency::of(std::move(echo_samples[k]));
        row.p50.values.push_back(rtt.p50);
        row.p99.values.push_back(rtt.p99);
        row.max.values.push_back(rtt.max);
        row.ratio.values.push_back(rtt.p50 / raw_rtt.p50);
        row.mps.values.push_back(per_s[k]);
        row.mbps.values.push_back(per_s[k] * static_cast<double>(row.size) / 1e6);
        ++k;
      }
    }
  }
  const double seconds = static_cast<double>(monotonic_ns() - t_start) / 1e9;
  load.values.push_back(load_average());
  const double load_end = load_average();
  const std::string cpu = cpu_model();
  const unsigned cpus = std::thread::hardware_concurrency();

  auto target_of = [](const EchoRow& r) { return r.poll ? kPollTarget : kInterruptTarget; };
  if (o.json) {
    auto runs = [](const Runs& r) {
      char b[128];
      std::snprintf(b, sizeof b, "{\"median\":%.6g,\"min\":%.6g,\"max\":%.6g}", r.median(), r.lo(), r.hi());
      return std::string(b);
    };
    auto raw_json = [&](const RawRow& r) {
      return "{\"p50\":" + runs(r.p50) + ",\"p99\":" + runs(r.p99) + ",\"max\":" + runs(r.max) + "}";
    };
    std::printf(
        "{\"machine\":{\"cpu\":\"%s\",\"cpus\":%u},\"load_average\":{\"start\":%.2f,\"end\":%.2f,\"min\":%."
        "2f,"
        "\"max\":%.2f},\"seconds\":%.1f,\n \"rounds\":%d,\"iterations\":%d,\"messages\":%d,\"window\":%d,"
        "\"poll_scale\":%d,\"pinned\":%s,\"raw_doorbell_extra_bytes\":%llu,\n",
        cpu.c_str(), cpus, load_start, load_end, load.lo(), load.hi(), seconds, o.rounds, o.iterations,
        o.messages, o.window, kPollScale, pinned ? "true" : "false",
        static_cast<unsigned long long>(extra_bytes));
    std::printf(" \"raw\":{");
    bool first = true;
    if (o.interrupt) {
      std::printf("\"doorbell_rtt_ns\":%s", raw_json(raw_doorbell).c_str());
      first = false;
    }
    if (o.poll) std::printf("%s\"shm_rtt_ns\":%s", first ? "" : ",", raw_json(raw_shm).c_str());
    std::printf("},\n \"rpmsg\":[");
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const EchoRow& r = rows[i];
      std::printf(
          "%s\n  {\"mode\":\"%s\",\"payload\":%zu,\"rtt_ns\":{\"p50\":%s,\"p99\":%s,\"max\":%s},"
          "\"rtt_p50_vs_raw\":%s,\"target\":%.1f,\"met\":%s,\"msgs_per_s\":%s,\"mb_per_s\":%s}",
          i == 0 ? "" : ",", r.poll ? "poll" : "interrupt", r.size, runs(r.p50).c_str(), runs(r.p99).c_str(),
          runs(r.max).c_str(), runs(r.ratio).c_str(), target_of(r),
          r.ratio.median() <= target_of(r) ? "true" : "false", runs(r.mps).c_str(), runs(r.mbps).c_str());
    }
    std::printf("]}\n");
    return 0;
  }

  std::printf(
      "amp-bench --qemu: %s under qemu-system-arm (virt-a15), host on %s (%u CPUs)%s\n"
      "%d rounds in %.0f s, new QEMUs each round, raw and rpmsg interleaved; medians (spread: "
      "min..max "
      "over rounds)\nload average (1 min): %.2f at the start, %.2f at the end, %.2f..%.2f over the "
      "rounds\n\n",
      std::filesystem::path(o.firmware).filename().c_str(), cpu.c_str(), cpus,
      pinned ? ", host on CPU 0, QEMU on CPU 1" : ", not pinned", o.rounds, seconds, load_start, load_end,
      load.lo(), load.hi());
  auto print_raw = [](const char* name, const RawRow& r) {
    std::printf("%-36s  %8.0f ns (%.0f..%.0f)  p99 %8.0f ns  max %9.0f ns\n", name, r.p50.median(),
                r.p50.lo(), r.p50.hi(), r.p99.median(), r.max.median());
  };
  if (o.interrupt) print_raw("raw doorbell RTT p50 (1 byte each way)", raw_doorbell);
  if (o.poll) print_raw("raw shared-memory ping-pong RTT p50", raw_shm);
  std::printf("\n%-9s %7s  %9s %9s %10s  %-22s %-15s %22s %9s\n", "mode", "payload", "RTT p50", "p99", "max",
              "p50/raw", "target", "msgs/s (window)", "MB/s");
  for (const EchoRow& r : rows) {
    char ratio[64], target[32], mps[64];
    std::snprintf(ratio, sizeof ratio, "%.2fx (%.2f..%.2f)", r.ratio.median(), r.ratio.lo(), r.ratio.hi());
    std::snprintf(target, sizeof target, "<= %.1fx %s", target_of(r),
                  verdict(r.ratio.median(), target_of(r)));
    std::snprintf(mps, sizeof mps, "%.0f (%.0f..%.0f)", r.mps.median(), r.mps.lo(), r.mps.hi());
    std::printf("%-9s %5zu B  %6.0f ns %6.0f ns %7.0f ns  %-22s %-15s %22s %9.2f\n",
                r.poll ? "poll" : "interrupt", r.size, r.p50.median(), r.p99.median(), r.max.median(), ratio,
                target, mps, r.mbps.median());
  }
  std::printf(
      "\n(interrupt mode against the raw doorbell round trip, poll mode against the raw shared-memory "
      "ping-pong,\n"
      " each ratio against the raw figure of its own round. Throughput: echoes of amp-echo per second with "
      "%d\n"
      " messages in flight; MB/s of payload each way.)\n",
      o.window);
  if (extra_bytes != 0) {
    std::printf("note: the raw image answered %llu doorbell bytes more than it was sent\n",
                static_cast<unsigned long long>(extra_bytes));
  }
  return 0;
}

}  // namespace

int qemu_main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      print_usage();
      return 0;
    }
  }
  metal::set_log_level(metal::LogLevel::kError);
  try {
    const Options o = parse(argc, argv);
    if (o.firmware.empty()) throw Failure("--qemu needs the firmware image");
    for (const std::string& path : {o.firmware, o.raw}) {
      if (!std::filesystem::exists(path)) throw Failure("no such image: " + path);
    }
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "amp-bench: %s\n", e.what());
    return 1;
  }
}

}  // namespace amp::bench
