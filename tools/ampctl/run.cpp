#include "run.hpp"

#include <cstdio>
#include <fstream>
#include <iterator>
#include <list>
#include <mutex>
#include <string>
#include <vector>

#include "amp/rproc/linux/process.hpp"
#include "common.hpp"

namespace ampctl {

namespace {

using amp::Status;
using amp::rpmsg::Endpoint;
using amp::rpmsg::Link;
using amp::rproc::State;

/// What the remote announced, and the host's echo endpoints (--echo).
struct Services {
  std::mutex m;
  std::condition_variable cv;
  std::vector<std::pair<std::string, std::uint32_t>> seen;  // on the current link
  std::list<Endpoint> echoes;
  std::mutex using_link;  // held while --ping uses the link: link-down waits for it
};

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
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

/// One line per event: text on stderr, or a JSON object per line on stdout.
class Reporter {
 public:
  explicit Reporter(bool json) : json_(json) {}
  void state(State from, State to, const std::string& why) {
    std::lock_guard lock(m_);
    if (json_) {
      std::printf("{\"event\":\"state\",\"from\":\"%s\",\"to\":\"%s\"%s%s}\n", to_string(from), to_string(to),
                  why.empty() ? "" : ",\"why\":", why.empty() ? "" : json_string(why).c_str());
      std::fflush(stdout);
    } else {
      std::fprintf(stderr, "ampctl run: remote %s -> %s%s%s\n", to_string(from), to_string(to),
                   why.empty() ? "" : ": ", why.c_str());
    }
  }
  void service(const std::string& name, std::uint32_t addr) {
    std::lock_guard lock(m_);
    if (json_) {
      std::printf("{\"event\":\"service\",\"name\":%s,\"address\":%u}\n", json_string(name).c_str(), addr);
      std::fflush(stdout);
    } else {
      std::printf("service '%s' at address %u\n", name.c_str(), addr);
      std::fflush(stdout);
    }
  }

