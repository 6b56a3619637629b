// SPDX-License-Identifier: BSD-3-Clause
// ampctl's lifecycle commands for remotes whose life outlives ampctl (the kernel's remoteproc, via sysfs):
//   ampctl status [REMOTE...]      ampctl load REMOTE FIRMWARE      ampctl start|stop|attach|detach REMOTE
#include "lifecycle.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "amp/rproc/elf.hpp"
#include "amp/rproc/linux/sysfs.hpp"
#include "common.hpp"

namespace ampctl {

namespace {

struct Args {
  std::vector<std::string> positional;
  amp::rproc::SysfsRoots roots;
  std::string driver = "sysfs";
  std::string machine;                        // --machine: the firmware must be for this CPU
  std::string debugfs = "/sys/kernel/debug";  // where the kernel exposes remoteproc trace buffers
  bool need_resource_table = false;
  bool json = false;
  std::vector<amp::rproc::MemoryRange> memory;  // --memory: where the remote's segments may go
};

/// "ADDR:SIZE[,ADDR:SIZE...]".
std::vector<amp::rproc::MemoryRange> parse_memory(const std::string& text);

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr, "ampctl: %s (see --help)\n", msg.c_str());
  std::exit(2);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 2; i < argc; ++i) {
    const std::string s = argv[i];
    auto value = [&](const char* what) -> std::string {
      if (i + 1 >= argc) usage_error(std::string("--") + what + " needs a value");
      return argv[++i];
    };
    if (s == "--json") {
      a.json = true;
    } else if (s == "--sys") {
      a.roots.sys = value("sys");
    } else if (s == "--firmware-dir") {
      a.roots.firmware_dir = value("firmware-dir");
    } else if (s == "--driver") {
      a.driver = value("driver");
    } else if (s == "--debugfs") {
      a.debugfs = value("debugfs");
    } else if (s == "--machine") {
      a.machine = value("machine");
    } else if (s == "--need-resource-table") {
      a.need_resource_table = true;
    } else if (s == "--memory") {
      a.memory = parse_memory(value("memory"));
    } else if (s.rfind("--", 0) == 0) {
      usage_error("unknown option " + s);
    } else {
      a.positional.push_back(s);
    }
  }
  if (a.driver != "sysfs") {
    usage_error(
        "the lifecycle commands drive remotes that outlive ampctl: --driver sysfs (the process driver's "
        "remote lives only as long as 'ampctl run')");
  }
  return a;
}

std::vector<amp::rproc::MemoryRange> parse_memory(const std::string& text) {
  std::vector<amp::rproc::MemoryRange> out;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t comma = std::min(text.find(',', pos), text.size());
    const auto range = parse_address_range(std::string_view(text).substr(pos, comma - pos));
    if (!range)
      usage_error("--memory is ADDR:SIZE[,ADDR:SIZE...] (e.g. 0x0:0x40000,0x3ed00000:0x100000), not '" +
                  text + "'");
    out.push_back({range->first, range->second});
    pos = comma + 1;
  }
  return out;
}

/// The ELF checks a firmware file passes before it is handed over; "" when it is fine.
std::string check_firmware(const Args& a, std::span<const std::byte> image) {
  auto elf = amp::rproc::ElfImage::parse(image);
  if (!elf) return amp::rproc::to_string(elf.error());
  if (!a.machine.empty()) {
    static constexpr std::pair<const char*, std::uint16_t> kMachines[] = {
        {"arm", amp::rproc::elf::kMachineArm},
        {"aarch64", amp::rproc::elf::kMachineAarch64},
        {"x86_64", amp::rproc::elf::kMachineX86_64},
        {"riscv", amp::rproc::elf::kMachineRiscv}};
    const auto* m = std::find_if(std::begin(kMachines), std::end(kMachines),
                                 [&](const auto& e) { return a.machine == e.first; });
    if (m == std::end(kMachines))
      usage_error("--machine is arm, aarch64, x86_64 or riscv, not '" + a.machine + "'");
    if (elf->machine() != m->second) {
      return "built for machine " + std::to_string(elf->machine()) + ", not " + a.machine;
    }
  }
  if (a.need_resource_table) {
    if (auto rsc = elf->resource_table(); !rsc) return amp::rproc::to_string(rsc.error());
  }
  if (!a.memory.empty()) {
    std::uint32_t bad = 0;
    if (auto fits = amp::rproc::check_fits(*elf, a.memory, {}, &bad); !fits) {
      if (fits.error() != amp::rproc::ElfError::kSegmentOutsideMemory)
        return amp::rproc::to_string(fits.error());
      const auto ph = elf->program_header(bad);
      char buf[160];
      std::snprintf(buf, sizeof buf,
                    "the segment of program header %u (%llu bytes at 0x%llx) is outside --memory",
                    static_cast<unsigned>(bad), static_cast<unsigned long long>(ph ? ph->segment.memsz : 0),
                    static_cast<unsigned long long>(ph ? ph->segment.da : 0));
      return buf;
    }
  }
  return {};
}

int fail(const std::string& msg) {
  std::fprintf(stderr, "ampctl: %s\n", msg.c_str());
  return 1;
}

/// A command's outcome: with --json also one object on stdout. Returns the exit code.
int outcome(const Args& a, const std::string& cmd, const std::string& remote, const std::string& error) {
  if (a.json) {
    std::printf("{\"command\":\"%s\",\"remote\":%s,\"ok\":%s%s%s}\n", cmd.c_str(),
                json_string(remote).c_str(), error.empty() ? "true" : "false",
                error.empty() ? "" : ",\"error\":", error.empty() ? "" : json_string(error).c_str());
  }
  return error.empty() ? 0 : fail(error);
}

