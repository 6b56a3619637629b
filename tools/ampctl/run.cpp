// SPDX-License-Identifier: BSD-3-Clause
#include "run.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "amp/rproc/elf.hpp"
#include "amp/rproc/linux/process.hpp"
#include "amp/rproc/linux/qemu.hpp"
#include "amp/rproc/linux/sysfs.hpp"
#include "amp/rproc/linux/vdev_host.hpp"
#include "common.hpp"
#include "link_options.hpp"
#include "ping.hpp"
#include "signals.hpp"
#include "text.hpp"
#include "vhost_user_bridge.hpp"

namespace ampctl {

namespace {

using amp::Status;
using amp::rpmsg::Endpoint;
using amp::rpmsg::Link;
using amp::rpmsg::NotifyMode;
using amp::rproc::State;
namespace elf = amp::rproc::elf;

struct RunOptions {
  CommonOptions common;
  std::string driver = "process";
  std::string firmware;
  std::vector<std::string> args;  // after FIRMWARE (or after --): the native firmware's arguments
  std::string ping;
  long rounds = 1;
  long duration = 0;
  long timeout = 10000;
  long buffer_size = 512;
  bool echo = false;
  std::string vhost_user;  // serve the remote's services to a VM over vhost-user at this socket
  // process
  bool recover = false;
  long max_recoveries = 3;
  NotifyMode notify = NotifyMode::kEventFd;
  long memory = 4L << 20;
  // sysfs
  std::string remote;
  std::string uio;
  std::string pool;
  std::string kick;
  bool poll = false;
  std::string sys = "/sys";
  std::string dev = "/dev";
  std::string firmware_dir = "/lib/firmware";
  // qemu
  std::string board = "virt-a15";
  std::string qemu;
  bool trace = false;
  long watchdog = 2000;  // ms, 0 = off

  struct Given {
    CLI::Option *recover, *max_recoveries;                               // process and qemu
    CLI::Option *notify, *memory;                                        // process only
    CLI::Option *remote, *uio, *pool, *kick, *sys, *dev, *firmware_dir;  // sysfs only
    CLI::Option* poll;                                                   // sysfs and qemu
    CLI::Option *board, *qemu, *trace, *watchdog;                        // qemu only
  } given{};
};

/// What the remote announced, and the host's echo endpoints (--echo).
struct Services {
  std::mutex m;
  std::condition_variable cv;
  std::vector<std::pair<std::string, std::uint32_t>> seen;  // on the current link
  std::list<Endpoint> echoes;
  std::mutex using_link;         // held while --ping uses the link: link-down waits for it
  std::uint64_t generation = 0;  // links gone so far (under m)
};

/// One line per event: text on stderr, or a JSON object per line on stdout. A remote announces its
/// services while it starts, before the lifecycle reports it running: those wait for that line, so the
/// events come in the order they mean.
class Reporter {
 public:
  explicit Reporter(bool json) : json_(json) {}
  void state(State from, State to, const std::string& why) {
    std::lock_guard lock(m_);
    print_state(from, to, why);
    up_ = to == State::kRunning || to == State::kAttached;
    if (!up_) return;
    for (const auto& [name, addr] : early_) print_service(name, addr);
    early_.clear();
  }
  /// `name` is the remote's: escaped for a terminal, lossless in JSON.
  void service(const std::string& name, std::uint32_t addr) {
    std::lock_guard lock(m_);
    if (!up_) {
      early_.emplace_back(name, addr);
      return;
    }
    print_service(name, addr);
  }

 private:
  void print_state(State from, State to, const std::string& why) {
    if (json_) {
      Json j;
      j["event"] = "state";
      j["from"] = to_string(from);
      j["to"] = to_string(to);
      if (!why.empty()) j["why"] = json_bytes(why);
      print_json(j);
    } else {
      std::fprintf(stderr, "ampctl run: remote %s -> %s%s%s\n", to_string(from), to_string(to),
                   why.empty() ? "" : ": ", printable(why).c_str());
    }
  }
  void print_service(const std::string& name, std::uint32_t addr) {
    if (json_) {
      Json j;
      j["event"] = "service";
      j["name"] = json_bytes(name);
      j["address"] = addr;
      print_json(j);
    } else {
      std::printf("service '%s' at address %u\n", printable(name).c_str(), addr);
      std::fflush(stdout);
    }
  }

