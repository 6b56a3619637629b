// SPDX-License-Identifier: BSD-3-Clause
// amp-soak: long runs that check what short tests cannot (docs/reliability.md; scripts/soak runs them, CI
// does not).
//
//   amp-soak link [--messages N] [--notify eventfd|socket|poll|adaptive] [--fault KIND]
//     N messages, half each way, through an rpmsg Link between this process (the virtio driver) and a forked
//     remote (the device), both directions at once. Every message is a function of its 64-bit sequence
//     number: its size (1..MTU), its first 8 bytes (the number itself, as many bytes as fit) and the rest (a
//     stream keyed by the number and the direction). The receiver rebuilds the message it expects next and
//     compares every byte, so a lost, duplicated, reordered, misdirected or corrupted message is an error;
//     the first is reported. A quarter of the messages go by zero-copy (get_tx_buffer + send_nocopy).
//
//   amp-soak kill --firmware PATH [--kills N] [--seed S] [--fault leak-fd|leak-child]
//     Runs the native firmware PATH (amp-echo-firmware) under rproc::ProcessRemote with recovery on, keeps
//     a stream of checked echoes flowing, and SIGKILLs the firmware N times at random moments (seeded).
//     Each time: how long from kill(2) until the crash is reported (the Lifecycle's move to crashed), and
//     until the first echo of the recovered firmware has come back checked. At the end: no descriptor
//     and no child process left behind (also checked after every recovery).
//
// Exit status: 0 when every check passed, 1 when one failed, 2 for bad arguments.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "amp/metal/linux/unix_socket.hpp"
#include "amp/metal/log.hpp"
#include "amp/metal/platform.hpp"
#include "amp/metal/time.hpp"
#include "amp/rpmsg/linux/link.hpp"
#include "amp/rproc/linux/process.hpp"