int status(const Args& a) {
  if (auto ok_class = amp::rproc::SysfsRemoteproc::available(a.roots); !ok_class)
    return fail(ok_class.error().message);
  std::vector<std::string> names = a.positional;
  if (names.empty()) names = amp::rproc::SysfsRemoteproc::list(a.roots);
  int rc = 0;
  if (a.json) std::printf("[");
  for (std::size_t i = 0; i < names.size(); ++i) {
    auto r = amp::rproc::SysfsRemoteproc::open(names[i], a.roots);
    if (!r) {
      rc = fail(r.error().message);
      continue;
    }
    const auto name = r->name();
    const auto state = r->state();
    const auto fw = r->firmware();
    const std::string state_text = state ? amp::rproc::to_string(*state) : "unknown";
    if (a.json) {
      std::printf("%s{\"node\":%s,\"name\":%s,\"state\":\"%s\",\"firmware\":%s}", i == 0 ? "" : ",",
                  json_string(r->node()).c_str(), json_string(name ? *name : "").c_str(), state_text.c_str(),
                  json_string(fw ? *fw : "").c_str());
    } else {
      std::printf("%-14s %-16s %-9s %s\n", r->node().c_str(), name ? name->c_str() : "?", state_text.c_str(),
                  fw ? fw->c_str() : "?");
    }
  }
  if (a.json) std::printf("]\n");
  if (names.empty() && !a.json) std::printf("no remote processors\n");
  return rc;
}

/// Prints the remote's trace buffers, which the kernel exposes in debugfs as remoteproc/<node>/trace<N>.
int trace(const Args& a, const amp::rproc::SysfsRemoteproc& r) {
  const std::string dir = a.debugfs + "/remoteproc/" + r.node();
  int printed = 0;
  std::string json = "{\"remote\":" + json_string(r.node()) + ",\"traces\":[";
  for (int i = 0; i < 16; ++i) {
    std::string text;
    if (!read_whole_file(dir + "/trace" + std::to_string(i), text)) {
      if (errno == ENOENT) break;
      return fail("cannot read " + dir + "/trace" + std::to_string(i) + ": " + std::strerror(errno));
    }
    if (const auto nul = text.find('\0'); nul != std::string::npos) text.resize(nul);  // the unused rest
    if (a.json) {
      if (printed != 0) json += ',';
      json += json_string(text);
    } else {
      std::fputs(text.c_str(), stdout);
      if (!text.empty() && text.back() != '\n') std::fputc('\n', stdout);
    }
    ++printed;
  }
  if (printed == 0) return fail("no trace buffers for " + r.node() + " in " + dir + " (is debugfs mounted?)");
  if (a.json) std::printf("%s]}\n", json.c_str());
  return 0;
}

}  // namespace

bool is_lifecycle_command(const std::string& cmd) {
  return cmd == "status" || cmd == "load" || cmd == "start" || cmd == "stop" || cmd == "attach" ||
         cmd == "detach" || cmd == "trace";
}

void lifecycle_help(const std::string& cmd) {
  std::printf(
      "usage: ampctl status [REMOTE...] [--json]\n"
      "       ampctl load REMOTE FIRMWARE [--machine arm|aarch64|x86_64|riscv] [--need-resource-table]\n"
      "                   [--memory ADDR:SIZE[,ADDR:SIZE...]]  (every segment must fit the remote's memory)\n"
      "       ampctl start|stop|attach|detach REMOTE\n"
      "       ampctl trace REMOTE [--debugfs ROOT]  (trace buffers; default root /sys/kernel/debug)\n"
      "all take --json: one JSON object on stdout ({\"command\",\"remote\",\"ok\"[,\"error\"]}; status: a "
      "list;\n"
      "trace: {\"remote\",\"traces\":[...]}).\n"
      "options: --driver sysfs (the default and, for these commands, the only one), --sys ROOT (default "
      "/sys),\n"
      "         --firmware-dir DIR (default /lib/firmware)\n\n"
      "REMOTE is a remoteproc node (remoteproc0) or its name. These commands drive the kernel's remoteproc\n"
      "through /sys/class/remoteproc; 'load' installs FIRMWARE in the firmware directory and names it.\n%s",
      cmd.empty() ? "" : "");
}

int run_lifecycle_command(const std::string& cmd, int argc, char** argv) {
  const Args a = parse(argc, argv);
  if (cmd == "status") return status(a);
  const std::size_t want = cmd == "load" ? 2 : 1;
  if (a.positional.size() != want) {
    usage_error(cmd == "load" ? "load wants REMOTE FIRMWARE" : cmd + " wants REMOTE");
  }
  auto r = amp::rproc::SysfsRemoteproc::open(a.positional[0], a.roots);
  if (!r) return outcome(a, cmd, a.positional[0], r.error().message);
  if (cmd == "trace") return trace(a, *r);
  amp::rproc::SysfsDriver driver(*r);
  amp::Status s = amp::Status::kOk;
  if (cmd == "load") {
    std::string image;
    if (!read_whole_file(a.positional[1], image)) {
      return outcome(a, cmd, r->node(),
                     "cannot read firmware " + a.positional[1] + ": " + std::strerror(errno));
    }
    const auto bytes = std::as_bytes(std::span(image));
    if (const std::string why = check_firmware(a, bytes); !why.empty()) {
      return outcome(a, cmd, r->node(), "firmware " + a.positional[1] + ": " + why);
    }
    s = driver.load(bytes);
  } else if (cmd == "start") {
    s = driver.start();
  } else if (cmd == "stop") {
    s = driver.stop();
  } else if (cmd == "attach") {
    s = driver.attach();
  } else {
    s = driver.detach();
  }
  return outcome(a, cmd, r->node(), ok(s) ? "" : cmd + " " + r->node() + ": " + driver.last_error());
}

}  // namespace ampctl
