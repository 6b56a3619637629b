// SPDX-License-Identifier: BSD-3-Clause
#include "cli.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "text.hpp"

namespace ampctl {

void die(const std::string& msg, int code) {
  throw Failure{msg, code};
}

void usage_error(const std::string& msg) {
  throw Failure{msg + " (see --help)", kExitUsage};
}

void print_error(const std::string& msg) {
  std::fprintf(stderr, "ampctl: %s\n", printable(msg).c_str());
}

CLI::App* add_command(CLI::App& root, const std::string& name, const std::string& summary, std::string help,
                      CommonOptions& common) {
  CLI::App* app = root.add_subcommand(name, summary);
  app->formatter_fn(
      [help = std::move(help)](const CLI::App*, const std::string&, CLI::AppFormatMode) { return help; });
  app->add_flag("--json", common.json);
  app->add_flag("-v,--verbose", common.verbose);
  return app;
}

CLI::Option* add_parsed(CLI::App& app, const std::string& name, const std::string& type,
                        std::function<void(const std::string&)> parse) {
  return app.add_option_function<std::string>(name, std::move(parse))->type_name(type);
}

CLI::Option* add_number(CLI::App& app, const std::string& name, long& value, long min, long max) {
  return add_parsed(app, name, "N", [&value, name, min, max](const std::string& s) {
    char* end = nullptr;
    errno = 0;
    const long v = std::strtol(s.c_str(), &end, 0);
    if (errno != 0 || end == s.c_str() || *end != '\0' || v < min || v > max) {
      usage_error(name + " wants a number in [" + std::to_string(min) + ", " + std::to_string(max) +
                  "], not '" + s + "'");
    }
    value = v;
  });
}

CLI::Option* add_text(CLI::App& app, const std::string& name, std::string& value, const std::string& type) {
  return add_parsed(app, name, type, [&value, name, type](const std::string& s) {
    if (s.empty()) usage_error(name + " wants a " + type + ", not nothing");
    value = s;
  });
}

bool given(const CLI::Option* o) {
  return o != nullptr && o->count() > 0;
}

void refuse_together(const CLI::Option* a, const CLI::Option* b, const std::string& why) {
  if (given(a) && given(b))
    usage_error(a->get_name() + " and " + b->get_name() + " exclude each other: " + why);
}

void refuse_given(std::initializer_list<const CLI::Option*> options, const std::string& why) {
  for (const CLI::Option* o : options) {
    if (given(o)) usage_error(o->get_name() + ": " + why);
  }
}

}  // namespace ampctl
