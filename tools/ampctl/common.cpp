// SPDX-License-Identifier: BSD-3-Clause
#include "common.hpp"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <thread>

#include "amp/metal/linux/device.hpp"
#include "amp/metal/time.hpp"

namespace ampctl {

using namespace std::chrono_literals;
using amp::Status;
using amp::rpmsg::Endpoint;
using amp::rpmsg::Link;
using amp::rpmsg::NotifyMode;
using amp::rpmsg::Role;

std::atomic<bool> g_interrupted{false};
std::atomic<bool> g_interruptible{false};
Wake g_wake;

void Wake::set() {
  {
    std::lock_guard lock(m_);
    set_ = true;
  }
  cv_.notify_all();
}

void Wake::wait() {
  std::unique_lock lock(m_);
  cv_.wait(lock, [this] { return set_; });
}

bool Wake::wait_for(std::chrono::milliseconds timeout) {
  std::unique_lock lock(m_);
  return cv_.wait_for(lock, timeout, [this] { return set_; });
}

void watch_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set] {
    int sig = 0;
    sigwait(&set, &sig);
    g_interrupted = true;
    // Still setting up (waiting for a peer, say): leave now. Serving or pinging: finish cleanly.
    if (!g_interruptible.load()) std::_Exit(128 + sig);
    g_wake.set();
  }).detach();
}

void die(const std::string& msg, int code) {
  std::fprintf(stderr, "ampctl: %s\n", msg.c_str());
  std::exit(code);
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

bool read_whole_file(const std::string& path, std::string& out) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  char buf[65536];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  const bool good = std::ferror(f) == 0;
  std::fclose(f);
  return good;
}

std::optional<std::pair<std::uint64_t, std::uint64_t>> parse_address_range(std::string_view text) {
  // Numbers as sysfs prints them (0x-hex or decimal, nothing else: no sign, no spaces).
  const auto colon = text.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  auto addr = amp::metal::parse_sysfs_number(text.substr(0, colon));
  auto size = amp::metal::parse_sysfs_number(text.substr(colon + 1));
  if (!addr || !size || *size == 0 || *addr + *size < *addr) return std::nullopt;
  return std::pair<std::uint64_t, std::uint64_t>{*addr, *size};
}

// ---- Options ---------------------------------------------------------------------------------------------

bool Options::has(const std::string& f) const {
  return std::find(flags.begin(), flags.end(), f) != flags.end();
}

std::string Options::get(const std::string& k, const std::string& def) const {
  auto it = values.find(k);
  return it == values.end() ? def : it->second;
}

long Options::number(const std::string& k, long def, long min, long max) const {
  auto it = values.find(k);
  if (it == values.end()) return def;
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(it->second.c_str(), &end, 0);
  if (errno != 0 || end == it->second.c_str() || *end != '\0' || v < min || v > max) {
    die("--" + k + " wants a number in [" + std::to_string(min) + ", " + std::to_string(max) + "], not '" +
            it->second + "'",
        2);
  }
  return v;
}

Options parse(int argc, char** argv, int first, const std::vector<std::string>& value_keys,
              const std::vector<std::string>& flag_keys, bool positional) {
  Options o;
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    if (positional && a == "--") {
      for (++i; i < argc; ++i) o.positional.emplace_back(argv[i]);
      break;
    }
    if (a.rfind("--", 0) != 0) {
      if (!positional) die("unexpected argument '" + a + "' (see --help)", 2);
      o.positional.push_back(a);
      continue;
    }
    a = a.substr(2);
    std::string value;
    bool has_value = false;
    if (auto eq = a.find('='); eq != std::string::npos) {
      value = a.substr(eq + 1);
      a = a.substr(0, eq);
      has_value = true;
    }
    if (std::find(value_keys.begin(), value_keys.end(), a) != value_keys.end()) {
      if (!has_value) {
        if (i + 1 >= argc) die("--" + a + " needs a value", 2);
        value = argv[++i];
      }
      o.values[a] = value;
    } else if (std::find(flag_keys.begin(), flag_keys.end(), a) != flag_keys.end() && !has_value) {
      o.flags.push_back(a);
    } else {
      die("unknown option --" + a + " (see --help)", 2);
    }
  }
  return o;
}

Role parse_role(const std::string& s) {
  if (s == "driver" || s == "host") return Role::kDriver;
  if (s == "device" || s == "remote") return Role::kDevice;
  die("--role is driver (host) or device (remote), not '" + s + "'", 2);
}

NotifyMode parse_notify(const std::string& s) {
  if (s == "eventfd") return NotifyMode::kEventFd;
  if (s == "socket") return NotifyMode::kSocket;
  if (s == "poll") return NotifyMode::kPoll;
  if (s == "adaptive") return NotifyMode::kAdaptive;
  die("--notify is eventfd, socket, poll or adaptive, not '" + s + "'", 2);
}

// ---- ping ------------------------------------------------------------------------------------------------

double Summary::percentile(double p) const {
  if (rtt_us.empty()) return 0;
  std::vector<double> v = rtt_us;
  std::sort(v.begin(), v.end());
  const auto idx = static_cast<std::size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(idx, v.size() - 1)];
}