namespace {

using namespace std::chrono_literals;
using amp::Status;
using amp::metal::monotonic_ns;
using amp::rpmsg::Endpoint;
using amp::rpmsg::Link;
using amp::rpmsg::LinkConfig;
using amp::rpmsg::Message;
using amp::rpmsg::NotifyMode;
using amp::rpmsg::Role;

constexpr std::uint64_t kSendTimeoutNs = 30'000'000'000;  // a send this slow is a stall, and an error
constexpr std::uint64_t kStallNs = 30'000'000'000;        // no message either way for this long: an error

std::uint64_t mix(std::uint64_t x) {  // splitmix64's finaliser
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// ---- Messages that are functions of their sequence number ----

/// The messages of one direction: `key` tells the directions apart.
struct Stream {
  std::uint64_t key = 0;
  std::size_t mtu = 0;

  std::size_t size(std::uint64_t seq) const { return 1 + static_cast<std::size_t>(mix(key ^ seq) % mtu); }
  /// Writes message `seq` into `out` (size(seq) bytes).
  void fill(std::uint64_t seq, std::byte* out) const {
    const std::size_t n = size(seq);
    std::memcpy(out, &seq, std::min<std::size_t>(8, n));
    std::uint64_t w = mix(key + seq * 0x9e3779b97f4a7c15ULL);
    for (std::size_t i = 8; i < n; i += 8) {
      w += 0x9e3779b97f4a7c15ULL;
      const std::uint64_t v = w * 0xd6e8feb86659fd93ULL;
      std::memcpy(out + i, &v, std::min<std::size_t>(8, n - i));
    }
  }
};

constexpr std::uint64_t kHostToRemote = 0x686f73742d3e7265ULL;
constexpr std::uint64_t kRemoteToHost = 0x72656d6f74652d3eULL;

/// The receiving end of a Stream: checks that each message is the next one, byte for byte.
struct Checker {
  Stream stream;
  std::uint64_t expected = 0;  // the next sequence number
  std::uint64_t received = 0;
  std::uint64_t bytes = 0;
  std::uint64_t errors = 0;
  std::string first_error;
  std::vector<std::byte> want;

  explicit Checker(Stream s) : stream(s), want(s.mtu + 8) {}

  void on_message(std::span<const std::byte> got) {
    ++received;
    bytes += got.size();
    const std::size_t n = stream.size(expected);
    stream.fill(expected, want.data());
    if (got.size() == n && std::memcmp(got.data(), want.data(), n) == 0) {
      ++expected;
      return;
    }
    ++errors;
    std::uint64_t seq = 0;
    const bool numbered = got.size() >= 8;
    if (numbered) std::memcpy(&seq, got.data(), 8);
    char why[256];
    if (numbered && seq != expected && seq < (std::uint64_t{1} << 62)) {
      std::snprintf(why, sizeof why, "message %" PRIu64 " (%zu bytes) came where %" PRIu64 " was due: %s",
                    seq, got.size(), expected, seq > expected ? "messages lost" : "duplicated or reordered");
      expected = seq + 1;  // carry on from there
    } else if (got.size() != n) {
      std::snprintf(why, sizeof why, "message %" PRIu64 " has %zu bytes, %zu expected", expected, got.size(),
                    n);
      ++expected;
    } else {
      std::size_t at = 0;
      while (got[at] == want[at]) ++at;
      std::snprintf(why, sizeof why, "message %" PRIu64 " (%zu bytes) differs at byte %zu", expected, n, at);
      ++expected;
    }
    if (first_error.empty()) first_error = why;
  }
};

// ---- One side of the link soak ----

/// What one side did, as a line for the other side (the remote reports through the control socket).
struct Tally {
  std::uint64_t sent = 0;
  std::uint64_t sent_bytes = 0;
  std::uint64_t received = 0;
  std::uint64_t received_bytes = 0;
  std::uint64_t errors = 0;
  std::string first_error;

  std::string encode() const {
    char head[200];
    std::snprintf(head, sizeof head, "%" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " ", sent,
                  sent_bytes, received, received_bytes, errors);
    std::string e = first_error;
    std::replace(e.begin(), e.end(), '\n', ' ');
    return head + e + "\n";
  }
  static std::optional<Tally> decode(const std::string& line) {
    Tally t;
    int used = 0;
    if (std::sscanf(line.c_str(), "%" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %n", &t.sent,
                    &t.sent_bytes, &t.received, &t.received_bytes, &t.errors, &used) != 5) {
      return std::nullopt;
    }
    t.first_error = line.substr(static_cast<std::size_t>(used));
    while (!t.first_error.empty() && t.first_error.back() == '\n') t.first_error.pop_back();
    return t;
  }
};

/// A fault the host puts into its own stream on purpose (--fault), to show that the checks catch it.
enum class Fault : std::uint8_t { kNone, kLose, kDuplicate, kSwap, kCorrupt };

/// What the sender sends: normally message i as its i-th send; with a fault, around message `at`, one
/// message left out, sent twice, two swapped, or one with a byte flipped.
struct SendPlan {
  std::uint64_t count = 0;
  Fault fault = Fault::kNone;
  std::uint64_t at = 0;

  std::uint64_t sends() const {
    return fault == Fault::kLose ? count - 1 : fault == Fault::kDuplicate ? count + 1 : count;
  }
  std::uint64_t seq(std::uint64_t i) const {
    switch (fault) {
      case Fault::kLose:
        return i < at ? i : i + 1;
      case Fault::kDuplicate:
        return i <= at ? i : i - 1;
      case Fault::kSwap:
        return i == at ? at + 1 : i == at + 1 ? at : i;
      default:
        return i;
    }
  }
  bool corrupt(std::uint64_t i) const { return fault == Fault::kCorrupt && i == at; }
};

/// One end of the link soak: sends its stream and checks the peer's, with whichever driving the mode needs:
/// in blocking modes (and adaptive) the link's thread receives while a thread of ours sends, blocking for
/// buffers; in poll mode this thread alone sends and processes (own_thread = false).
class Side {
 public:
  Side(Link& link, Stream tx, Stream rx, SendPlan plan, std::uint64_t rx_count)
      : link_(link), tx_(tx), rx_(rx), plan_(plan), rx_count_(rx_count), buf_(tx.mtu + 8) {}

  /// Checked about once a second while waiting: true ends the run (the peer has failed).
  std::function<bool()> give_up;

  /// The receive callback of the endpoint.
  void on_message(const Message& m) {
    std::lock_guard lock(m_);
    rx_.on_message(m.payload);
    last_progress_.store(monotonic_ns(), std::memory_order_relaxed);
    if (rx_.received == rx_count_ || rx_.errors == 1) cv_.notify_all();  // wait_done() looks again
  }

  /// Runs the exchange on `ep` (bound to the peer) until both directions are done, or something failed.
  Tally run(Endpoint& ep) {
    last_progress_.store(monotonic_ns(), std::memory_order_relaxed);
    if (link_.notify_mode() == NotifyMode::kPoll) {
      run_polling(ep);
    } else {
      std::thread sender([&] {
        send_blocking(ep);
        std::lock_guard lock(m_);
        sender_done_ = true;
        cv_.notify_all();
      });
      wait_done();
      sender.join();
    }
    std::lock_guard lock(m_);
    Tally t;
    t.sent = sent_;
    t.sent_bytes = sent_bytes_;
    t.received = rx_.received;
    t.received_bytes = rx_.bytes;
    t.errors = rx_.errors + (send_error_.empty() ? 0 : 1) + (stall_.empty() ? 0 : 1);
    t.first_error = !rx_.first_error.empty() ? "received " + rx_.first_error
                    : !send_error_.empty()   ? send_error_
                                             : stall_;
    return t;
  }

 private:
  /// The i-th send: by copy or (every fourth message) by zero-copy. kWouldBlock/kTimeout: no buffer yet.
  Status send_one(Endpoint& ep, std::uint64_t i, std::uint64_t timeout_ns) {
    const std::uint64_t seq = plan_.seq(i);
    const std::size_t n = tx_.size(seq);
    if (seq % 4 == 3) {
      auto buffer = ep.get_tx_buffer(timeout_ns);
      if (!buffer) return buffer.error();
      if (buffer->payload().size() < n) return Status::kTooLarge;
      tx_.fill(seq, buffer->payload().data());
      if (plan_.corrupt(i)) buffer->payload()[n / 2] ^= std::byte{0x10};
      return ep.send_nocopy(*buffer, n);
    }
    tx_.fill(seq, buf_.data());
    if (plan_.corrupt(i)) buf_[n / 2] ^= std::byte{0x10};
    return timeout_ns == 0 ? ep.try_send(std::span(buf_.data(), n))
                           : ep.send(std::span(buf_.data(), n), timeout_ns);
  }

  void count_sent(std::uint64_t i) {
    ++sent_;
    sent_bytes_ += tx_.size(plan_.seq(i));
  }

  std::string stalled() const {
    return "stalled: " + std::to_string(sent_) + " sent, " + std::to_string(rx_.received) +
           " received, nothing moved for " + std::to_string(kStallNs / 1'000'000'000) + " s";
  }

  void send_blocking(Endpoint& ep) {
    const std::uint64_t sends = plan_.sends();
    for (std::uint64_t i = 0; i < sends && !abort_.load(std::memory_order_relaxed); ++i) {
      const Status s = send_one(ep, i, kSendTimeoutNs);
      std::lock_guard lock(m_);  // uncontended but for the receive callback
      if (!ok(s)) {
        send_error_ = "send of message " + std::to_string(plan_.seq(i)) + " failed: " + amp::to_string(s);
        cv_.notify_all();
        return;
      }
      count_sent(i);
      if (i % 1024 == 0) last_progress_.store(monotonic_ns(), std::memory_order_relaxed);
    }
  }

  /// Until both directions are done (the sender finished, every message received), or one failed.
  void wait_done() {
    std::unique_lock lock(m_);
    while (!(sender_done_ && rx_.received >= rx_count_) && rx_.errors == 0 && send_error_.empty() &&
           stall_.empty()) {
      cv_.wait_for(lock, 1s);
      if (monotonic_ns() - last_progress_.load(std::memory_order_relaxed) > kStallNs) stall_ = stalled();
      if (give_up) {
        lock.unlock();
        const bool stop = give_up();
        lock.lock();
        if (stop) break;
      }
    }
    // Done or failed: stop sending (a sender waiting for a buffer that never comes ends at its timeout).
    abort_.store(true);
  }

  void run_polling(Endpoint& ep) {
    amp::rpmsg::Device& dev = link_.device();
    const std::uint64_t sends = plan_.sends();
    std::uint64_t i = 0;
    std::uint64_t next_look = monotonic_ns() + 1'000'000'000;
    std::uint64_t sent_at_look = 0;
    for (std::uint32_t turn = 0;; ++turn) {
      for (int k = 0; k < 64 && i < sends; ++k) {
        const Status s = send_one(ep, i, 0);
        if (s == Status::kWouldBlock || s == Status::kTimeout) break;
        if (!ok(s)) {
          send_error_ = "send of message " + std::to_string(plan_.seq(i)) + " failed: " + amp::to_string(s);
          return;
        }
        count_sent(i);
        ++i;
      }
      if (const Status s = dev.process(); !ok(s)) {
        send_error_ = std::string("process() failed: ") + amp::to_string(s);
        return;
      }
      if ((i == sends && rx_.received >= rx_count_) || rx_.errors != 0) break;  // only this thread looks
      if (turn % 4096 == 0) {
        const std::uint64_t now = monotonic_ns();
        if (i != sent_at_look) last_progress_.store(now, std::memory_order_relaxed);
        sent_at_look = i;
        if (now - last_progress_.load(std::memory_order_relaxed) > kStallNs) {
          stall_ = stalled();
          break;
        }
        if (now >= next_look) {
          next_look = now + 1'000'000'000;
          if (give_up && give_up()) break;
        }
      }
      amp::metal::cpu_relax();
    }
    dev.flush();  // sends a polling device holds back
  }

  Link& link_;
  Stream tx_;
  std::mutex m_;
  std::condition_variable cv_;
  Checker rx_;
  SendPlan plan_;
  std::uint64_t rx_count_;
  std::vector<std::byte> buf_;
  std::uint64_t sent_ = 0;
  std::uint64_t sent_bytes_ = 0;
  std::string send_error_;
  std::string stall_;
  std::atomic<std::uint64_t> last_progress_{0};
  std::atomic<bool> abort_{false};
  bool sender_done_ = false;
};

bool write_all(int fd, const std::string& s) {
  std::size_t done = 0;
  while (done < s.size()) {
    const ssize_t n = ::write(fd, s.data() + done, s.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

/// A line from `fd`, waiting up to `timeout` for it.
std::optional<std::string> read_line(int fd, std::chrono::milliseconds timeout) {
  std::string line;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd p{fd, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left.count(), 1000)));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    char c;
    const ssize_t n = ::read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    if (c == '\n') return line;
    line += c;
  }
}

constexpr const char* kService = "amp-soak";

/// The forked remote: joins in the device role, offers the service, and once the host's first message has
/// bound it, runs its side; then reports its tally on `control` and waits for the host's word to leave.
int remote_main(amp::metal::UnixSocket sock, int control, NotifyMode mode, std::uint64_t to_host,
                std::uint64_t from_host) {
  LinkConfig cfg;
  cfg.role = Role::kDevice;
  cfg.own_thread = mode != NotifyMode::kPoll;
  auto link = Link::join(std::move(sock), cfg);
  if (!link) {
    (void)write_all(control, Tally{0, 0, 0, 0, 1, "remote: " + link.error().message}.encode());
    return 1;
  }
  const std::size_t mtu = (*link)->device().payload_size();
  Side side(**link, Stream{kRemoteToHost, mtu}, Stream{kHostToRemote, mtu}, SendPlan{to_host}, from_host);
  Endpoint ep;
  std::mutex m;
  std::condition_variable cv;
  if (!ok((*link)->device().create_endpoint(ep, kService, amp::rpmsg::kAddrAny, amp::rpmsg::kAddrAny,
                                            [&](Endpoint&, const Message& msg) {
                                              side.on_message(msg);
                                              cv.notify_all();
                                            }))) {
    (void)write_all(control, Tally{0, 0, 0, 0, 1, "remote: the endpoint could not be created"}.encode());
    return 1;
  }
  // The host's first message binds the endpoint to the host's (implicit binding).
  const std::uint64_t deadline = monotonic_ns() + kStallNs;
  while (ep.remote_address() == amp::rpmsg::kAddrAny && monotonic_ns() < deadline) {
    if (mode == NotifyMode::kPoll) {
      (void)(*link)->device().process();
    } else {
      std::unique_lock lock(m);
      cv.wait_for(lock, 10ms);
    }
  }
  Tally t;
  if (ep.remote_address() == amp::rpmsg::kAddrAny) {
    t.errors = 1;
    t.first_error = "remote: no message from the host";
  } else {
    t = side.run(ep);
  }
  const bool sent = write_all(control, t.encode());
  (void)read_line(control, std::chrono::hours(24));  // the host's "bye" (or its end)
  ep.destroy();
  (*link)->close();
  return sent && t.errors == 0 ? 0 : 1;
}

struct LinkResult {
  Tally host;
  Tally remote;
  double seconds = 0;
};

/// `total` messages through the link: half each way (the host sends the odd one).
int link_soak(std::uint64_t total, NotifyMode mode, Fault fault) {
  const std::uint64_t h2r = (total + 1) / 2;
  const std::uint64_t r2h = total / 2;
  auto socks = amp::metal::UnixSocket::pair();
  if (!socks) {
    std::fprintf(stderr, "amp-soak: %s\n", socks.error().message.c_str());
    return 1;
  }
  int ctl[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl) != 0) {
    std::perror("amp-soak: socketpair");
    return 1;
  }
  const pid_t child = ::fork();
  if (child < 0) {
    std::perror("amp-soak: fork");
    return 1;
  }
  if (child == 0) {
    ::close(ctl[0]);
    socks->first = amp::metal::UnixSocket(amp::metal::UniqueFd());
    _exit(remote_main(std::move(socks->second), ctl[1], mode, r2h, h2r));
  }
  ::close(ctl[1]);
  socks->second = amp::metal::UnixSocket(amp::metal::UniqueFd());

  LinkConfig cfg;
  cfg.role = Role::kDriver;
  cfg.notify = mode;
  cfg.own_thread = mode != NotifyMode::kPoll;
  auto link = Link::create(std::move(socks->first), cfg);
  if (!link) {
    std::fprintf(stderr, "amp-soak: link: %s\n", link.error().message.c_str());
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    return 1;
  }
  const std::size_t mtu = (*link)->device().payload_size();
  Side side(**link, Stream{kHostToRemote, mtu}, Stream{kRemoteToHost, mtu},
            SendPlan{h2r, h2r >= 4 ? fault : Fault::kNone, h2r / 2}, r2h);
  // The remote reports when it is done, or as soon as it failed: then there is no point going on.
  std::optional<Tally> remote_tally;
  side.give_up = [&] {
    pollfd p{ctl[0], POLLIN, 0};
    if (remote_tally || ::poll(&p, 1, 0) != 1) return remote_tally && remote_tally->errors != 0;
    auto line = read_line(ctl[0], 1s);
    remote_tally = line ? Tally::decode(*line) : std::nullopt;
    if (!remote_tally) remote_tally = Tally{0, 0, 0, 0, 1, "the remote's report was garbled"};
    return remote_tally->errors != 0;
  };
  // The remote announces the service; bind an endpoint to it.
  Endpoint ep;
  std::mutex m;
  std::condition_variable cv;
  bool bound = false;
  (*link)->device().set_name_service_handler(
      [&](amp::rpmsg::Device& d, std::string_view name, std::uint32_t addr) {
        if (name != kService || ep.attached()) return;
        const Status s = d.create_endpoint(ep, "", amp::rpmsg::kAddrAny, addr,
                                           [&](Endpoint&, const Message& msg) { side.on_message(msg); });
        std::lock_guard lock(m);
        bound = ok(s);
        cv.notify_all();
      });
  const std::uint64_t deadline = monotonic_ns() + kStallNs;
  for (;;) {
    {
      std::unique_lock lock(m);
      if (bound || monotonic_ns() > deadline) break;
      if (cfg.own_thread) cv.wait_for(lock, 10ms);
    }
    if (!cfg.own_thread) (void)(*link)->device().process();
  }
  LinkResult r;
  const std::uint64_t t0 = monotonic_ns();
  if (!bound) {
    r.host.errors = 1;
    r.host.first_error = "the remote's service was not announced";
  } else {
    r.host = side.run(ep);
  }
  // The remote's tally, unless it came already (it finishes about when we do; if it is stuck, its stall
  // timeout ends it).
  if (!remote_tally) {
    auto line = read_line(ctl[0], std::chrono::milliseconds(kStallNs / 1'000'000 + 30'000));
    remote_tally = line ? Tally::decode(*line) : std::nullopt;
  }
  r.seconds = static_cast<double>(monotonic_ns() - t0) / 1e9;
  if (remote_tally) {
    r.remote = *remote_tally;
  } else {
    r.remote.errors = 1;
    r.remote.first_error = "no report from the remote";
  }
  (void)write_all(ctl[0], "bye\n");
  ::close(ctl[0]);
  (*link)->device().set_name_service_handler(nullptr);
  ep.destroy();
  (*link)->close();
  int status = 0;
  ::waitpid(child, &status, 0);

  const char* mode_name = amp::rpmsg::to_string(mode);
  const std::uint64_t msgs = r.host.received + r.remote.received;
  const std::uint64_t bytes = r.host.received_bytes + r.remote.received_bytes;
  std::printf("link soak (%s): host->remote %" PRIu64 " sent, %" PRIu64 " received and checked (%" PRIu64
              " bytes); remote->host %" PRIu64 " sent, %" PRIu64 " received and checked (%" PRIu64
              " bytes)\n",
              mode_name, r.host.sent, r.remote.received, r.remote.received_bytes, r.remote.sent,
              r.host.received, r.host.received_bytes);
  std::printf("link soak (%s): %" PRIu64 " messages, %" PRIu64
              " bytes in %.1f s (%.2f M messages/s, %.0f MB/s)\n",
              mode_name, msgs, bytes, r.seconds, static_cast<double>(msgs) / r.seconds / 1e6,
              static_cast<double>(bytes) / r.seconds / 1e6);
  const bool complete =
      r.host.sent == h2r && r.remote.received == h2r && r.remote.sent == r2h && r.host.received == r2h;
  const std::uint64_t errors = r.host.errors + r.remote.errors;
  if (errors == 0 && complete && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    std::printf("link soak (%s): 0 errors\n", mode_name);
    return 0;
  }
  std::printf("link soak (%s): FAILED: %" PRIu64
              " errors%s; first at the host: %s; first at the remote: %s\n",
              mode_name, errors, complete ? "" : " (counts incomplete)",
              r.host.first_error.empty() ? "none" : r.host.first_error.c_str(),
              r.remote.first_error.empty() ? "none" : r.remote.first_error.c_str());
  return 1;
}

// ---- Kill soak ----

std::size_t open_fds() {
  std::size_t n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (const dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') ++n;
    }
    ::closedir(d);
  }
  return n - 1;  // the directory's own descriptor
}

/// This process's children, zombies included (from /proc/PID/stat's ppid field).
std::size_t children() {
  std::size_t n = 0;
  const pid_t self = ::getpid();
  if (DIR* d = ::opendir("/proc")) {
    while (const dirent* e = ::readdir(d)) {
      if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
      std::ifstream f(std::string("/proc/") + e->d_name + "/stat");
      std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      const auto close = stat.rfind(')');
      if (close == std::string::npos) continue;
      char state = 0;
      int ppid = 0;
      if (std::sscanf(stat.c_str() + close + 1, " %c %d", &state, &ppid) == 2 && ppid == self) ++n;
    }
    ::closedir(d);
  }
  return n;
}

struct Quantiles {
  double min = 0, median = 0, p99 = 0, max = 0;
  static Quantiles of(std::vector<double> v) {
    Quantiles q;
    if (v.empty()) return q;
    std::sort(v.begin(), v.end());
    auto at = [&](double p) {
      return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5))];
    };
    q.min = v.front();
    q.median = at(0.5);
    q.p99 = at(0.99);
    q.max = v.back();
    return q;
  }
};

