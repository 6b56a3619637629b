// SPDX-License-Identifier: BSD-3-Clause
// ampctl: amp's command-line tool. The commands are CLI11 subcommands (link_commands, run, lifecycle);
// this file parses, runs the one chosen and turns what ended it into an exit code and a message.
#include <csignal>
#include <cstdio>
#include <exception>
#include <regex>
#include <string>
#include <vector>

#include "amp/metal/log.hpp"
#include "ampd_commands.hpp"
#include "cli.hpp"
#include "lifecycle.hpp"
#include "link_commands.hpp"
#include "log_command.hpp"
#include "run.hpp"
#include "signals.hpp"
#include "text.hpp"

#ifndef AMPCTL_VERSION
#error "AMPCTL_VERSION (the project's version) comes from tools/CMakeLists.txt"
#endif

namespace {

using namespace ampctl;

const char* const kUsage = R"(usage: ampctl COMMAND [OPTIONS]
       ampctl --version

amp's command-line tool: RPMsg between Linux processes, either role, no root or kernel modules.

commands:
  demo    start an emulated remote that serves echo, find it through the name service, send messages of
          every size from 1 byte to the MTU, check every echo, print messages, bytes, round-trip p50/p99
  echo    serve an echo endpoint (stops on the peer's hang-up, its unbind, or OpenAMP's shutdown value)
  ping    find an echo service by name, send messages of every size, check every echo, print a summary
  run     bring a remote up with its firmware (a native firmware as a process, a bare-metal one under
          QEMU, or one the kernel runs), show the services it announces, optionally ping one or echo
          them, serve until interrupted, recover from crashes
  status, load, start, stop, attach, detach, trace
          the lifecycle (and trace buffers) of remote processors the kernel runs (remoteproc, via sysfs)

every command takes --json (its outcome as JSON on stdout; strings are their bytes, each byte >= 0x80 as
the character U+0080..U+00FF) and -v/--verbose (amp's warnings on stderr; twice: debug messages too).
exit codes: 0 done, 1 failed, 2 bad arguments, 128 + N ended by signal N.
run 'ampctl COMMAND --help' for a command's options.
)";

/// CLI11's own wording, in ampctl's where it has a standard shape ("--rounds: 1 required N missing").
std::string parse_error_message(const CLI::ParseError& e) {
  const std::string what = e.what();
  static const std::regex kMissing("^(-[^:]+): 1 required (.+) missing$");
  static const std::regex kTwice("^(-[^:]+): At Most 1 required but received ([0-9]+)$");
  std::smatch m;
  if (std::regex_match(what, m, kMissing)) return m[1].str() + " wants a value (" + m[2].str() + ")";
  if (std::regex_match(what, m, kTwice)) return m[1].str() + " takes one value, not " + m[2].str();
  return what;
}

/// An argument no option took: "unknown option --x" or "unexpected argument 'x'".
void refuse_extras(const std::vector<std::string>& extras) {
  for (const std::string& e : extras) {
    if (e == "--") continue;  // CLI11 keeps the separator it honoured
    if (e.rfind('-', 0) == 0) usage_error("unknown option " + e.substr(0, e.find('=')));
    usage_error("unexpected argument '" + e + "'");
  }
}

int report(const Failure& f, const Command* cmd) {
  print_error(f.message);
  // With --json an outcome on stdout too, whatever the command (usage errors have none: no command ran).
  if (cmd != nullptr && cmd->common->json && f.code != kExitUsage) {
    Json j;
    j["command"] = cmd->app->get_name();
    j["ok"] = false;
    j["error"] = json_bytes(f.message);
    if (f.interrupted) j["interrupted"] = true;
    print_json(j);
  }
  return f.code;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  watch_signals();
  amp::metal::set_log_level(amp::metal::LogLevel::kError);

  CLI::App app("amp's command-line tool", "ampctl");
  app.formatter_fn(
      [](const CLI::App*, const std::string&, CLI::AppFormatMode) { return std::string(kUsage); });
  app.set_version_flag("--version", "ampctl " AMPCTL_VERSION);
  app.allow_extras();  // inherited by the commands: unknown arguments get ampctl's own message
  app.require_subcommand(0, 1);
  std::vector<Command> commands;
  add_link_commands(app, commands);
  add_run_command(app, commands);
  add_lifecycle_commands(app, commands);
  add_log_command(app, commands);
  add_ampd_commands(app, commands);

  const Command* chosen = nullptr;
  try {
    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);  // --help...
      usage_error(parse_error_message(e));
    }
    for (const Command& c : commands) {
      if (c.app->parsed()) chosen = &c;
    }
    if (chosen == nullptr) {
      for (const std::string& e : app.remaining()) {
        if (e.rfind('-', 0) == 0) refuse_extras({e});
        std::fprintf(stderr, "ampctl: unknown command '%s'\n\n%s", printable(e).c_str(), kUsage);
        return kExitUsage;
      }
      std::fputs(kUsage, stdout);
      return kExitUsage;
    }
    refuse_extras(app.remaining());
    refuse_extras(chosen->app->remaining());
    const int verbose = chosen->common->verbose;
    amp::metal::set_log_level(verbose >= 2   ? amp::metal::LogLevel::kDebug
                              : verbose == 1 ? amp::metal::LogLevel::kWarning
                                             : amp::metal::LogLevel::kError);
    return chosen->run();
  } catch (const Failure& f) {
    return report(f, chosen);
  } catch (const std::exception& e) {
    return report(Failure{std::string("internal error: ") + e.what()}, chosen);
  }
}
