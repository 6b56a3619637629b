// SPDX-License-Identifier: BSD-3-Clause
#include "run.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "amp/rproc/elf.hpp"
#include "amp/rproc/linux/process.hpp"
#include "amp/rproc/linux/sysfs.hpp"
#include "amp/rproc/linux/vdev_host.hpp"
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
  std::mutex using_link;         // held while --ping uses the link: link-down waits for it
  std::uint64_t generation = 0;  // links gone so far (under m)
};

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
  std::string text;
  if (!read_whole_file(path, text)) die("cannot read the firmware " + path + ": " + std::strerror(errno));
  const auto bytes = std::as_bytes(std::span(text));
  return {bytes.begin(), bytes.end()};
}

}  // namespace

void run_help() {
  std::printf(
      "usage: ampctl run [--driver process] FIRMWARE [OPTIONS] [-- FIRMWARE-ARGS...]\n"
      "       ampctl run --driver sysfs --remote NODE|NAME --uio NODE|NAME FIRMWARE [OPTIONS]\n\n"
      "Brings a remote up and keeps it up: loads FIRMWARE, starts it, creates its virtio devices from its\n"
      "resource table and runs rpmsg with it; prints each state change and each service the remote\n"
      "announces; serves until interrupted (SIGINT/SIGTERM), then stops the remote.\n\n"
      "drivers:\n"
      "  process               FIRMWARE is a native firmware: a Linux program built with amp (its\n"
      "                        .resource_table declares an rpmsg vdev), run as a child process\n"
      "  sysfs                 the kernel's remoteproc loads and starts FIRMWARE; amp then runs the host's "
      "side\n"
      "                        of its rpmsg vdev in userspace, over the remote's memory as UIO maps:\n"
      "      --remote NODE|NAME    the remoteproc (see ampctl status)\n"
      "      --uio NODE|NAME|DEVICE  the UIO device (uio0, its name, or the platform device bound to it, "
      "e.g.\n"
      "                            3ed00000.shm) whose maps are the remote's memory, table included\n"
      "      --pool ADDR:SIZE      memory for vrings at ANY and the rpmsg buffers (default: the map named\n"
      "                            vdev0buffer)\n"
      "      --kick MAP:OFFSET[:VALUE]  how to interrupt the remote: a 32-bit store into a map (the notify "
      "id\n"
      "                            when no VALUE)\n"
      "      --poll                poll the rings instead of waiting for the UIO interrupt\n"
      "      --sys DIR --dev DIR --firmware-dir DIR   other roots (tests)\n"
      "options:\n"
      "  --ping SERVICE        once SERVICE is announced, send messages of every size 1..MTU (--rounds N\n"
      "                        times), check every echo, print a summary, stop; the exit code says if all "
      "matched\n"
      "  --echo                answer each service the remote announces with an endpoint of the same name,\n"
      "                        announced back, that echoes every message the remote sends it\n"
      "  --recover             (process) on a crash, reload and restart the firmware\n"
      "  --max-recoveries N    with --recover: give up after N recoveries (default 3)\n"
      "  --duration MS         stop after MS milliseconds instead of waiting for a signal\n"
      "  --notify eventfd|socket|poll|adaptive   (process) notifications (default eventfd)\n"
      "  --buffer-size N       bytes per rpmsg buffer (default 512)\n"
      "  --memory BYTES        (process) the remote's shared memory (default 4 MiB)\n"
      "  --timeout MS          how long bringing rpmsg up may take (default 10000)\n"
      "  --json                events and the summary as JSON lines on stdout\n"
      "exit code: 0 when the run ended as asked; 1 when the remote could not start, crashed for good or a\n"
      "ping failed; 2 for bad arguments.\n");
}

namespace {

/// What every driver's run shares: the options, the report, the services seen, the exercise.
struct Run {
  const Options& o;
  Reporter report;
  Services services;
  Wake crashed;
  long rounds;
  long duration;
  std::string ping_service;
  std::chrono::milliseconds timeout;

  explicit Run(const Options& opts)
      : o(opts),
        report(opts.has("json")),
        rounds(opts.number("rounds", 1, 1, 1000000)),
        duration(opts.number("duration", 0, 0, 86400000)),
        ping_service(opts.get("ping")),
        timeout(opts.number("timeout", 10000, 1, 3600000)) {}