/// The host's side of the echo stream: an endpoint per link (generation), echoes checked in order.
struct EchoHost {
  std::mutex m;
  std::condition_variable cv;
  std::mutex send_mutex;  // held around each send: link-down waits for it before destroying the endpoint
  std::unique_ptr<Endpoint> ep;
  std::uint32_t generation = 0;  // of ep: one per link
  std::uint64_t next_echo = 0;   // the sequence number due next from `generation`
  std::uint64_t echoes = 0;      // checked, all generations
  std::uint64_t errors = 0;
  std::string first_error;
  std::uint64_t first_echo_ns = 0;  // when `generation`'s first echo came back checked (0: not yet)
  std::uint64_t crash_ns = 0;       // when the last crash was reported
  std::uint64_t down_ns = 0;        // when the last link went down (the driver noticed the exit)
  std::uint32_t crashes = 0;
  std::size_t mtu = 0;

  static Stream stream(std::uint32_t generation, std::size_t mtu) {
    return Stream{0x6563686f00000000ULL | generation, mtu};
  }

  void error(std::string why) {  // m held
    ++errors;
    if (first_error.empty()) first_error = std::move(why);
    cv.notify_all();
  }

  void attach(amp::rproc::ProcessRemote& remote) {
    remote.on_transition([this](const amp::rproc::Transition& t) {
      if (t.to != amp::rproc::State::kCrashed) return;
      const std::uint64_t now = monotonic_ns();
      std::lock_guard lock(m);
      crash_ns = now;
      ++crashes;
      cv.notify_all();
    });
    remote.on_link_up([this](Link& link) {
      link.device().set_name_service_handler([this](amp::rpmsg::Device& d, std::string_view name,
                                                    std::uint32_t addr) {
        if (name != "amp-echo") return;
        auto e = std::make_unique<Endpoint>();
        std::uint32_t gen = 0;
        {
          std::lock_guard lock(m);
          gen = generation + 1;
        }
        const Status s = d.create_endpoint(*e, "", amp::rpmsg::kAddrAny, addr,
                                           [this, gen](Endpoint&, const Message& msg) { on_echo(gen, msg); });
        std::lock_guard lock(m);
        if (!ok(s)) {
          error(std::string("endpoint for amp-echo: ") + amp::to_string(s));
          return;
        }
        ep = std::move(e);
        generation = gen;
        next_echo = 0;
        first_echo_ns = 0;
        mtu = d.payload_size();
        cv.notify_all();
      });
    });
    remote.on_link_down([this](Link&) {
      {
        std::lock_guard lock(m);
        down_ns = monotonic_ns();
      }
      std::lock_guard sending(send_mutex);
      std::unique_ptr<Endpoint> old;
      {
        std::lock_guard lock(m);
        old = std::move(ep);
      }
      old.reset();
    });
  }