  std::mutex m_;
  bool json_;
  bool up_ = false;  // the last state reported is running or attached
  std::vector<std::pair<std::string, std::uint32_t>> early_;
};

std::vector<std::byte> read_firmware(const std::string& path) {
  std::string text;
  if (!read_whole_file(path, text)) die("cannot read the firmware " + path + ": " + std::strerror(errno));
  const auto bytes = std::as_bytes(std::span(text));
  return {bytes.begin(), bytes.end()};
}

const char* const kRunHelp = R"(usage: ampctl run [--driver process] FIRMWARE [OPTIONS] [-- FIRMWARE-ARGS...]
       ampctl run --driver sysfs --remote NODE|NAME --uio NODE|NAME FIRMWARE [OPTIONS]
       ampctl run --driver qemu FIRMWARE.elf [OPTIONS]

Brings a remote up and keeps it up: loads FIRMWARE, starts it, creates its virtio devices from its
resource table and runs rpmsg with it; prints each state change and each service the remote
announces; serves until interrupted (SIGINT/SIGTERM), then stops the remote.

drivers:
  process               FIRMWARE is a native firmware: a Linux program built with amp (its
                        .resource_table declares an rpmsg vdev), run as a child process
  sysfs                 the kernel's remoteproc loads and starts FIRMWARE; amp then runs the host's side
                        of its rpmsg vdev in userspace, over the remote's memory as UIO maps:
      --remote NODE|NAME    the remoteproc (see ampctl status)
      --uio NODE|NAME|DEVICE  the UIO device (uio0, its name, or the platform device bound to it, e.g.
                            3ed00000.shm) whose maps are the remote's memory, table included
      --pool ADDR:SIZE      memory for vrings at ANY and the rpmsg buffers (default: the map named
                            vdev0buffer)
      --kick MAP:OFFSET[:VALUE]  how to interrupt the remote: a 32-bit store into a map (the notify id
                            when no VALUE)
      --poll                poll the rings instead of waiting for the UIO interrupt
      --sys DIR --dev DIR --firmware-dir DIR   other roots (tests)
  qemu                  FIRMWARE is a bare-metal ELF for a board QEMU emulates (amp's firmware/baremetal):
                        a new qemu-system-arm (Debian package qemu-system-arm) per load, paused until the
                        image is in its RAM; rpmsg over the RAM, kicks through a doorbell serial line;
                        QEMU ending (a guest fault ends it) is a crash, and so is a firmware that stops
                        answering the watchdog:
      --board BOARD         virt-a15 (QEMU's virt, a Cortex-A15; the default) or mps2-an386 (a Cortex-M4)
      --qemu PATH|NAME      the QEMU program (default qemu-system-arm, from PATH)
      --poll                the firmware and the host poll the rings (no doorbell; a core each)
      --trace               print the firmware's trace buffer at the end, and when it crashes
      --watchdog MS         a firmware that has not answered the host's ping for MS ms is hung (default
                            2000; 0: no watchdog); only firmware whose doorbell entry has ping and pong
  an option of another driver is refused.
options:
  --ping SERVICE        once SERVICE is announced, send messages of every size 1..MTU (--rounds N
                        times), check every echo, print a summary, stop; the exit code says if all matched
  --echo                answer each service the remote announces with an endpoint of the same name,
                        announced back, that echoes every message the remote sends it
  --vhost-user SOCKET   serve the remote's services to a virtual machine: a vhost-user virtio-rpmsg
                        device at SOCKET (User-mode Linux: virtio_uml.device=SOCKET:7) where each service
                        the remote announces is announced to the VM's kernel, and messages are relayed
                        both ways (a service named rpmsg-raw becomes /dev/rpmsgN in the guest)
  --recover             (process, qemu) on a crash, reload and restart the firmware
  --max-recoveries N    (process, qemu) with --recover: give up after N recoveries (default 3)
  --duration MS         stop after MS milliseconds instead of waiting for a signal
  --notify eventfd|socket|poll|adaptive   (process) notifications (default eventfd)
  --buffer-size N       bytes per rpmsg buffer (default 512)
  --memory BYTES        (process) the remote's shared memory (default 4 MiB)
  --timeout MS          how long bringing rpmsg up may take (default 10000)
  --json                events and the summary as JSON lines on stdout
  -v, --verbose         amp's warnings on stderr; twice: debug messages too
The remote's strings (service names, exit reasons) are shown with control characters and bytes >= 0x80
as \xNN; in JSON they are their bytes, each byte >= 0x80 as the character U+0080..U+00FF.
exit code: 0 when the run ended as asked; 1 when the remote could not start, crashed for good or a
ping failed; 2 for bad arguments; 128 + N when signal N interrupted a ping.
)";

/// What every driver's run shares: the options, the report, the services seen, the exercise.
struct Run {
  const RunOptions& o;
  Reporter report;
  Services services;
  Wake crashed;
  std::chrono::milliseconds timeout;

