// SPDX-License-Identifier: BSD-3-Clause
// ampd: one process owns the remotes and their shared memory; any number of client processes open
// endpoints through it (docs/ampd.md).
//
//   ampd --config FILE [--socket PATH] [--check] [--verbose]
//
// It runs in the foreground (for systemd, or a terminal) and logs to stderr; SIGINT or SIGTERM stop it:
// clients' endpoints end, then the remotes stop.
#include <pthread.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <string>
#include <thread>

#include "amp/metal/log.hpp"
#include "broker.hpp"
#include "config.hpp"

namespace {

/// A thread that waits for SIGINT or SIGTERM (blocked in every thread) and stops the broker.
class SignalWatch {
 public:
  SignalWatch() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);  // before any thread starts: they inherit it
  }
  void watch(amp::ampd::Broker& broker) {
    thread_ = std::thread([this, &broker] {
      int sig = 0;
      if (sigwait(&set_, &sig) == 0 && sig != 0 && !done_) {
        AMP_LOG_INFO("ampd: %s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
        broker.stop();
      }
    });
  }
  /// Ends the watching thread (waking its sigwait if no signal came): after this, nothing touches the
  /// broker from that thread, so the broker may go.
  void finish() {
    if (thread_.joinable()) {
      done_ = true;
      pthread_kill(thread_.native_handle(), SIGTERM);  // wakes its sigwait; ignored if it is done already
      thread_.join();
    }
  }
  ~SignalWatch() { finish(); }

 private:
  sigset_t set_{};
  std::thread thread_;
  std::atomic<bool> done_{false};
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("ampd: shares remote processors among Linux processes (amp " AMPD_VERSION ")");
  std::string config_path = "/etc/amp/ampd.toml";
  std::string socket;
  bool check = false;
  bool verbose = false;
  app.add_option("-c,--config", config_path, "the configuration file (TOML)")->capture_default_str();
  app.add_option("-s,--socket", socket,
                 "listen here instead of the configuration's socket ('@name': abstract)");
  app.add_flag("--check", check, "read the configuration, say whether it is good, and exit");
  app.add_flag("-v,--verbose", verbose, "log every client's comings and goings");
  CLI11_PARSE(app, argc, argv);

  amp::metal::set_log_level(verbose ? amp::metal::LogLevel::kDebug : amp::metal::LogLevel::kInfo);
  auto config = amp::ampd::load_config(config_path);
  if (!config) {
    std::fprintf(stderr, "ampd: %s\n", config.error().message.c_str());
    return 2;
  }
  if (!socket.empty()) config->socket = socket;
  if (check) {
    std::printf("%s: %zu remote(s), %zu rule(s), socket %s\n", config_path.c_str(), config->remotes.size(),
                config->rules.size(),
                config->socket.empty() ? amp::ampd::default_socket_path().c_str() : config->socket.c_str());
    return 0;
  }
  SignalWatch signals;
  auto broker = amp::ampd::Broker::create(std::move(*config));
  if (!broker) {
    std::fprintf(stderr, "ampd: %s\n", broker.error().message.c_str());
    return 1;
  }
  signals.watch(**broker);
  if (auto s = (*broker)->start(); !s) {
    std::fprintf(stderr, "ampd: %s\n", s.error().message.c_str());
    signals.finish();
    return 1;
  }
  const amp::Status s = (*broker)->run();
  signals.finish();  // the signal thread may still be in stop(): it must be done before the broker goes
  broker->reset();   // endpoints end, remotes stop
  return amp::ok(s) ? 0 : 1;
}