Summary ping(Link& link, const std::string& service, long rounds, bool shutdown_peer) {
  std::mutex m;
  std::condition_variable cv;
  std::optional<std::uint32_t> remote;
  link.device().set_name_service_handler([&](amp::rpmsg::Device&, std::string_view name, std::uint32_t addr) {
    if (name != service) return;
    std::lock_guard lock(m);
    remote = addr;
    cv.notify_all();
  });
  {
    std::unique_lock lock(m);
    if (!cv.wait_for(lock, 10s, [&] { return remote.has_value() || link.peer_gone(); }) || !remote) {
      Summary sum;
      sum.first_error = "no '" + service + "' service was announced within 10 s";
      ++sum.errors;
      return sum;
    }
  }
  return ping_address(link, service, *remote, rounds, shutdown_peer);
}

Summary ping_address(Link& link, const std::string& service, std::uint32_t remote, long rounds,
                     bool shutdown_peer) {
  return ping_device(link.device(), service, remote, rounds, shutdown_peer,
                     [&link] { return link.peer_gone(); });
}

Summary ping_device(amp::rpmsg::Device& device, const std::string& service, std::uint32_t remote, long rounds,
                    bool shutdown_peer, const std::function<bool()>& peer_gone) {
  Summary sum;
  std::mutex m;
  std::condition_variable cv;
  std::vector<std::byte> last;
  std::uint64_t received = 0;
  Endpoint ep;
  const Status cs = device.create_endpoint(ep, service, amp::rpmsg::kAddrAny, remote,
                                           [&](Endpoint&, const amp::rpmsg::Message& msg) {
                                             std::lock_guard lock(m);
                                             last.assign(msg.payload.begin(), msg.payload.end());
                                             ++received;
                                             cv.notify_all();
                                           });
  if (!ok(cs)) {
    sum.first_error = std::string("creating the endpoint: ") + amp::to_string(cs);
    ++sum.errors;
    return sum;
  }
  g_interruptible = true;  // from here a signal ends the run cleanly, with a summary
  const std::uint32_t mtu = device.payload_size();
  std::vector<std::byte> payload(mtu);
  std::uint64_t expected = 0;
  for (long r = 0; r < rounds && !g_interrupted; ++r) {
    for (std::uint32_t size = 1; size <= mtu && !g_interrupted; ++size) {
      for (std::uint32_t i = 0; i < size; ++i)
        payload[i] = static_cast<std::byte>((i * 7 + size + static_cast<std::uint32_t>(r)) & 0xFF);
      const auto data = std::span<const std::byte>(payload.data(), size);
      const std::uint64_t t0 = amp::metal::monotonic_ns();
      const Status s = ep.send(data, 5'000'000'000);
      bool good = ok(s);
      if (good) {
        std::unique_lock lock(m);
        good =
            cv.wait_for(lock, 5s, [&] { return received > expected || peer_gone(); }) && received > expected;
        if (good) {
          expected = received;
          good = last.size() == size && std::equal(last.begin(), last.end(), data.begin());
          if (!good && sum.first_error.empty())
            sum.first_error = "echo of " + std::to_string(size) + " bytes differs";
        } else if (sum.first_error.empty()) {
          sum.first_error = peer_gone() ? "the remote went away"
                                        : "no echo of " + std::to_string(size) + " bytes within 5 s";
        }
      } else if (sum.first_error.empty()) {
        sum.first_error = "send of " + std::to_string(size) + " bytes: " + amp::to_string(s);
      }
      const std::uint64_t t1 = amp::metal::monotonic_ns();
      if (good) {
        ++sum.messages;
        sum.bytes += size;
        sum.rtt_us.push_back(static_cast<double>(t1 - t0) / 1000.0);
      } else {
        ++sum.errors;
        if (peer_gone() || !ok(s)) return sum;
      }
    }
  }
  // A message larger than the MTU must be refused, not truncated.
  std::vector<std::byte> too_big(mtu + 1);
  if (ep.send(too_big) != Status::kTooLarge) {
    ++sum.errors;
    if (sum.first_error.empty()) sum.first_error = "an oversize message was not refused";
  }
  if (shutdown_peer) {
    const std::uint32_t magic = kShutdownMagic;
    (void)ep.send(std::as_bytes(std::span(&magic, 1)), 1'000'000'000);
  }
  ep.destroy();
  return sum;
}

void print_summary(const char* what, const Summary& s, double seconds, bool json,
                   const std::string& extra_json) {
  if (json) {
    std::printf(
        "{\"command\":\"%s\",\"messages\":%llu,\"bytes\":%llu,\"errors\":%llu,\"rtt_us\":{\"p50\":%.2f,"
        "\"p99\":%.2f,"
        "\"max\":%.2f},\"seconds\":%.3f%s%s%s}\n",
        what, static_cast<unsigned long long>(s.messages), static_cast<unsigned long long>(s.bytes),
        static_cast<unsigned long long>(s.errors), s.percentile(50), s.percentile(99), s.percentile(100),
        seconds, extra_json.c_str(), s.first_error.empty() ? "" : ",\"first_error\":",
        s.first_error.empty() ? "" : json_string(s.first_error).c_str());
    std::fflush(stdout);
    return;
  }
  std::printf(
      "%s: %llu messages, %llu bytes, %llu errors; round trip p50 %.1f us, p99 %.1f us, max %.1f us (%.2f "
      "s)\n",
      what, static_cast<unsigned long long>(s.messages), static_cast<unsigned long long>(s.bytes),
      static_cast<unsigned long long>(s.errors), s.percentile(50), s.percentile(99), s.percentile(100),
      seconds);
  if (!s.first_error.empty()) std::printf("first error: %s\n", s.first_error.c_str());
  std::fflush(stdout);
}

}  // namespace ampctl
