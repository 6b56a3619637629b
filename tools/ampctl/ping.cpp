// SPDX-License-Identifier: BSD-3-Clause
#include "ping.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <span>

#include "amp/client/linux/endpoint_io.hpp"
#include "amp/metal/time.hpp"
#include "signals.hpp"

namespace ampctl {

using namespace std::chrono_literals;
using amp::Status;
using amp::rpmsg::Endpoint;

double Summary::percentile(double p) const {
  if (rtt_us.empty()) return 0;
  std::vector<double> v = rtt_us;
  std::sort(v.begin(), v.end());
  const auto idx = static_cast<std::size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(idx, v.size() - 1)];
}

namespace {

/// The bytes of the message of `size` in round `round`: they differ from size to size and round to round.
void fill(std::vector<std::byte>& payload, std::uint32_t size, long round) {
  for (std::uint32_t i = 0; i < size; ++i)
    payload[i] = static_cast<std::byte>((i * 7 + size + static_cast<std::uint32_t>(round)) & 0xFF);
}

}  // namespace

Summary ping(amp::rpmsg::Link& link, const std::string& service, long rounds, bool shutdown_peer) {
  // Shared with the name-service handler, which stays set on the device after this returns.
  struct Found {
    std::mutex m;
    std::condition_variable cv;
    std::string service;
    std::optional<std::uint32_t> remote;
  };
  auto found = std::make_shared<Found>();
  found->service = service;
  const InterruptHook hook([found] {
    std::lock_guard lock(found->m);
    found->cv.notify_all();
  });
  link.device().set_name_service_handler(
      [found](amp::rpmsg::Device&, std::string_view name, std::uint32_t addr) {
        if (name != found->service) return;
        std::lock_guard lock(found->m);
        if (!found->remote) found->remote = addr;
        found->cv.notify_all();
      });
  set_interruptible(true);  // from here a signal ends the ping cleanly, with a summary
  Summary sum;
  std::uint32_t remote = 0;
  {
    std::unique_lock lock(found->m);
    found->cv.wait_for(lock, 10s,
                       [&] { return found->remote.has_value() || link.peer_gone() || interrupted(); });
    if (!found->remote) {
      if (interrupted()) {
        sum.interrupted = true;
      } else {
        sum.first_error = link.peer_gone() ? "the remote went away before announcing '" + service + "'"
                                           : "no '" + service + "' service was announced within 10 s";
        ++sum.errors;
      }
      return sum;
    }
    remote = *found->remote;
  }
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
  bool unbound = false;  // the link went down, or the remote destroyed its endpoint
  const InterruptHook hook([&] {
    std::lock_guard lock(m);
    cv.notify_all();
  });
  Endpoint ep;
  // Named, with no fixed remote: announced (see ping.hpp); sends go to `remote` explicitly.
  const Status cs = device.create_endpoint(
      ep, service, amp::rpmsg::kAddrAny, amp::rpmsg::kAddrAny,
      [&](Endpoint&, const amp::rpmsg::Message& msg) {
        std::lock_guard lock(m);
        last.assign(msg.payload.begin(), msg.payload.end());
        ++received;
        cv.notify_all();
      },
      [&](Endpoint&) {  // runs when the link goes down, and on the remote's destroy announcement
        std::lock_guard lock(m);
        unbound = true;
        cv.notify_all();
      });
  if (!ok(cs)) {
    sum.first_error = std::string("creating the endpoint: ") + amp::to_string(cs);
    ++sum.errors;
    return sum;
  }
  set_interruptible(true);  // from here a signal ends the ping cleanly, with a summary
  // The device stops when the link goes down (the remote hung up, or its driver saw it end).
  const auto gone_error = [&] {
    return peer_gone() || !device.running() ? std::string("the remote went away")
                                            : std::string("the remote destroyed its endpoint");
  };
  const std::uint32_t mtu = device.payload_size();
  std::vector<std::byte> payload(mtu);
  std::uint64_t expected = 0;
  bool stop = false;
  for (long r = 0; r < rounds && !stop; ++r) {
    for (std::uint32_t size = 1; size <= mtu && !stop; ++size) {
      if (interrupted()) {
        sum.interrupted = true;
        stop = true;
        break;
      }
      fill(payload, size, r);
      const auto data = std::span<const std::byte>(payload.data(), size);
      const std::uint64_t t0 = amp::metal::monotonic_ns();
      const Status s = ep.send_to(remote, data, 5'000'000'000);
      std::string error;
      if (s == Status::kClosed) {
        error = gone_error();
      } else if (!ok(s)) {
        error = "send of " + std::to_string(size) + " bytes: " + amp::to_string(s);
      } else {
        std::unique_lock lock(m);
        cv.wait_for(lock, 5s, [&] { return received > expected || unbound || interrupted(); });
        if (received > expected) {
          expected = received;
          if (last.size() != size || !std::equal(last.begin(), last.end(), data.begin()))
            error = "echo of " + std::to_string(size) + " bytes differs";
        } else if (interrupted()) {
          sum.interrupted = true;  // the message in flight is neither good nor bad
          stop = true;
          break;
        } else if (unbound) {
          error = gone_error();
        } else {
          error = "no echo of " + std::to_string(size) + " bytes within 5 s";
        }
      }
      const std::uint64_t t1 = amp::metal::monotonic_ns();
      if (error.empty()) {
        ++sum.messages;
        sum.bytes += size;
        sum.rtt_us.push_back(static_cast<double>(t1 - t0) / 1000.0);
        continue;
      }
      ++sum.errors;
      if (sum.first_error.empty()) sum.first_error = error;
      std::lock_guard lock(m);
      if (unbound || !ok(s)) return sum;  // nobody left to answer
    }
  }
  if (sum.interrupted) return sum;
  // A message larger than the MTU must be refused, not truncated.
  std::vector<std::byte> too_big(mtu + 1);
  if (ep.send_to(remote, too_big) != Status::kTooLarge) {
    ++sum.errors;
    if (sum.first_error.empty()) sum.first_error = "an oversize message was not refused";
  }
  if (shutdown_peer) {
    const std::uint32_t magic = kShutdownMagic;
    (void)ep.send_to(remote, std::as_bytes(std::span(&magic, 1)), 1'000'000'000);
  }
  ep.destroy();  // announced: the remote sees the host's endpoint go
  return sum;
}

Summary ping_endpoint(const amp::client::EndpointFd& ep, long rounds, bool shutdown_peer) {
  Summary sum;
  const auto record = [&](const std::string& error) {
    ++sum.errors;
    if (sum.first_error.empty()) sum.first_error = error;
  };
  set_interruptible(true);
  const std::uint32_t mtu = ep.mtu;
  std::vector<std::byte> payload(mtu);
  std::vector<std::byte> echo(mtu + std::size_t{1});
  for (long r = 0; r < rounds; ++r) {
    for (std::uint32_t size = 1; size <= mtu; ++size) {
      if (interrupted()) {
        sum.interrupted = true;
        return sum;
      }
      fill(payload, size, r);
      const auto data = std::span<const std::byte>(payload.data(), size);
      const std::uint64_t t0 = amp::metal::monotonic_ns();
      if (auto w = amp::client::write_message(ep, data); !w) {
        record(w.error().status == Status::kClosed
                   ? std::string("the endpoint ended (its remote went away)")
                   : "send of " + std::to_string(size) + " bytes: " + w.error().message);
        return sum;
      }
      // Up to 5 s for the echo, in slices, so that a signal ends the wait.
      amp::metal::SysResult<std::size_t> got = amp::metal::sys_fail(Status::kTimeout, "no echo");
      for (int slice = 0; slice < 50 && !interrupted(); ++slice) {
        got = amp::client::read_message(ep, echo, 100ms);
        if (got || got.error().status != Status::kTimeout) break;
      }
      if (interrupted()) {
        sum.interrupted = true;  // the message in flight is neither good nor bad
        return sum;
      }
      if (!got) {
        record(got.error().status == Status::kClosed
                   ? std::string("the endpoint ended (its remote went away)")
               : got.error().status == Status::kTimeout
                   ? "no echo of " + std::to_string(size) + " bytes within 5 s"
                   : "receive: " + got.error().message);
        return sum;
      }
      const std::uint64_t t1 = amp::metal::monotonic_ns();
      if (*got != size || !std::equal(data.begin(), data.end(), echo.begin())) {
        record("echo of " + std::to_string(size) + " bytes differs");
        continue;
      }
      ++sum.messages;
      sum.bytes += size;
      sum.rtt_us.push_back(static_cast<double>(t1 - t0) / 1000.0);
    }
  }
  // A message larger than the MTU must be refused (EMSGSIZE), not truncated.
  std::vector<std::byte> too_big(mtu + std::size_t{1});
  const auto big = amp::client::write_message(ep, too_big);
  if (big || big.error().status != Status::kTooLarge) record("an oversize message was not refused");
  if (shutdown_peer) {
    const std::uint32_t magic = kShutdownMagic;
    (void)amp::client::write_message(ep, std::as_bytes(std::span(&magic, 1)));
  }
  return sum;
}

namespace {

/// `v` to `per_unit`ths (100: hundredths), so that JSON shows 12.35 rather than 12.345678.
double rounded(double v, double per_unit) {
  return std::round(v * per_unit) / per_unit;
}

}  // namespace

void print_summary(const char* command, const Summary& s, double seconds, bool json, const Json& extra) {
  if (json) {
    Json j;
    j["command"] = command;
    j["messages"] = s.messages;
    j["bytes"] = s.bytes;
    j["errors"] = s.errors;
    Json rtt;
    rtt["p50"] = rounded(s.percentile(50), 100);
    rtt["p99"] = rounded(s.percentile(99), 100);
    rtt["max"] = rounded(s.percentile(100), 100);
    j["rtt_us"] = rtt;
    j["seconds"] = rounded(seconds, 1000);
    if (extra.is_object()) {
      for (const auto& [key, value] : extra.items()) j[key] = value;
    }
    if (!s.first_error.empty()) j["first_error"] = json_bytes(s.first_error);
    if (s.interrupted) j["interrupted"] = true;
    print_json(j);
    return;
  }
  std::printf(
      "%s: %llu messages, %llu bytes, %llu errors; round trip p50 %.1f us, p99 %.1f us, max %.1f us (%.2f "
      "s)\n",
      command, static_cast<unsigned long long>(s.messages), static_cast<unsigned long long>(s.bytes),
      static_cast<unsigned long long>(s.errors), s.percentile(50), s.percentile(99), s.percentile(100),
      seconds);
  if (!s.first_error.empty()) std::printf("first error: %s\n", printable(s.first_error).c_str());
  if (s.interrupted) std::printf("interrupted: the summary covers what was done before the signal\n");
  std::fflush(stdout);
}

int exit_code(const Summary& s) {
  if (s.interrupted) return interrupted_exit_code();
  return s.errors == 0 && s.messages > 0 ? 0 : 1;
}

}  // namespace ampctl