  std::unique_ptr<VhostUserBridge> bridge;  // --vhost-user

  explicit Run(const RunOptions& opts) : o(opts), report(opts.common.json), timeout(opts.timeout) {
    if (!o.vhost_user.empty()) bridge = std::make_unique<VhostUserBridge>(o.vhost_user, o.common.json);
  }

  /// On each new rpmsg device: report the services the remote announces, answer them with --echo.
  void watch(amp::rpmsg::Device& device) {
    device.set_name_service_handler(
        [this](amp::rpmsg::Device& dev, std::string_view name, std::uint32_t addr) {
          report.service(std::string(name), addr);
          if (bridge) bridge->remote_service(dev, name, addr);
          std::lock_guard lock(services.m);
          services.seen.emplace_back(std::string(name), addr);
          if (o.echo) {
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
    if (bridge) bridge->remote_gone();
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
    if (o.ping.empty()) {
      bool woken = true;
      if (o.duration > 0) {
        woken = g_wake.wait_for(std::chrono::milliseconds(o.duration));
      } else {
        g_wake.wait();
      }
      if (woken && !interrupted()) return 1;  // down for good
      return !woken && !still_up() ? 1 : 0;
    }
    const InterruptHook hook([this] {
      std::lock_guard lock(services.m);
      services.cv.notify_all();
    });
    std::unique_lock lock(services.m);
    std::optional<std::uint32_t> addr;
    const bool found = services.cv.wait_for(lock, timeout, [&] {
      for (const auto& [name, a] : services.seen)
        if (name == o.ping) addr = a;
      return addr.has_value() || interrupted();
    });
    // The address belongs to this generation of the link: a link-down after this shows as a new one.
    const std::uint64_t generation = services.generation;
    lock.unlock();
    Summary sum;
    double secs = 0;
    bool remote_left = false;
    if (!addr) {
      if (found) {
        sum.interrupted = true;
      } else {
        ++sum.errors;
        sum.first_error = "no '" + o.ping + "' service was announced";
      }
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
        sum = ping_device(*dev, o.ping, *addr, o.rounds, false, gone);
        secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        remote_left = gone() || !dev->running();
      }
    }
    // The remote hung up during the ping: let the driver see it end (a crash) before stopping it.
    if (remote_left) (void)crashed.wait_for(std::chrono::seconds(2));
    Json extra;
    extra["service"] = json_bytes(o.ping);
    print_summary("run", sum, secs, o.common.json, extra);
    return exit_code(sum);
  }
};

/// The native firmware's ELF checks that ampctl makes itself, so that the message names the file and the
/// machines (the process driver checks the rest).
void check_native_firmware(const std::string& path, std::span<const std::byte> image) {
  auto elf_image = amp::rproc::ElfImage::parse(image, {.allow_position_independent = true});
  if (!elf_image) die("firmware " + path + ": " + amp::rproc::to_string(elf_image.error()));
  const std::uint16_t here = host_machine();
  if (here != elf::kMachineNone && elf_image->machine() != here) {
    die("firmware " + path + ": built for " + elf::machine_name(elf_image->machine()).c_str() +
        ", this machine is " + elf::machine_name(here).c_str());
  }
}

int run_process(const RunOptions& o) {
  if (o.firmware.empty()) usage_error("run wants a FIRMWARE");
  refuse_given({o.given.remote, o.given.uio, o.given.pool, o.given.kick, o.given.sys, o.given.dev,
                o.given.firmware_dir},
               "only for --driver sysfs");
  refuse_given({o.given.poll}, "only for --driver sysfs or qemu");
  refuse_given({o.given.board, o.given.qemu, o.given.trace, o.given.watchdog}, "only for --driver qemu");
  if (o.buffer_size % 8 != 0) usage_error("--buffer-size must be a multiple of 8");
  Run run(o);
  amp::rproc::ProcessConfig config;
  config.args = o.args;
  config.name = o.firmware.substr(o.firmware.find_last_of('/') + 1);
  config.link.notify = o.notify;
  config.link.buffer_size = static_cast<std::uint32_t>(o.buffer_size);
  config.link.timeout = run.timeout;
  config.memory_size = static_cast<std::size_t>(o.memory);
  const std::vector<std::byte> firmware = read_firmware(o.firmware);
  check_native_firmware(o.firmware, firmware);

  amp::rproc::ProcessRemote remote(config);
  remote.set_recovery(o.recover, static_cast<std::uint32_t>(o.max_recoveries));
  remote.on_transition([&](const amp::rproc::Transition& t) {
    std::string why;
    if (t.to == State::kCrashed) why = remote.last_exit();
    run.report.state(t.from, t.to, why);
    if (t.to == State::kCrashed) run.crashed.set();
  });
  remote.on_down([&](const std::string&) { g_wake.set(); });
  remote.on_link_up([&](Link& link) { run.watch(link.device()); });
  remote.on_link_down([&](Link&) { run.unwatch(); });

  set_interruptible(true);  // a signal from here on stops the remote cleanly
  if (auto r = remote.start(firmware); !r) {
    // The driver's messages say "firmware: ...": name the file.
    std::string msg = r.error().message;
    if (msg.rfind("firmware: ", 0) == 0) msg = "firmware " + o.firmware + msg.substr(8);
    die(msg);
  }
  int code = run.exercise(
      [&](std::function<bool()>* gone) -> amp::rpmsg::Device* {
        Link* link = remote.driver().link();
        if (link == nullptr) return nullptr;
        *gone = [link] { return link->peer_gone(); };
        return &link->device();
      },
      [&] { return remote.state() == State::kRunning; });
  if (auto r = remote.stop(); !r) {
    print_error("stopping the remote: " + r.error().message);
    code = 1;
  }
  return code;
}

int run_sysfs(const RunOptions& o) {
  if (o.firmware.empty() || !o.args.empty()) usage_error("run --driver sysfs wants one FIRMWARE");
  refuse_given({o.given.recover, o.given.max_recoveries}, "only for --driver process or qemu");
  refuse_given({o.given.notify, o.given.memory}, "only for --driver process");
  refuse_given({o.given.board, o.given.qemu, o.given.trace, o.given.watchdog}, "only for --driver qemu");
  if (o.remote.empty()) usage_error("run --driver sysfs wants --remote NODE|NAME (see ampctl status)");
  if (o.uio.empty()) usage_error("run --driver sysfs wants --uio NODE|NAME: the remote's memory as UIO maps");
  if (o.buffer_size % 8 != 0) usage_error("--buffer-size must be a multiple of 8");
  Run run(o);
  const std::string& firmware_path = o.firmware;
  const auto buffer_size = static_cast<std::uint32_t>(o.buffer_size);
  amp::rproc::SysfsRoots rroots;
  rroots.sys = o.sys;
  rroots.firmware_dir = o.firmware_dir;
  amp::metal::SysfsRoots mroots{o.sys, o.dev};

  std::optional<std::pair<std::uint64_t, std::uint64_t>> pool_range;
  if (!o.pool.empty()) {
    pool_range = parse_address_range(o.pool);
    if (!pool_range) usage_error("--pool is ADDRESS:SIZE (e.g. 0x3ed10000:0xf0000), not '" + o.pool + "'");
  }

  // The firmware says where its resource table will be: amp reads it there once the kernel started it.
  const std::vector<std::byte> firmware = read_firmware(firmware_path);
  auto image = amp::rproc::ElfImage::parse(firmware);
  if (!image) die("firmware " + firmware_path + ": " + amp::rproc::to_string(image.error()));
  auto rsc = image->resource_table();
  if (!rsc) die("firmware " + firmware_path + ": " + amp::rproc::to_string(rsc.error()));

  // The remote's memory: every map of the UIO device.
  const std::string& uio_name = o.uio;
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
    usage_error(
        "say where the host may put vrings and buffers: --pool ADDRESS:SIZE (or give the UIO device a map "
        "named "
        "vdev0buffer)");
  }
  std::optional<amp::rproc::RegisterKick> kick;
  if (!o.kick.empty()) {  // MAP:OFFSET[:VALUE]
    const std::string& k = o.kick;
    const auto c1 = k.find(':');
    const auto c2 = c1 == std::string::npos ? c1 : k.find(':', c1 + 1);
    auto map = c1 == std::string::npos ? uio->map(k) : uio->map(k.substr(0, c1));
    if (!map || c1 == std::string::npos)
      usage_error("--kick is MAP:OFFSET[:VALUE] with a map of " + uio_name);
    auto number = [&](std::size_t from, std::size_t to, std::uint64_t max) {
      const std::string text = k.substr(from, to == std::string::npos ? std::string::npos : to - from);
      auto v = amp::metal::parse_sysfs_number(text);
      if (!v || *v > max)
        usage_error("--kick is MAP:OFFSET[:VALUE]; '" + text + "' is not a number in range");
      return *v;
    };
    const std::size_t map_size = (*map)->size;
    const std::uint64_t offset = number(c1 + 1, c2, map_size >= 4 ? map_size - 4 : 0);
    if (offset % 4 != 0) usage_error("--kick: the register offset must be a multiple of 4");
    std::optional<std::uint32_t> value;
    if (c2 != std::string::npos)
      value = static_cast<std::uint32_t>(number(c2 + 1, std::string::npos, 0xFFFFFFFFU));
    // The map's region: maps are listed by index, which may have gaps.
    const auto pos = static_cast<std::size_t>(*map - uio->maps().data());
    kick.emplace(memory[pos], offset, value);
    config.kick = &*kick;
  }
  amp::metal::UniqueFd irq;
  if (!o.poll) {
    auto fd = uio->open_irq();
    if (!fd) die(fd.error().message);
    irq = std::move(*fd);
    config.irq_fd = irq.get();
  }

  auto rproc = amp::rproc::SysfsRemoteproc::open(o.remote, rroots);
  if (!rproc) die(rproc.error().message);
  amp::rproc::SysfsDriver driver(*rproc);
  amp::rproc::Lifecycle lifecycle(driver);
  lifecycle.set_listener([&](const amp::rproc::Transition& t) { run.report.state(t.from, t.to, ""); });
  auto fail_with = [&](const char* what) {
    die(std::string(what) + ": " + (driver.last_error().empty() ? "failed" : driver.last_error()));
  };
  if (!ok(lifecycle.load(firmware))) fail_with("loading the firmware");
  if (!ok(lifecycle.start())) fail_with("starting the remote");
  set_interruptible(true);
  // The kernel reports running once it has loaded and booted the remote.
  const auto deadline = std::chrono::steady_clock::now() + run.timeout;
  for (;;) {
    auto st = rproc->state();
    if (st && *st == State::kRunning) break;
    if (interrupted()) {
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

/// The firmware's trace buffer, on stdout: at the end of the run, or when it crashed.
void print_trace(const std::string& text, const char* when, bool json) {
  if (json) {
    Json j;
    j["event"] = "trace";
    j["when"] = when;
    j["text"] = json_bytes(text);
    print_json(j);
    return;
  }
  // One write: the summary may be printed on another thread meanwhile.
  std::string out = std::string("firmware trace (") + when + "):\n";
  std::string_view rest(text);
  while (!rest.empty()) {
    const auto nl = rest.find('\n');
    out += "  " + printable(rest.substr(0, nl)) + "\n";
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
  }
  std::fputs(out.c_str(), stdout);
  std::fflush(stdout);
}

int run_qemu(const RunOptions& o) {
  if (o.firmware.empty() || !o.args.empty()) usage_error("run --driver qemu wants one FIRMWARE");
  refuse_given({o.given.remote, o.given.uio, o.given.pool, o.given.kick, o.given.sys, o.given.dev,
                o.given.firmware_dir},
               "only for --driver sysfs");
  refuse_given({o.given.notify, o.given.memory}, "only for --driver process");
  if (o.buffer_size % 8 != 0) usage_error("--buffer-size must be a multiple of 8");
  Run run(o);
  amp::rproc::QemuConfig config;
  auto board = amp::rproc::QemuBoard::named(o.board);
  if (!board)
    usage_error(std::string("--board is ") + amp::rproc::QemuBoard::known_names() + ", not '" + o.board +
                "'");
  config.board = *board;
  config.binary = o.qemu;
  config.poll = o.poll;
  config.buffer_size = static_cast<std::uint32_t>(o.buffer_size);
  config.timeout = run.timeout;
  config.watchdog = std::chrono::milliseconds(o.watchdog);
  const std::vector<std::byte> firmware = read_firmware(o.firmware);

  amp::rproc::QemuRemote remote(config);
  remote.set_recovery(o.recover, static_cast<std::uint32_t>(o.max_recoveries));
  remote.on_transition([&](const amp::rproc::Transition& t) {
    std::string why;
    if (t.to == State::kCrashed) why = remote.last_exit();
    run.report.state(t.from, t.to, why);
    if (t.to == State::kCrashed) {
      // The dead guest's memory is still there until a recovery loads the next one.
      if (o.trace) print_trace(remote.driver().trace(), "crash", o.common.json);
      run.crashed.set();
    }
  });
  remote.on_down([&](const std::string&) { g_wake.set(); });
  remote.on_link_up([&](amp::rpmsg::Device& device) { run.watch(device); });
  remote.on_link_down([&](amp::rpmsg::Device&) { run.unwatch(); });

  set_interruptible(true);  // a signal from here on stops the remote cleanly
  if (auto r = remote.start(firmware); !r) {
    std::string msg = r.error().message;
    if (msg.rfind("firmware: ", 0) == 0) msg = "firmware " + o.firmware + msg.substr(8);
    die(msg);
  }
  int code = run.exercise(
      [&](std::function<bool()>* gone) -> amp::rpmsg::Device* {
        amp::rpmsg::Device* dev = remote.driver().device();
        if (dev == nullptr) return nullptr;
        *gone = [dev] { return !dev->running(); };
        return dev;
      },
      [&] { return remote.state() == State::kRunning; });
  if (auto r = remote.stop(); !r) {
    print_error("stopping the remote: " + r.error().message);
    code = 1;
  }
  if (o.trace) print_trace(remote.driver().trace(), "end", o.common.json);
  return code;
}

}  // namespace

void add_run_command(CLI::App& root, std::vector<Command>& commands) {
  auto o = std::make_shared<RunOptions>();
  CLI::App* app = add_command(root, "run", "bring a remote up and serve it", kRunHelp, o->common);
  auto& g = o->given;
  add_choice<std::string>(*app, "--driver", o->driver,
                          {{"process", "process"}, {"sysfs", "sysfs"}, {"qemu", "qemu"}},
                          "process, sysfs or qemu");
  app->add_option("firmware", o->firmware);
  app->add_option("args", o->args);
  add_text(*app, "--ping", o->ping, "SERVICE");
  add_number(*app, "--rounds", o->rounds, 1, 1000000);
  add_number(*app, "--duration", o->duration, 0, 86400000);
  add_number(*app, "--timeout", o->timeout, 1, 3600000);
  add_number(*app, "--buffer-size", o->buffer_size, 24, 65544);
  app->add_flag("--echo", o->echo);
  add_text(*app, "--vhost-user", o->vhost_user, "SOCKET");
  g.recover = app->add_flag("--recover", o->recover);
  g.max_recoveries = add_number(*app, "--max-recoveries", o->max_recoveries, 1, 1000);
  g.notify = add_notify_option(*app, o->notify);
  g.memory = add_number(*app, "--memory", o->memory, 0x10000, 1L << 30);
  g.remote = add_text(*app, "--remote", o->remote, "NODE|NAME");
  g.uio = add_text(*app, "--uio", o->uio, "NODE|NAME|DEVICE");
  g.pool = add_text(*app, "--pool", o->pool, "ADDR:SIZE");
  g.kick = add_text(*app, "--kick", o->kick, "MAP:OFFSET[:VALUE]");
  g.poll = app->add_flag("--poll", o->poll);
  g.sys = add_text(*app, "--sys", o->sys, "DIR");
  g.dev = add_text(*app, "--dev", o->dev, "DIR");
  g.firmware_dir = add_text(*app, "--firmware-dir", o->firmware_dir, "DIR");
  g.board = add_text(*app, "--board", o->board, "BOARD");
  g.qemu = add_text(*app, "--qemu", o->qemu, "PATH|NAME");
  g.trace = app->add_flag("--trace", o->trace);
  g.watchdog = add_number(*app, "--watchdog", o->watchdog, 0, 3600000);
  commands.push_back({app, &o->common, [o] {
                        if (o->driver == "sysfs") return run_sysfs(*o);
                        if (o->driver == "qemu") return run_qemu(*o);
                        return run_process(*o);
                      }});
}

}  // namespace ampctl