  void on_echo(std::uint32_t gen, const Message& msg) {
    const std::uint64_t now = monotonic_ns();
    std::lock_guard lock(m);
    if (gen != generation) {
      error("an echo on the endpoint of link " + std::to_string(gen) + " after link " +
            std::to_string(generation) + " came up");
      return;
    }
    Checker c(stream(gen, mtu));
    c.expected = next_echo;
    c.on_message(msg.payload);
    if (c.errors != 0) {
      error("link " + std::to_string(gen) + ": echo " + c.first_error);
      return;
    }
    next_echo = c.expected;
    ++echoes;
    if (first_echo_ns == 0) first_echo_ns = now;
    cv.notify_all();
  }

  /// The stream: sends numbered messages on the current endpoint until `stop`, starting again from 0 on
  /// each new link. Sends fail (kClosed) while the remote is down; then it waits a moment and goes on.
  void stream_loop(const std::atomic<bool>& stop) {
    std::uint32_t gen = 0;
    std::uint64_t seq = 0;
    std::vector<std::byte> buf;
    while (!stop.load()) {
      Status s = Status::kNotFound;
      {
        std::lock_guard sending(send_mutex);
        Endpoint* e = nullptr;
        Stream st{};
        {
          std::lock_guard lock(m);
          if (ep != nullptr) {
            e = ep.get();
            if (generation != gen) gen = generation, seq = 0;
            st = stream(gen, mtu);
          }
        }
        if (e != nullptr) {
          buf.resize(st.mtu + 8);
          st.fill(seq, buf.data());
          s = e->send(std::span(buf.data(), st.size(seq)), 2'000'000'000);
        }
      }
      if (ok(s)) {
        ++seq;
      } else {
        std::this_thread::sleep_for(1ms);
      }
    }
  }
};

/// A fault the soak puts in on purpose (--fault), to show that its checks catch it: a descriptor opened
/// and never closed after each recovery, or a child process never reaped.
enum class Leak : std::uint8_t { kNone, kDescriptor, kChild };

int kill_soak(const std::string& firmware_path, unsigned kills, std::uint64_t seed, Leak leak) {
  std::ifstream f(firmware_path, std::ios::binary);
  if (!f) {
    std::fprintf(stderr, "amp-soak: cannot read %s\n", firmware_path.c_str());
    return 1;
  }
  std::vector<char> raw((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<std::byte> firmware(raw.size());
  std::memcpy(firmware.data(), raw.data(), raw.size());
  std::printf("kill soak: %u SIGKILLs of %s, seed %" PRIu64 "\n", kills, firmware_path.c_str(), seed);
  std::fflush(stdout);

  const std::size_t fds_before = open_fds();
  const std::size_t children_before = children();
  std::vector<double> gone_us, detect_us, down_us, recover_ms;
  std::string failure;
  std::size_t fds_running = 0;
  std::uint64_t echoes = 0, errors = 0;
  std::string first_error;
  const auto t_start = std::chrono::steady_clock::now();
  {
    amp::rproc::ProcessConfig config;
    config.name = firmware_path;
    amp::rproc::ProcessRemote remote(config);
    remote.set_recovery(true, 3);
    EchoHost host;
    host.attach(remote);
    if (auto s = remote.start(firmware); !s) {
      std::fprintf(stderr, "amp-soak: starting %s: %s\n", firmware_path.c_str(), s.error().message.c_str());
      return 1;
    }
    std::atomic<bool> stop{false};
    std::thread streamer([&] { host.stream_loop(stop); });
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<int> delay_ms(5, 300);
    auto wait_echoes = [&](std::uint64_t above) {
      std::unique_lock lock(host.m);
      return host.cv.wait_for(lock, 10s, [&] { return host.echoes > above || host.errors != 0; }) &&
             host.errors == 0;
    };
    if (!wait_echoes(0)) failure = "the first echo did not come back";
    for (unsigned k = 0; k < kills && failure.empty(); ++k) {
      // Let the stream flow a random while, then kill.
      std::uint64_t before = 0;
      {
        std::lock_guard lock(host.m);
        before = host.echoes;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms(rng)));
      if (!wait_echoes(before)) {
        failure = "kill " + std::to_string(k + 1) + ": the stream is not flowing";
        break;
      }
      if (k == 0) fds_running = open_fds();
      const pid_t pid = remote.driver().pid();
      std::uint32_t crashes = 0, gen = 0;
      {
        std::lock_guard lock(host.m);
        crashes = host.crashes;
        gen = host.generation;
      }
      if (pid <= 0) {
        failure = "kill " + std::to_string(k + 1) + ": no firmware running";
        break;
      }
      // A pidfd of our own says when the kernel has ended the process: how much of the detection time
      // is the kernel's (tearing the process down) and how much amp's.
      const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
      const std::uint64_t t_kill = monotonic_ns();
      if (::kill(pid, SIGKILL) != 0) {
        failure = "kill " + std::to_string(k + 1) + ": kill(2): " + std::strerror(errno);
        if (pidfd >= 0) ::close(pidfd);
        break;
      }
      if (pidfd >= 0) {
        pollfd p{pidfd, POLLIN, 0};
        if (::poll(&p, 1, 10'000) == 1) gone_us.push_back(static_cast<double>(monotonic_ns() - t_kill) / 1e3);
        ::close(pidfd);
      }
      std::unique_lock lock(host.m);
      if (!host.cv.wait_for(lock, 10s, [&] { return host.crashes > crashes; })) {
        failure = "kill " + std::to_string(k + 1) + ": the crash was not reported within 10 s";
        break;
      }
      detect_us.push_back(static_cast<double>(host.crash_ns - t_kill) / 1e3);
      down_us.push_back(static_cast<double>(host.down_ns - t_kill) / 1e3);
      // Recovered: a new link, its endpoint, and its first echo back and checked.
      if (!host.cv.wait_for(
              lock, 10s,
              [&] { return (host.generation > gen && host.first_echo_ns != 0) || host.errors != 0; }) ||
          host.errors != 0) {
        failure = "kill " + std::to_string(k + 1) + ": no checked echo within 10 s of the crash";
        break;
      }
      recover_ms.push_back(static_cast<double>(host.first_echo_ns - t_kill) / 1e6);
      lock.unlock();
      remote.lifecycle().reset_recoveries();
      if (leak == Leak::kDescriptor) (void)::open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (leak == Leak::kChild && ::fork() == 0) _exit(0);  // never reaped: stays a zombie
      // Nothing piles up from one firmware to the next: the same descriptors, one child.
      if (const std::size_t fds = open_fds(); fds != fds_running) {
        failure = "after recovery " + std::to_string(k + 1) + ": " + std::to_string(fds) +
                  " descriptors open, " + std::to_string(fds_running) + " before the first kill";
      } else if (const std::size_t c = children(); c != children_before + 1) {
        failure = "after recovery " + std::to_string(k + 1) + ": " + std::to_string(c) + " child processes";
      }
      if ((k + 1) % 10 == 0) {
        std::fflush(stdout);
        std::fprintf(stderr, "kill soak: %u kills\n", k + 1);
      }
    }
    stop = true;
    streamer.join();
    if (auto s = remote.stop(); !s && failure.empty()) failure = "stop: " + s.error().message;
    std::lock_guard lock(host.m);
    echoes = host.echoes;
    errors = host.errors;
    first_error = host.first_error;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  const std::size_t fds_after = open_fds();
  const std::size_t children_after = children();
  const Quantiles d = Quantiles::of(detect_us);
  const Quantiles l = Quantiles::of(down_us);
  const Quantiles g = Quantiles::of(gone_us);
  const Quantiles r = Quantiles::of(recover_ms);
  std::printf("kill soak: %zu kills detected, %zu recovered with a checked echo, in %.1f s\n",
              detect_us.size(), recover_ms.size(), seconds);
  std::printf(
      "kill soak: the process gone (kill(2) to its pidfd readable): min %.0f us, median %.0f us, p99 %.0f "
      "us, "
      "max %.0f us\n",
      g.min, g.median, g.p99, g.max);
  std::printf(
      "kill soak: noticed (kill(2) to the link going down): min %.0f us, median %.0f us, p99 %.0f us, "
      "max %.0f us\n",
      l.min, l.median, l.p99, l.max);
  std::printf(
      "kill soak: detection (kill(2) to the crash reported): min %.0f us, median %.0f us, p99 %.0f us, "
      "max %.0f us\n",
      d.min, d.median, d.p99, d.max);
  std::printf(
      "kill soak: recovery (kill(2) to the first checked echo): min %.1f ms, median %.1f ms, p99 %.1f ms, "
      "max %.1f ms\n",
      r.min, r.median, r.p99, r.max);
  std::printf("kill soak: %" PRIu64 " echoes checked, %" PRIu64 " errors%s%s\n", echoes, errors,
              errors != 0 ? ": " : "", first_error.c_str());
  std::printf(
      "kill soak: descriptors %zu before, %zu while running, %zu after; child processes %zu before, %zu "
      "after\n",
      fds_before, fds_running, fds_after, children_before, children_after);
  if (failure.empty() && fds_after != fds_before) failure = "descriptors left behind";
  if (failure.empty() && children_after != children_before) failure = "child processes left behind";
  if (failure.empty() && errors != 0) failure = "echo errors";
  if (failure.empty() && detect_us.size() != kills) failure = "not every kill was detected";
  if (!failure.empty()) {
    std::printf("kill soak: FAILED: %s\n", failure.c_str());
    return 1;
  }
  std::printf("kill soak: 0 errors\n");
  return 0;
}

/// "100000000", "1e8", "2.5e6": a count.
bool parse_count(const std::string& s, std::uint64_t& out) {
  char* end = nullptr;
  errno = 0;
  const long double v = std::strtold(s.c_str(), &end);
  if (errno != 0 || end == s.c_str() || *end != '\0' || v < 1 || v > 1e18L ||
      v != static_cast<long double>(static_cast<std::uint64_t>(v))) {
    return false;
  }
  out = static_cast<std::uint64_t>(v);
  return true;
}

std::string default_firmware(const char* argv0) {
  char self[4096];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  std::string dir = n > 0 ? std::string(self, static_cast<std::size_t>(n)) : std::string(argv0);
  dir = dir.substr(0, dir.rfind('/') + 1);
  return dir + "../firmware/amp-echo-firmware";  // bench/amp-soak next to firmware/ in a build tree
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"amp-soak: long reliability runs (docs/reliability.md)"};
  app.require_subcommand(1);
  std::string messages = "1e8";
  std::string notify = "eventfd";
  std::string fault = "none";
  auto* link_cmd =
      app.add_subcommand("link", "messages both ways through a Link between two processes, each checked");
  link_cmd->add_option("--messages", messages, "messages in all, half each way (1e6, 100000000...)")
      ->capture_default_str();
  link_cmd->add_option("--notify", notify, "eventfd, socket, poll or adaptive")
      ->check(CLI::IsMember({"eventfd", "socket", "poll", "adaptive"}))
      ->capture_default_str();
  link_cmd
      ->add_option("--fault", fault,
                   "the host's stream, halfway, loses a message, duplicates one, swaps two or corrupts a "
                   "byte on purpose, to show that the checks catch it (the run then fails)")
      ->check(CLI::IsMember({"none", "lose", "duplicate", "swap", "corrupt"}))
      ->capture_default_str();
  std::string firmware = default_firmware(argv[0]);
  unsigned kills = 100;
  std::uint64_t seed = 0;
  auto* kill_cmd =
      app.add_subcommand("kill", "SIGKILL a native firmware at random moments while echoes flow");
  kill_cmd->add_option("--firmware", firmware, "the native firmware (amp-echo-firmware)")
      ->capture_default_str();
  kill_cmd->add_option("--kills", kills, "how many")->check(CLI::Range(1U, 1000000U))->capture_default_str();
  kill_cmd->add_option("--seed", seed, "for the kill times (default: from the clock, printed)");
  std::string leak = "none";
  kill_cmd
      ->add_option("--fault", leak,
                   "leaks a descriptor after each recovery, or a child process, on purpose, to show that the "
                   "checks catch it (the run then fails)")
      ->check(CLI::IsMember({"none", "leak-fd", "leak-child"}))
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints the help, or what is wrong
    return code == 0 ? 0 : 2;
  }

  amp::metal::set_log_level(amp::metal::LogLevel::kError);
  std::signal(SIGPIPE, SIG_IGN);
  if (link_cmd->parsed()) {
    std::uint64_t count = 0;
    if (!parse_count(messages, count)) {
      std::fprintf(stderr, "amp-soak: --messages wants a whole number from 1, such as 1e6: %s\n",
                   messages.c_str());
      return 2;
    }
    const NotifyMode mode = notify == "poll"       ? NotifyMode::kPoll
                            : notify == "socket"   ? NotifyMode::kSocket
                            : notify == "adaptive" ? NotifyMode::kAdaptive
                                                   : NotifyMode::kEventFd;
    const Fault f = fault == "lose"        ? Fault::kLose
                    : fault == "duplicate" ? Fault::kDuplicate
                    : fault == "swap"      ? Fault::kSwap
                    : fault == "corrupt"   ? Fault::kCorrupt
                                           : Fault::kNone;
    return link_soak(count, mode, f);
  }
  if (kill_cmd->count("--seed") == 0) seed = static_cast<std::uint64_t>(monotonic_ns());
  return kill_soak(firmware, kills, seed,
                   leak == "leak-fd"      ? Leak::kDescriptor
                   : leak == "leak-child" ? Leak::kChild
                                          : Leak::kNone);
}
