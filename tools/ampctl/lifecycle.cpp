// SPDX-License-Identifier: BSD-3-Clause
// ampctl's lifecycle commands for remotes whose life outlives ampctl (the kernel's remoteproc, via sysfs):
//   ampctl status [REMOTE...]      ampctl load REMOTE FIRMWARE      ampctl start|stop|attach|detach REMOTE
//   ampctl trace REMOTE
#include "lifecycle.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "amp/rproc/elf.hpp"
#include "amp/rproc/linux/sysfs.hpp"
#include "common.hpp"
#include "log_command.hpp"
#include "text.hpp"

namespace ampctl {

namespace {

namespace elf = amp::rproc::elf;

struct LifecycleOptions {
  CommonOptions common;
  std::vector<std::string> positional;
  amp::rproc::SysfsRoots roots;
  std::string machine_name;                   // --machine, as given
  std::uint16_t machine = elf::kMachineNone;  // --machine: the firmware must be for this CPU
  std::string debugfs = "/sys/kernel/debug";  // where the kernel exposes remoteproc trace buffers
  std::string elf;                            // trace --elf: the image whose log dictionary renders the trace
  bool need_resource_table = false;
  std::vector<amp::rproc::MemoryRange> memory;  // --memory: where the remote's segments may go
};

/// "ADDR:SIZE[,ADDR:SIZE...]".
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
std::string check_firmware(const LifecycleOptions& a, std::span<const std::byte> image) {
  auto elf = amp::rproc::ElfImage::parse(image);
  if (!elf) return amp::rproc::to_string(elf.error());
  if (a.machine != elf::kMachineNone && elf->machine() != a.machine) {
    return std::string("built for ") + elf::machine_name(elf->machine()).c_str() + ", not " +
           elf::machine_name(a.machine).c_str() + " (--machine " + a.machine_name + ")";
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
  print_error(msg);
  return kExitFailed;
}

/// A command's outcome: with --json also one object on stdout. Returns the exit code.
int outcome(const LifecycleOptions& a, const std::string& cmd, const std::string& remote,
            const std::string& error) {
  if (a.common.json) {
    Json j;
    j["command"] = cmd;
    j["remote"] = json_bytes(remote);
    j["ok"] = error.empty();
    if (!error.empty()) j["error"] = json_bytes(error);
    print_json(j);
  }
  return error.empty() ? 0 : fail(error);
}

int status(const LifecycleOptions& a) {
  // No remoteproc at all: an error like any other command's (with --json: the error object).
  if (auto ok_class = amp::rproc::SysfsRemoteproc::available(a.roots); !ok_class)
    die(ok_class.error().message);
  std::vector<std::string> names = a.positional;
  if (names.empty()) names = amp::rproc::SysfsRemoteproc::list(a.roots);
  int rc = 0;
  Json list = Json::array();
  for (const std::string& wanted : names) {
    auto r = amp::rproc::SysfsRemoteproc::open(wanted, a.roots);
    if (!r) {
      rc = fail(r.error().message);
      continue;
    }
    const auto name = r->name();
    const auto state = r->state();
    const auto fw = r->firmware();
    const std::string state_text = state ? amp::rproc::to_string(*state) : "unknown";
    if (a.common.json) {
      Json j;
      j["node"] = json_bytes(r->node());
      j["name"] = json_bytes(name ? *name : "");
      j["state"] = state_text;
      j["firmware"] = json_bytes(fw ? *fw : "");
      list.push_back(std::move(j));
    } else {
      std::printf("%-14s %-16s %-9s %s\n", printable(r->node()).c_str(),
                  name ? printable(*name).c_str() : "?", state_text.c_str(),
                  fw ? printable(*fw).c_str() : "?");
    }
  }
  if (a.common.json) {
    print_json(list);
  } else if (names.empty()) {
    std::printf("no remote processors\n");
  }
  return rc;
}

/// Prints the remote's trace buffers, which the kernel exposes in debugfs as remoteproc/<node>/trace<N>.
/// A firmware that logs by dictionary has its records rendered with the image's formats: --elf's, else the
/// remote's firmware file as sysfs names it, when that is in the firmware directory.
int trace(const LifecycleOptions& a, const amp::rproc::SysfsRemoteproc& r) {
  amp::rproc::LogDictionary dictionary;
  std::string error;
  if (!a.elf.empty()) {
    auto d = dictionary_of(a.elf, error);
    if (!d) return fail("--elf " + error);
    dictionary = std::move(*d);
  } else if (auto name = r.firmware(); name && !name->empty()) {
    if (auto d = dictionary_of((a.roots.firmware_dir / *name).string(), error)) dictionary = std::move(*d);
  }
  const std::string dir = a.debugfs + "/remoteproc/" + r.node();
  Json traces = Json::array();
  std::string text_out;
  for (int i = 0; i < 16; ++i) {
    std::string text;
    if (!read_whole_file(dir + "/trace" + std::to_string(i), text)) {
      if (errno == ENOENT) break;
      return fail("cannot read " + dir + "/trace" + std::to_string(i) + ": " + std::strerror(errno));
    }
    if (const auto nul = text.find('\0'); nul != std::string::npos) text.resize(nul);  // the unused rest
    text = dictionary.render_text(text);
    traces.push_back(json_bytes(text));
    // The firmware wrote it: line breaks stay, escape sequences do not reach the terminal.
    text_out += printable_lines(text);
    if (!text.empty() && text.back() != '\n') text_out += '\n';
  }
  if (traces.empty())
    return fail("no trace buffers for " + r.node() + " in " + dir + " (is debugfs mounted?)");
  if (a.common.json) {
    Json j;
    j["remote"] = json_bytes(r.node());
    j["traces"] = std::move(traces);
    print_json(j);
  } else {
    std::fputs(text_out.c_str(), stdout);
  }
  return 0;
}

int run_lifecycle(const std::string& cmd, const LifecycleOptions& a) {
  if (cmd == "status") return status(a);
  const std::size_t want = cmd == "load" ? 2 : 1;
  if (a.positional.size() != want)
    usage_error(cmd == "load" ? "load wants REMOTE FIRMWARE" : cmd + " wants REMOTE");
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

const char* const kLifecycleHelp = R"(usage: ampctl status [REMOTE...] [--json]
       ampctl load REMOTE FIRMWARE [--machine arm|aarch64|x86_64|riscv] [--need-resource-table]
                   [--memory ADDR:SIZE[,ADDR:SIZE...]]  (every segment must fit the remote's memory)
       ampctl start|stop|attach|detach REMOTE
       ampctl trace REMOTE [--debugfs ROOT] [--elf FIRMWARE]  (trace buffers; default root /sys/kernel/debug;
                   the log records of a firmware built with dictionary logging are rendered with the
                   formats of FIRMWARE, by default the remote's firmware file if it is in the firmware dir)
all take --json: one JSON object on stdout ({"command","remote","ok"[,"error"]}; status: a list, or the
error object when there is no remoteproc; trace: {"remote","traces":[...]}). Strings in JSON are their
bytes, each byte >= 0x80 as the character U+0080..U+00FF; in text, control characters and bytes >= 0x80
are shown as \xNN.
options: --driver sysfs (the default and, for these commands, the only one), --sys ROOT (default /sys),
         --firmware-dir DIR (default /lib/firmware), -v/--verbose (amp's warnings on stderr)

REMOTE is a remoteproc node (remoteproc0) or its name. These commands drive the kernel's remoteproc
through /sys/class/remoteproc; 'load' installs FIRMWARE in the firmware directory and names it.
)";

}  // namespace

void add_lifecycle_commands(CLI::App& root, std::vector<Command>& commands) {
  const std::pair<const char*, const char*> kCommands[] = {{"status", "the kernel's remote processors"},
                                                           {"load", "install and name a remote's firmware"},
                                                           {"start", "start a remote"},
                                                           {"stop", "stop a remote"},
                                                           {"attach", "attach to a running remote"},
                                                           {"detach", "detach from a remote"},
                                                           {"trace", "print a remote's trace buffers"}};
  for (const auto& [name, summary] : kCommands) {
    const std::string cmd = name;
    auto o = std::make_shared<LifecycleOptions>();
    CLI::App* app = add_command(root, cmd, summary, kLifecycleHelp, o->common);
    app->add_option("remote", o->positional);
    add_parsed(*app, "--sys", "ROOT", [o](const std::string& s) { o->roots.sys = s; });
    add_parsed(*app, "--firmware-dir", "DIR", [o](const std::string& s) { o->roots.firmware_dir = s; });
    add_parsed(*app, "--driver", "sysfs", [](const std::string& s) {
      if (s != "sysfs") {
        usage_error(
            "the lifecycle commands drive remotes that outlive ampctl: --driver sysfs (the process driver's "
            "remote lives only as long as 'ampctl run')");
      }
    });
    if (cmd == "load") {
      add_parsed(*app, "--machine", "arm|aarch64|x86_64|riscv", [o](const std::string& s) {
        static constexpr std::pair<const char*, std::uint16_t> kMachines[] = {
            {"arm", elf::kMachineArm},
            {"aarch64", elf::kMachineAarch64},
            {"x86_64", elf::kMachineX86_64},
            {"riscv", elf::kMachineRiscv}};
        const auto* m = std::find_if(std::begin(kMachines), std::end(kMachines),
                                     [&](const auto& e) { return s == e.first; });
        if (m == std::end(kMachines))
          usage_error("--machine is arm, aarch64, x86_64 or riscv, not '" + s + "'");
        o->machine_name = s;
        o->machine = m->second;
      });
      app->add_flag("--need-resource-table", o->need_resource_table);
      add_parsed(*app, "--memory", "ADDR:SIZE[,...]",
                 [o](const std::string& s) { o->memory = parse_memory(s); });
    }
    if (cmd == "trace") {
      add_text(*app, "--debugfs", o->debugfs, "ROOT");
      add_text(*app, "--elf", o->elf, "FIRMWARE");
    }
    commands.push_back({app, &o->common, [cmd, o] { return run_lifecycle(cmd, *o); }});
  }
}

}  // namespace ampctl