  /// On each new rpmsg device: report the services the remote announces, answer them with --echo.
  void watch(amp::rpmsg::Device& device) {
    device.set_name_service_handler(
        [this](amp::rpmsg::Device& dev, std::string_view name, std::uint32_t addr) {
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
  }

  /// The device went down: let go of what was made on it (after a ping in progress is out of it).
  void unwatch() {
    std::lock_guard using_link(services.using_link);
    std::lock_guard lock(services.m);
    services.echoes.clear();  // destroys them (the device is stopped already)
    services.seen.clear();
    ++services.generation;
  }

  /// --ping, or serving until a signal, --duration, or the remote going down for good. `device` gives the
  /// current rpmsg device (null when there is none) and whether its peer has gone; it is called without
  /// services.using_link. Returns the exit code.
  int exercise(const std::function<amp::rpmsg::Device*(std::function<bool()>* gone)>& device,
               const std::function<bool()>& still_up) {
    if (ping_service.empty()) {
      bool woken = true;
      if (duration > 0) {
        woken = g_wake.wait_for(std::chrono::milliseconds(duration));
      } else {
        g_wake.wait();
      }
      if (woken && !g_interrupted.load()) return 1;  // down for good
      return !woken && !still_up() ? 1 : 0;
    }
    std::unique_lock lock(services.m);
    std::optional<std::uint32_t> addr;
    auto found_it = [&] {
      for (const auto& [name, a] : services.seen)
        if (name == ping_service) addr = a;
      return addr.has_value() || g_interrupted.load();
    };
    // In short slices, so that Ctrl-C (which sets g_interrupted, not this condition) ends the wait soon.
    const auto until = std::chrono::steady_clock::now() + timeout;
    bool found = found_it();
    while (!found && std::chrono::steady_clock::now() < until) {
      found = services.cv.wait_for(lock, std::chrono::milliseconds(100), found_it);
    }
    // The address belongs to this generation of the link: a link-down after this shows as a new one.
    const std::uint64_t generation = services.generation;
    lock.unlock();
    Summary sum;
    double secs = 0;
    bool remote_left = false;
    if (!found || !addr) {
      ++sum.errors;
      sum.first_error = "no '" + ping_service + "' service was announced";
    } else {
      // The device first (the driver's lock; its link-down takes using_link under that lock, so never the
      // other way round), then using_link; a link-down in between shows as a new generation.
      std::function<bool()> gone;
      amp::rpmsg::Device* dev = device(&gone);
      std::lock_guard using_link(services.using_link);
      {
        std::lock_guard l(services.m);
        if (services.generation != generation) dev = nullptr;
      }
      if (dev == nullptr) {
        ++sum.errors;
        sum.first_error = "the remote went away";
      } else {
        const auto t0 = std::chrono::steady_clock::now();
        sum = ping_device(*dev, ping_service, *addr, rounds, false, gone);
        secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        remote_left = gone();
      }
    }
    // The remote hung up during the ping: let the driver see it end (a crash) before stopping it.
    if (remote_left) (void)crashed.wait_for(std::chrono::seconds(2));
    print_summary("run", sum, secs, o.has("json"), ",\"service\":" + json_string(ping_service));
    return sum.errors == 0 && sum.messages > 0 ? 0 : 1;
  }
};

int run_process(const Options& o) {
  if (o.positional.empty()) die("run wants a FIRMWARE (see --help)", 2);
  Run run(o);
  const std::string firmware_path = o.positional.front();
  amp::rproc::ProcessConfig config;
  config.args.assign(o.positional.begin() + 1, o.positional.end());
  config.name = firmware_path.substr(firmware_path.find_last_of('/') + 1);
  config.link.notify = parse_notify(o.get("notify", "eventfd"));
  config.link.buffer_size = static_cast<std::uint32_t>(o.number("buffer-size", 512, 24, 65552));
  if (config.link.buffer_size % 8 != 0) die("--buffer-size must be a multiple of 8", 2);
  config.link.timeout = run.timeout;
  config.memory_size = static_cast<std::size_t>(o.number("memory", 4L << 20, 0x10000, 1L << 30));
  const long max_recoveries = o.number("max-recoveries", 3, 1, 1000);
  const std::vector<std::byte> firmware = read_firmware(firmware_path);

  amp::rproc::ProcessRemote remote(config);
  remote.set_recovery(o.has("recover"), static_cast<std::uint32_t>(max_recoveries));
  remote.on_transition([&](const amp::rproc::Transition& t) {
    std::string why;
    if (t.to == State::kCrashed) why = remote.last_exit();
    run.report.state(t.from, t.to, why);
    if (t.to == State::kCrashed) run.crashed.set();
  });
  remote.on_down([&](const std::string&) { g_wake.set(); });
  remote.on_link_up([&](Link& link) { run.watch(link.device()); });
  remote.on_link_down([&](Link&) { run.unwatch(); });

  g_interruptible = true;  // a signal from here on stops the remote cleanly
  if (auto r = remote.start(firmware); !r) die(r.error().message);
  int code = run.exercise(
      [&](std::function<bool()>* gone) -> amp::rpmsg::Device* {
        Link* link = remote.driver().link();
        if (link == nullptr) return nullptr;
        *gone = [link] { return link->peer_gone(); };
        return &link->device();
      },
      [&] { return remote.state() == State::kRunning; });
  if (auto r = remote.stop(); !r) {
    std::fprintf(stderr, "ampctl: stopping the remote: %s\n", r.error().message.c_str());
    code = 1;
  }
  return code;
}

int run_sysfs(const Options& o) {
  if (o.positional.size() != 1) die("run --driver sysfs wants one FIRMWARE (see --help)", 2);
  if (o.get("remote").empty()) die("run --driver sysfs wants --remote NODE|NAME (see ampctl status)", 2);
  if (o.get("uio").empty())
    die("run --driver sysfs wants --uio NODE|NAME: the remote's memory as UIO maps", 2);
  Run run(o);
  const std::string firmware_path = o.positional.front();
  const std::uint32_t buffer_size = static_cast<std::uint32_t>(o.number("buffer-size", 512, 24, 65552));
  if (buffer_size % 8 != 0) die("--buffer-size must be a multiple of 8", 2);
  amp::rproc::SysfsRoots rroots;
  rroots.sys = o.get("sys", "/sys");
  rroots.firmware_dir = o.get("firmware-dir", "/lib/firmware");
  amp::metal::SysfsRoots mroots{o.get("sys", "/sys"), o.get("dev", "/dev")};

  std::optional<std::pair<std::uint64_t, std::uint64_t>> pool_range;
  if (!o.get("pool").empty()) {
    pool_range = parse_address_range(o.get("pool"));
    if (!pool_range) die("--pool is ADDRESS:SIZE (e.g. 0x3ed10000:0xf0000), not '" + o.get("pool") + "'", 2);
  }

  // The firmware says where its resource table will be: amp reads it there once the kernel started it.
  const std::vector<std::byte> firmware = read_firmware(firmware_path);
  auto image = amp::rproc::ElfImage::parse(firmware);
  if (!image) die("firmware " + firmware_path + ": " + amp::rproc::to_string(image.error()));
  auto rsc = image->resource_table();
  if (!rsc) die("firmware " + firmware_path + ": " + amp::rproc::to_string(rsc.error()));

  // The remote's memory: every map of the UIO device.
  const std::string uio_name = o.get("uio");
  auto uio = amp::metal::find_uio(uio_name, mroots);
  if (!uio) die(uio.error().message);
  std::vector<amp::metal::SharedMemory> maps;
  std::vector<amp::metal::IoRegion> memory;
  for (const amp::metal::UioMap& m : uio->maps()) {
    auto shm = amp::metal::shm::open_uio(*uio, m.index);
    if (!shm) die(shm.error().message);
    memory.push_back(shm->region());
    maps.push_back(std::move(*shm));
  }
  amp::rproc::VdevHostConfig config;
  config.memory = memory;
  config.table_da = rsc->da;
  config.table_size = rsc->data.size();
  config.buffer_size = buffer_size;
  config.timeout = run.timeout;
  if (pool_range) {
    config.pool_da = pool_range->first;
    config.pool_size = static_cast<std::size_t>(pool_range->second);
  } else if (auto pool = uio->map("vdev0buffer")) {
    config.pool_da = (*pool)->addr;
    config.pool_size = (*pool)->size;
  } else {
    die("say where the host may put vrings and buffers: --pool ADDRESS:SIZE (or give the UIO device a map "
        "named vdev0buffer)",
        2);
  }
  std::optional<amp::rproc::RegisterKick> kick;
  if (!o.get("kick").empty()) {  // MAP:OFFSET[:VALUE]
    const std::string k = o.get("kick");
    const auto c1 = k.find(':');
    const auto c2 = c1 == std::string::npos ? c1 : k.find(':', c1 + 1);
    auto map = c1 == std::string::npos ? uio->map(k) : uio->map(k.substr(0, c1));
    if (!map || c1 == std::string::npos) die("--kick is MAP:OFFSET[:VALUE] with a map of " + uio_name, 2);
    auto number = [&](std::size_t from, std::size_t to, std::uint64_t max) {
      const std::string text = k.substr(from, to == std::string::npos ? std::string::npos : to - from);
      auto v = amp::metal::parse_sysfs_number(text);
      if (!v || *v > max) die("--kick is MAP:OFFSET[:VALUE]; '" + text + "' is not a number in range", 2);
      return *v;
    };
    const std::size_t map_size = (*map)->size;
    const std::uint64_t offset = number(c1 + 1, c2, map_size >= 4 ? map_size - 4 : 0);
    if (offset % 4 != 0) die("--kick: the register offset must be a multiple of 4", 2);
    std::optional<std::uint32_t> value;
    if (c2 != std::string::npos)
      value = static_cast<std::uint32_t>(number(c2 + 1, std::string::npos, 0xFFFFFFFFU));
    // The map's region: maps are listed by index, which may have gaps.
    const auto pos = static_cast<std::size_t>(*map - uio->maps().data());
    kick.emplace(memory[pos], offset, value);
    config.kick = &*kick;
  }
  amp::metal::UniqueFd irq;
  if (!o.has("poll")) {
    auto fd = uio->open_irq();
    if (!fd) die(fd.error().message);
    irq = std::move(*fd);
    config.irq_fd = irq.get();
  }

  auto rproc = amp::rproc::SysfsRemoteproc::open(o.get("remote"), rroots);
  if (!rproc) die(rproc.error().message);
  amp::rproc::SysfsDriver driver(*rproc);
  amp::rproc::Lifecycle lifecycle(driver);
  lifecycle.set_listener([&](const amp::rproc::Transition& t) { run.report.state(t.from, t.to, ""); });
  auto fail_with = [&](const char* what) {
    die(std::string(what) + ": " + (driver.last_error().empty() ? "failed" : driver.last_error()));
  };
  if (!ok(lifecycle.load(firmware))) fail_with("loading the firmware");
  if (!ok(lifecycle.start())) fail_with("starting the remote");
  g_interruptible = true;
  // The kernel reports running once it has loaded and booted the remote.
  const auto deadline = std::chrono::steady_clock::now() + run.timeout;
  for (;;) {
    auto st = rproc->state();
    if (st && *st == State::kRunning) break;
    if (g_interrupted.load()) {
      (void)lifecycle.stop();
      die("interrupted while waiting for " + rproc->node() + " to run");
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      (void)lifecycle.stop();
      die("the kernel did not report " + rproc->node() + " running within the timeout");
    }
    (void)g_wake.wait_for(std::chrono::milliseconds(10));
  }
  auto host = amp::rproc::VdevHost::start(config);
  if (!host) {
    (void)lifecycle.stop();
    die("rpmsg over " + uio_name + ": " + host.error().message);
  }
  run.watch((*host)->device());
  const int code = run.exercise(
      [&](std::function<bool()>* gone) -> amp::rpmsg::Device* {
        *gone = [&] { return !(*host)->device().running(); };
        return &(*host)->device();
      },
      [] { return true; });
  run.unwatch();
  (*host)->close();
  if (!ok(lifecycle.stop())) fail_with("stopping the remote");
  return code;
}

}  // namespace

int run_command(int argc, char** argv) {
  const Options o =
      parse(argc, argv, 2,
            {"driver", "ping", "rounds", "max-recoveries", "duration", "notify", "buffer-size", "memory",
             "timeout", "remote", "uio", "pool", "kick", "sys", "dev", "firmware-dir"},
            {"echo", "json", "recover", "poll"}, true);
  const std::string driver = o.get("driver", "process");
  if (driver == "process") return run_process(o);
  if (driver == "sysfs") return run_sysfs(o);
  die("--driver is process or sysfs, not '" + driver + "'", 2);
}

}  // namespace ampctl
