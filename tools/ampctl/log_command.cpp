// SPDX-License-Identifier: BSD-3-Clause
#include "log_command.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <iterator>
#include <memory>
#include <span>

#include "amp/rproc/elf.hpp"
#include "common.hpp"
#include "text.hpp"

namespace ampctl {

namespace {

struct LogOptions {
  CommonOptions common;
  std::string firmware;
  std::string file;  // "" or "-": standard input
};

const char* const kLogHelp = R"(usage: ampctl log FIRMWARE [FILE]
Prints FILE (standard input when it is absent or -), a trace buffer or console captured from a remote
that runs FIRMWARE, with the log records of a firmware built with dictionary logging rendered from
FIRMWARE's formats ("[#<hex ns>] info: @1f4 7" -> "[    0.001234] info: rpmsg: up ..."). Other lines pass
as they are; control characters and bytes >= 0x80 are shown as \xNN.
)";

int run_log(const LogOptions& o) {
  std::string error;
  auto dictionary = dictionary_of(o.firmware, error);
  if (!dictionary) die(error);
  std::string text;
  if (o.file.empty() || o.file == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else if (!read_whole_file(o.file, text)) {
    die("cannot read " + o.file + ": " + std::strerror(errno));
  }
  if (const auto nul = text.find('\0'); nul != std::string::npos) text.resize(nul);  // a buffer's unused rest
  if (dictionary->empty()) {
    std::fprintf(stderr, "ampctl log: %s has no log dictionary (it logs text): printed as it is\n",
                 o.firmware.c_str());
  }
  std::string out = printable_lines(dictionary->render_text(text));
  if (!out.empty() && out.back() != '\n') out += '\n';
  std::fputs(out.c_str(), stdout);
  return 0;
}

}  // namespace

std::optional<amp::rproc::LogDictionary> dictionary_of(const std::string& path, std::string& error) {
  std::string bytes;
  if (!read_whole_file(path, bytes)) {
    error = "cannot read " + path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  auto image = amp::rproc::ElfImage::parse(std::as_bytes(std::span(bytes)));
  if (!image) {
    error = path + ": " + amp::rproc::to_string(image.error());
    return std::nullopt;
  }
  return amp::rproc::LogDictionary::of(*image);
}

void add_log_command(CLI::App& root, std::vector<Command>& commands) {
  auto o = std::make_shared<LogOptions>();
  CLI::App* app = add_command(root, "log", "render a firmware's log records", kLogHelp, o->common);
  app->add_option("FIRMWARE", o->firmware, "the image the remote runs")->required();
  app->add_option("FILE", o->file, "the captured trace or console (default: standard input)");
  commands.push_back({app, &o->common, [o] { return run_log(*o); }});
}

}  // namespace ampctl