 private:
  std::mutex m_;
  bool json_;
};

std::vector<std::byte> read_firmware(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) die("cannot open the firmware " + path + ": " + std::strerror(errno));
  std::vector<char> chars((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) die("reading the firmware " + path + " failed");
  std::vector<std::byte> bytes(chars.size());
  if (!chars.empty()) std::memcpy(bytes.data(), chars.data(), chars.size());
  return bytes;
}

}  // namespace

void run_help() {
  std::printf(
      "usage: ampctl run [--driver process] FIRMWARE [OPTIONS] [-- FIRMWARE-ARGS...]\n\n"
      "Brings a remote up and keeps it up: loads FIRMWARE, starts it, creates its virtio devices from its\n"
      "resource table and runs rpmsg with it; prints each state change and each service the remote\n"
      "announces; serves until interrupted (SIGINT/SIGTERM), then stops the remote.\n\n"
      "drivers:\n"
      "  process               FIRMWARE is a native firmware: a Linux program built with amp (its\n"
      "                        .resource_table declares an rpmsg vdev), run as a child process\n"
      "options:\n"
      "  --ping SERVICE        once SERVICE is announced, send messages of every size 1..MTU (--rounds N\n"
      "                        times), check every echo, print a summary, stop; the exit code says if all "
      "matched\n"
      "  --echo                answer each service the remote announces with an endpoint of the same name,\n"
      "                        announced back, that echoes every message the remote sends it\n"
      "  --recover             on a crash, reload and restart the firmware\n"
      "  --max-recoveries N    with --recover: give up after N recoveries (default 3)\n"
      "  --duration MS         stop after MS milliseconds instead of waiting for a signal\n"
      "  --notify eventfd|socket|poll|adaptive   notifications (default eventfd)\n"
      "  --buffer-size N       bytes per rpmsg buffer (default 512)\n"
      "  --memory BYTES        the remote's shared memory (default 4 MiB)\n"
      "  --timeout MS          how long bringing rpmsg up may take (default 10000)\n"
      "  --json                events and the summary as JSON lines on stdout\n"
      "exit code: 0 when the run ended as asked; 1 when the remote could not start, crashed for good or a\n"
      "ping failed; 2 for bad arguments.\n");
}

int run_command(int argc, char** argv) {
  const Options o = parse(argc, argv, 2,
                          {"driver", "ping", "rounds", "max-recoveries", "duration", "notify", "buffer-size",
                           "memory", "timeout"},
                          {"echo", "json", "recover"}, true);
  const std::string driver = o.get("driver", "process");
  if (driver != "process") {
    die("--driver " + driver +
            " does not fit run: run keeps a remote only as long as ampctl lives (process); for sysfs use "
            "load/start/stop",
        2);
  }
  if (o.positional.empty()) die("run wants a FIRMWARE (see --help)", 2);
  const std::string firmware_path = o.positional.front();
  amp::rproc::ProcessConfig config;
  config.args.assign(o.positional.begin() + 1, o.positional.end());
  config.name = firmware_path.substr(firmware_path.find_last_of('/') + 1);
  config.link.notify = parse_notify(o.get("notify", "eventfd"));
  config.link.buffer_size = static_cast<std::uint32_t>(o.number("buffer-size", 512, 24, 65552));
  if (config.link.buffer_size % 8 != 0) die("--buffer-size must be a multiple of 8", 2);
  config.link.timeout = std::chrono::milliseconds(o.number("timeout", 10000, 1, 3600000));
  config.memory_size = static_cast<std::size_t>(o.number("memory", 4L << 20, 0x10000, 1L << 30));
  const long rounds = o.number("rounds", 1, 1, 1000000);
  const long duration = o.number("duration", 0, 0, 86400000);
  const bool recover = o.has("recover");
  const long max_recoveries = o.number("max-recoveries", 3, 1, 1000);
  const std::string ping_service = o.get("ping");
  const bool json = o.has("json");
  const std::vector<std::byte> firmware = read_firmware(firmware_path);

  Reporter report(json);
  Services services;
  Wake crashed;
  amp::rproc::ProcessRemote remote(config);
  remote.set_recovery(recover, static_cast<std::uint32_t>(max_recoveries));
  remote.on_transition([&](const amp::rproc::Transition& t) {
    std::string why;
    if (t.to == State::kCrashed) why = remote.last_exit();
    report.state(t.from, t.to, why);
    if (t.to == State::kCrashed) crashed.set();
  });
  remote.on_down([&](const std::string&) { g_wake.set(); });
  remote.on_link_up([&](Link& link) {
    link.device().set_name_service_handler(
        [&](amp::rpmsg::Device& dev, std::string_view name, std::uint32_t addr) {
          report.service(std::string(name), addr);
          std::lock_guard lock(services.m);
          services.seen.emplace_back(std::string(name), addr);
          if (o.has("echo")) {
            Endpoint& ep = services.echoes.emplace_back();
            // Unbound and named: announced back, so the remote's endpoint learns where the host is.
            const Status s = dev.create_endpoint(ep, name, amp::rpmsg::kAddrAny, amp::rpmsg::kAddrAny,
                                                 [](Endpoint& self, const amp::rpmsg::Message& m) {
                                                   (void)self.send_to(m.src, m.payload, 1'000'000'000);
                                                 });
            if (!ok(s)) services.echoes.pop_back();
          }
          services.cv.notify_all();
        });
  });
  remote.on_link_down([&](Link&) {
    std::lock_guard using_link(services.using_link);
    std::lock_guard lock(services.m);
    services.echoes.clear();  // destroys them (the device is stopped already)
    services.seen.clear();
  });

  g_interruptible = true;  // a signal from here on stops the remote cleanly
  if (auto r = remote.start(firmware); !r) die(r.error().message);

  int code = 0;
  if (!ping_service.empty()) {
    std::unique_lock lock(services.m);
    std::optional<std::uint32_t> addr;
    const bool found = services.cv.wait_for(lock, config.link.timeout, [&] {
      for (const auto& [name, a] : services.seen)
        if (name == ping_service) addr = a;
      return addr.has_value() || g_interrupted.load();
    });
    lock.unlock();
    Summary sum;
    double secs = 0;
    bool remote_left = false;
    if (!found || !addr) {
      ++sum.errors;
      sum.first_error = "no '" + ping_service + "' service was announced";
    } else {
      std::lock_guard using_link(services.using_link);
      Link* link = remote.driver().link();
      if (link == nullptr) {
        ++sum.errors;
        sum.first_error = "the remote went away";
      } else {
        const auto t0 = std::chrono::steady_clock::now();
        sum = ping_address(*link, ping_service, *addr, rounds, false);
        secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        remote_left = link->peer_gone();
      }
    }
    // The remote hung up during the ping: let the driver see it end (a crash) before stopping it.
    if (remote_left) (void)crashed.wait_for(std::chrono::seconds(2));
    print_summary("run", sum, secs, json, ",\"service\":" + json_string(ping_service));
    code = sum.errors == 0 && sum.messages > 0 ? 0 : 1;
  } else {
    // Asleep until a signal, the end of --duration, or the remote going down for good.
    bool woken = true;
    if (duration > 0) {
      woken = g_wake.wait_for(std::chrono::milliseconds(duration));
    } else {
      g_wake.wait();
    }
    if (woken && !g_interrupted.load()) code = 1;  // down for good
    if (!woken && remote.state() != State::kRunning) code = 1;
  }
  if (auto r = remote.stop(); !r) {
    std::fprintf(stderr, "ampctl: stopping the remote: %s\n", r.error().message.c_str());
    code = 1;
  }
  return code;
}

}  // namespace ampctl
