// SPDX-License-Identifier: BSD-3-Clause
// ampctl's command line: how a command is registered (a CLI11 subcommand and the function that runs it),
// how a command ends with an error (Failure, exit codes), and the option helpers that keep every message in
// one style: one line naming the option and what it wants ("--rounds wants a number in [1, 1000000], not
// '0'").
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

namespace ampctl {

/// Exit codes: 0 done, 1 failed, 2 bad arguments, 128 + N ended by signal N (130 for SIGINT).
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;

/// Ends the command: main prints "ampctl: MESSAGE" on stderr (with --json, also an error object on stdout)
/// and exits with `code`. Thrown rather than exit()ed, so that destructors run on the way out (a listener's
/// socket file is removed, a remote stopped).
struct Failure {
  std::string message;
  int code = kExitFailed;
  bool interrupted = false;  ///< a signal ended it (code is then 128 + N)
};

/// Throws a Failure.
[[noreturn]] void die(const std::string& msg, int code = kExitFailed);
/// A bad argument: exit code 2, " (see --help)" after the message.
[[noreturn]] void usage_error(const std::string& msg);

/// "ampctl: MESSAGE" on stderr, the message escaped for a terminal (see text.hpp).
void print_error(const std::string& msg);

/// What every command takes.
struct CommonOptions {
  bool json = false;  ///< --json: the outcome as JSON on stdout
  int verbose = 0;    ///< -v/--verbose (once: amp's warnings on stderr; twice or --verbose=2: debug too)
};

/// A registered command: its subcommand, what every command takes, and what runs it once its arguments
/// are parsed (returns the exit code).
struct Command {
  CLI::App* app = nullptr;
  CommonOptions* common = nullptr;
  std::function<int()> run;
};

/// Adds subcommand `name` to `root` with `help` as its whole --help text, and --json, -v/--verbose.
CLI::App* add_command(CLI::App& root, const std::string& name, const std::string& summary, std::string help,
                      CommonOptions& common);

/// --NAME N: a number (decimal, 0x-hex or 0-octal) in [min, max].
CLI::Option* add_number(CLI::App& app, const std::string& name, long& value, long min, long max);
/// --NAME TEXT: any non-empty text.
CLI::Option* add_text(CLI::App& app, const std::string& name, std::string& value,
                      const std::string& type = "TEXT");
/// --NAME CHOICE: one of `choices`, else "--NAME is `expected`, not 'x'".
template <class T>
CLI::Option* add_choice(CLI::App& app, const std::string& name, T& value,
                        std::vector<std::pair<std::string, T>> choices, const std::string& expected);
/// --NAME VALUE, parsed by `parse` (which calls usage_error for a bad value).
CLI::Option* add_parsed(CLI::App& app, const std::string& name, const std::string& type,
                        std::function<void(const std::string&)> parse);

/// Whether the option was given (false for a null option).
bool given(const CLI::Option* o);
/// Refuses two options given together: "--a and --b exclude each other: WHY".
void refuse_together(const CLI::Option* a, const CLI::Option* b, const std::string& why);
/// Refuses each option of `options` that was given: "--x: WHY".
void refuse_given(std::initializer_list<const CLI::Option*> options, const std::string& why);

// ---- template definitions ----

template <class T>
CLI::Option* add_choice(CLI::App& app, const std::string& name, T& value,
                        std::vector<std::pair<std::string, T>> choices, const std::string& expected) {
  std::string type;  // "eventfd|socket|poll"
  for (const auto& c : choices) type += (type.empty() ? "" : "|") + c.first;
  return add_parsed(app, name, type,
                    [&value, name, choices = std::move(choices), expected](const std::string& s) {
                      for (const auto& [text, v] : choices) {
                        if (s == text) {
                          value = v;
                          return;
                        }
                      }
                      usage_error(name + " is " + expected + ", not '" + s + "'");
                    });
}

}  // namespace ampctl
