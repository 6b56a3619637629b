// SPDX-License-Identifier: BSD-3-Clause
// The process driver with a real native firmware (firmware/native/echo.cpp): start -> echo -> stop, a crash
// mid-stream (unbind, sends fail instead of hanging, recovery, echo again), firmware that is bad or fails to
// boot, and no descriptor or process left behind.
#include "amp/rproc/linux/process.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <iterator>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "amp/rproc/elf.hpp"
#include "amp/rproc/firmware_table.hpp"

namespace amp::rproc {
namespace {

using namespace std::chrono_literals;
using rpmsg::Endpoint;
using rpmsg::Link;

std::vector<std::byte> read_file(const char* path) {
  std::ifstream f(path, std::ios::binary);
  std::vector<char> chars((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<std::byte> bytes(chars.size());
  std::memcpy(bytes.data(), chars.data(), chars.size());
  return bytes;
}

std::vector<std::byte> echo_firmware() {
  auto fw = read_file(AMP_ECHO_FIRMWARE);
  EXPECT_GT(fw.size(), 1000U) << AMP_ECHO_FIRMWARE;
  return fw;
}

std::size_t open_fds() {
  std::size_t n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.' ? 1 : 0;
  ::closedir(d);
  return n;
}

bool process_exists(pid_t pid) {
  return ::kill(pid, 0) == 0;
}

/// The host's side of the test: binds to "amp-echo" on every link that comes up, and lets it go when the
/// link goes down (after the test's sends are out of the endpoint). Declared before the ProcessRemote, so
/// that it outlives the remote's last callback (the destructor's stop).
struct Host {
  std::mutex m;
  std::condition_variable cv;
  std::mutex send_mutex;  // held around each send: link-down waits for it before destroying the endpoint
  std::unique_ptr<Endpoint> ep;
  int links_up = 0;
  int links_down = 0;
  int unbinds = 0;
  std::vector<std::string> echoes;

  void attach(ProcessRemote& remote) {
    remote.on_link_up([this](Link& link) {
      link.device().set_name_service_handler(
          [this](rpmsg::Device& d, std::string_view name, std::uint32_t addr) {
            if (name != "amp-echo") return;
            auto e = std::make_unique<Endpoint>();
            const Status s = d.create_endpoint(
                *e, name, rpmsg::kAddrAny, addr,
                [this](Endpoint&, const rpmsg::Message& msg) {
                  std::lock_guard lock(m);
                  echoes.emplace_back(reinterpret_cast<const char*>(msg.payload.data()), msg.payload.size());
                  cv.notify_all();
                },
                [this](Endpoint&) {
                  std::lock_guard lock(m);
                  ++unbinds;
                  cv.notify_all();
                });
            ASSERT_EQ(s, Status::kOk);
            std::lock_guard lock(m);
            ep = std::move(e);
            cv.notify_all();
          });
      std::lock_guard lock(m);
      ++links_up;
      cv.notify_all();
    });
    remote.on_link_down([this](Link&) {
      std::lock_guard sending(send_mutex);
      std::unique_ptr<Endpoint> old;
      {
        std::lock_guard lock(m);
        old = std::move(ep);
        ++links_down;
        cv.notify_all();
      }
      old.reset();
    });
  }

  bool wait_bound(std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(m);
    return cv.wait_for(lock, timeout, [&] { return ep != nullptr; });
  }

  Status send(const std::string& text, std::uint64_t timeout_ns = 5'000'000'000) {
    std::lock_guard sending(send_mutex);
    Endpoint* e = nullptr;
    {
      std::lock_guard lock(m);
      e = ep.get();
    }
    if (e == nullptr) return Status::kNotFound;
    return e->send(std::as_bytes(std::span(text)), timeout_ns);
  }

  /// Sends a marker and waits for its echo: echoes come in order, so every earlier one has arrived too.
  void drain() {
    ASSERT_EQ(send("drain"), Status::kOk);
    std::unique_lock lock(m);
    ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return !echoes.empty() && echoes.back() == "drain"; }));
  }

  /// Sends `count` messages and waits for each echo.
  void expect_echoes(int count, const std::string& tag) {
    for (int i = 0; i < count; ++i) {
      const std::string text =
          tag + " " + std::to_string(i) + std::string(static_cast<std::size_t>(i % 400), '.');
      std::size_t before = 0;
      {
        std::lock_guard lock(m);
        before = echoes.size();
      }
      ASSERT_EQ(send(text), Status::kOk) << i;
      std::unique_lock lock(m);
      ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return echoes.size() > before; })) << "no echo of " << i;
      ASSERT_EQ(echoes.back(), text);
    }
  }
};

/// Starts the echo firmware and waits until the host has bound to its service.
void start_and_bind(ProcessRemote& remote, Host& host) {
  auto started = remote.start(echo_firmware());
  ASSERT_TRUE(started) << started.error().message;
  ASSERT_TRUE(host.wait_bound()) << "no announcement from the firmware";
}

struct Recorder {
  std::mutex m;
  std::vector<std::pair<State, State>> seen;
  void attach(ProcessRemote& remote) {
    remote.on_transition([this](const Transition& t) {
      std::lock_guard lock(m);
      seen.emplace_back(t.from, t.to);
    });
  }
  std::vector<std::pair<State, State>> get() {
    std::lock_guard lock(m);
    return seen;
  }
};

using Moves = std::vector<std::pair<State, State>>;

TEST(ProcessDriver, StartEchoStop) {
  const std::size_t fds_before = open_fds();
  pid_t pid = -1;
  {
    const ProcessConfig config;
    Recorder rec;
    Host host;
    ProcessRemote remote(config);
    rec.attach(remote);
    host.attach(remote);
    ASSERT_TRUE(remote.start(echo_firmware()));
    EXPECT_EQ(remote.state(), State::kRunning);
    pid = remote.driver().pid();
    ASSERT_GT(pid, 0);
    EXPECT_TRUE(process_exists(pid));
    // The host placed the vrings in the remote's memory (not at ANY) and assigned notify ids.
    const auto vdevs = remote.driver().vdevs();
    ASSERT_EQ(vdevs.size(), 1U);
    EXPECT_EQ(vdevs[0].id, rpmsg::kVirtioIdRpmsg);
    EXPECT_GE(vdevs[0].vrings[0].da, config.memory_base);
    EXPECT_NE(vdevs[0].vrings[0].da, vdevs[0].vrings[1].da);

    ASSERT_TRUE(host.wait_bound()) << "no announcement from the firmware";
    ASSERT_NO_FATAL_FAILURE(host.expect_echoes(50, "hello"));
    ASSERT_TRUE(remote.stop());
    EXPECT_EQ(remote.state(), State::kStopped);
    EXPECT_EQ(remote.driver().last_end(), "exited with status 0") << "it ends by itself once its host goes";
    EXPECT_EQ(host.unbinds, 1);
    EXPECT_EQ(host.links_down, 1);
    EXPECT_EQ(remote.driver().link(), nullptr);
    EXPECT_FALSE(process_exists(pid)) << "the firmware was not reaped";
    EXPECT_EQ(remote.last_exit(), "") << "a requested stop is not a crash";
    EXPECT_EQ(rec.get(), (Moves{{State::kOffline, State::kLoaded},
                                {State::kLoaded, State::kRunning},
                                {State::kRunning, State::kStopped}}));
    // Started again from stopped.
    ASSERT_NO_FATAL_FAILURE(start_and_bind(remote, host));
    ASSERT_NO_FATAL_FAILURE(host.expect_echoes(5, "again"));
  }  // the destructor stops it
  EXPECT_EQ(open_fds(), fds_before) << "descriptors left behind";
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

bool empty_directory(const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) return false;
  bool empty = true;
  while (dirent* e = ::readdir(d)) empty = empty && e->d_name[0] == '.';
  ::closedir(d);
  return empty;
}

// ps and top show the program by its firmware's file name, not by the descriptor it runs from ("11"), and
// argv[0] is ProcessConfig::name (a path, as `ampctl run` may give).
TEST(ProcessDriver, TheProgramIsNamedAfterItsFirmware) {
  char tmp[] = "/tmp/amp-process-test-XXXXXX";
  ASSERT_NE(::mkdtemp(tmp), nullptr);
  const char* old_tmpdir = std::getenv("TMPDIR");
  const std::string saved = old_tmpdir != nullptr ? old_tmpdir : "";
  ::setenv("TMPDIR", tmp, 1);  // where the driver may put what it needs to start the program
  {
    ProcessConfig config;
    config.name = AMP_ECHO_FIRMWARE;
    Host host;
    ProcessRemote remote(config);
    host.attach(remote);
    ASSERT_NO_FATAL_FAILURE(start_and_bind(remote, host));
    const std::string proc = "/proc/" + std::to_string(remote.driver().pid());
    // The kernel keeps 15 characters of a program's name.
    EXPECT_EQ(read_text(proc + "/comm"), std::string("amp-echo-firmware").substr(0, 15) + "\n");
    const std::string cmdline = read_text(proc + "/cmdline");
    EXPECT_EQ(cmdline.substr(0, cmdline.find('\0')), AMP_ECHO_FIRMWARE);
    char exe[256] = {};
    ASSERT_GT(::readlink((proc + "/exe").c_str(), exe, sizeof exe - 1), 0);
    EXPECT_EQ(std::string(exe), "/memfd:amp-echo-firmware (deleted)") << "the sealed copy it runs from";
    EXPECT_TRUE(empty_directory(tmp)) << "left behind in " << tmp;
    ASSERT_NO_FATAL_FAILURE(host.expect_echoes(3, "named"));
    ASSERT_TRUE(remote.stop());
  }
  {
    // The default name, too. (A named config: g++ 12 -O3 sees an uninitialised string in a temporary.)
    const ProcessConfig defaults;
    Host host;
    ProcessRemote remote(defaults);
    host.attach(remote);
    ASSERT_NO_FATAL_FAILURE(start_and_bind(remote, host));
    EXPECT_EQ(read_text("/proc/" + std::to_string(remote.driver().pid()) + "/comm"), "remote\n");
  }
  if (old_tmpdir != nullptr) {
    ::setenv("TMPDIR", saved.c_str(), 1);
  } else {
    ::unsetenv("TMPDIR");
  }
  EXPECT_TRUE(empty_directory(tmp)) << "left behind in " << tmp;
  ::rmdir(tmp);
}

TEST(ProcessDriver, DetachLeavesItRunningAndAttachBringsEchoBack) {
  const std::size_t fds_before = open_fds();
  {
    const ProcessConfig config;
    Recorder rec;
    Host host;
    ProcessRemote remote(config);
    rec.attach(remote);
    host.attach(remote);
    // Nothing to attach to yet.
    auto early = remote.attach();
    ASSERT_FALSE(early);
    EXPECT_EQ(early.error().status, Status::kNotFound);
    EXPECT_NE(early.error().message.find("no running program to attach to"), std::string::npos);

    ASSERT_NO_FATAL_FAILURE(start_and_bind(remote, host));
    ASSERT_NO_FATAL_FAILURE(host.expect_echoes(5, "before"));
    const pid_t pid = remote.driver().pid();

    ASSERT_TRUE(remote.detach());
    EXPECT_EQ(remote.state(), State::kDetached);
    EXPECT_EQ(remote.driver().link(), nullptr);
    EXPECT_EQ(host.unbinds, 1);
    EXPECT_EQ(host.send("anyone?"), Status::kNotFound);
    std::this_thread::sleep_for(100ms);
    EXPECT_TRUE(process_exists(pid)) << "detach must leave the program running";
    EXPECT_EQ(remote.driver().pid(), pid);
    EXPECT_EQ(remote.last_exit(), "");

    // The same program, a new session over the same memory, the service announced again.
    ASSERT_TRUE(remote.attach());
    EXPECT_EQ(remote.state(), State::kAttached);
    ASSERT_TRUE(host.wait_bound());
    ASSERT_NO_FATAL_FAILURE(host.expect_echoes(20, "attached"));
    EXPECT_EQ(remote.driver().pid(), pid);

    // Twice more, to show nothing piles up.
    for (int i = 0; i < 2; ++i) {
      ASSERT_TRUE(remote.detach());
      ASSERT_TRUE(remote.attach());
      ASSERT_TRUE(host.wait_bound());
      ASSERT_NO_FATAL_FAILURE(host.expect_echoes(3, "again"));
    }
    ASSERT_TRUE(remote.stop());
    EXPECT_EQ(remote.state(), State::kStopped);
    EXPECT_FALSE(process_exists(pid));
    const auto moves = rec.get();
    ASSERT_GE(moves.size(), 5U);
    EXPECT_EQ(moves[2], std::make_pair(State::kRunning, State::kDetached));
    EXPECT_EQ(moves[3], std::make_pair(State::kDetached, State::kAttached));
    EXPECT_EQ(moves.back(), std::make_pair(State::kAttached, State::kStopped));
  }
  EXPECT_EQ(open_fds(), fds_before) << "descriptors left behind";
}

TEST(ProcessDriver, ADetachedProgramCanBeStoppedOrEndAndBeStartedAgain) {
  const ProcessConfig config;
  Host host;
  ProcessRemote remote(config);
  remote.set_recovery(true);
  host.attach(remote);
  // Stopping a detached remote ends its program.
  ASSERT_NO_FATAL_FAILURE(start_and_bind(remote, host));
  ASSERT_TRUE(remote.detach());
  const pid_t first = remote.driver().pid();
  ASSERT_TRUE(remote.stop());
  EXPECT_EQ(remote.state(), State::kStopped);
  EXPECT_FALSE(process_exists(first));
  // A detached program that ends is a crash (no recovery: we had let go of it), and the remote can be
  // started again.
  ASSERT_NO_FATAL_FAILURE(start_and_bind(remote, host));
  ASSERT_TRUE(remote.detach());
  ASSERT_EQ(::kill(remote.driver().pid(), SIGKILL), 0);
  ASSERT_TRUE(remote.wait_for(State::kCrashed, 10s));
  EXPECT_EQ(remote.lifecycle().recoveries(), 0U);
  EXPECT_EQ(remote.driver().pid(), -1);
  ASSERT_NO_FATAL_FAILURE(start_and_bind(remote, host));
  ASSERT_NO_FATAL_FAILURE(host.expect_echoes(3, "again"));
  ASSERT_TRUE(remote.stop());
}

// Whatever descriptors the host has, the program finds its control socket at 3 and runs: here descriptor
// 3 is free when the firmware is loaded, which once put its executable copy where the socket goes.
TEST(ProcessDriver, StartsWhateverDescriptorsAreFree) {
  std::vector<int> closed;
  for (int fd = 3; fd < 12; ++fd) {
    if (::fcntl(fd, F_GETFD) != -1) {
      const int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 100);
      ASSERT_GE(moved, 0);
      closed.push_back(fd);
      ::dup2(moved, 1000 + fd);  // keep it, out of the way
      ::close(moved);
      ::close(fd);
    }
  }
  {
    // Descriptor 3 held while the remote sets up its own, and free when the firmware is loaded.
    const int placeholder = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ASSERT_EQ(placeholder, 3);
    const ProcessConfig config;
    Host host;
    ProcessRemote remote(config);
    host.attach(remote);
    ::close(placeholder);
    ASSERT_NO_FATAL_FAILURE(start_and_bind(remote, host));
    ASSERT_NO_FATAL_FAILURE(host.expect_echoes(3, "low fds"));
    ASSERT_TRUE(remote.stop());
  }
  for (const int fd : closed) {  // put them back
    ::dup2(1000 + fd, fd);
    ::close(1000 + fd);
  }
}

TEST(ProcessDriver, ACrashWhileAttachedRecovers) {
  const ProcessConfig config;
  Host host;
  ProcessRemote remote(config);
  remote.set_recovery(true);
  host.attach(remote);
  ASSERT_NO_FATAL_FAILURE(start_and_bind(remote, host));
  ASSERT_TRUE(remote.detach());
  ASSERT_TRUE(remote.attach());
  ASSERT_TRUE(host.wait_bound());
  ASSERT_EQ(::kill(remote.driver().pid(), SIGKILL), 0);
  ASSERT_TRUE(remote.wait_for(State::kRunning, 10s)) << to_string(remote.state());
  ASSERT_TRUE(host.wait_bound());
  ASSERT_NO_FATAL_FAILURE(host.expect_echoes(3, "recovered"));
}

TEST(ProcessDriver, CrashMidStreamUnbindsAndRecoveryBringsEchoBack) {
  const std::size_t fds_before = open_fds();
  {
    const ProcessConfig config;
    Recorder rec;
    Host host;
    ProcessRemote remote(config);
    remote.set_recovery(true, 2);
    rec.attach(remote);
    host.attach(remote);
    ASSERT_NO_FATAL_FAILURE(start_and_bind(remote, host));
    const pid_t first = remote.driver().pid();

    // A sender that keeps going through the crash: its sends must fail (not hang) while the remote is gone.
    std::atomic<bool> stop{false};
    std::atomic<int> sent{0};
    std::atomic<int> failed{0};
    std::thread sender([&] {
      while (!stop.load()) {
        const Status s = host.send("stream", 2'000'000'000);
        if (ok(s)) {
          ++sent;
        } else {
          ++failed;
          std::this_thread::sleep_for(1ms);
        }
      }
    });
    {
      std::unique_lock lock(host.m);
      ASSERT_TRUE(host.cv.wait_for(lock, 10s, [&] { return host.echoes.size() > 100; }));
    }
    ASSERT_EQ(::kill(first, SIGKILL), 0);

    // crashed, then recovered: a new program, a new link, the service announced again.
    {
      std::unique_lock lock(host.m);
      ASSERT_TRUE(host.cv.wait_for(lock, 10s, [&] { return host.links_up == 2 && host.ep != nullptr; }));
      EXPECT_EQ(host.unbinds, 1);
      EXPECT_EQ(host.links_down, 1);
    }
    ASSERT_TRUE(remote.wait_for(State::kRunning, 10s));
    stop = true;
    sender.join();
    ASSERT_NO_FATAL_FAILURE(host.drain()) << "the stream's last echoes must not pass for later ones";
    EXPECT_GT(sent.load(), 0);
    EXPECT_NE(remote.driver().pid(), first);
    EXPECT_FALSE(process_exists(first));
    EXPECT_EQ(remote.lifecycle().recoveries(), 1U);
    EXPECT_NE(remote.last_exit().find("killed by signal 9"), std::string::npos) << remote.last_exit();
    ASSERT_NO_FATAL_FAILURE(host.expect_echoes(20, "after recovery"));
    EXPECT_EQ(rec.get(), (Moves{{State::kOffline, State::kLoaded},
                                {State::kLoaded, State::kRunning},
                                {State::kRunning, State::kCrashed},
                                {State::kCrashed, State::kLoaded},
                                {State::kLoaded, State::kRunning}}));
    ASSERT_TRUE(remote.stop());
  }
  EXPECT_EQ(open_fds(), fds_before) << "descriptors left behind";
}

TEST(ProcessDriver, WithoutRecoveryACrashStaysCrashedAndSendsFail) {
  const ProcessConfig config;
  Host host;
  ProcessRemote remote(config);
  host.attach(remote);
  ASSERT_NO_FATAL_FAILURE(start_and_bind(remote, host));
  ASSERT_EQ(::kill(remote.driver().pid(), SIGTERM), 0);
  ASSERT_TRUE(remote.wait_for(State::kCrashed, 10s));
  EXPECT_NE(remote.last_exit().find("signal 15"), std::string::npos) << remote.last_exit();
  {
    std::lock_guard lock(host.m);
    EXPECT_EQ(host.unbinds, 1);
    EXPECT_EQ(host.ep, nullptr) << "link-down let the endpoint go";
  }
  EXPECT_EQ(host.send("anyone?"), Status::kNotFound);
  EXPECT_EQ(remote.driver().link(), nullptr);
  EXPECT_TRUE(remote.stop()) << "nothing to stop";
  EXPECT_EQ(remote.state(), State::kCrashed);
  // A crashed remote can be started again by hand.
  ASSERT_NO_FATAL_FAILURE(start_and_bind(remote, host));
  ASSERT_NO_FATAL_FAILURE(host.expect_echoes(3, "restarted"));
}

TEST(ProcessDriver, ARemoteThatEndsByItselfIsACrash) {
  ProcessConfig config;
  config.args = {"--exit-after", "3"};
  Host host;
  ProcessRemote remote(config);
  host.attach(remote);
  ASSERT_NO_FATAL_FAILURE(start_and_bind(remote, host));
  for (int i = 0; i < 3; ++i) ASSERT_EQ(host.send("bye"), Status::kOk);
  ASSERT_TRUE(remote.wait_for(State::kCrashed, 10s));
  EXPECT_EQ(remote.last_exit(), "exited with status 0");
}

TEST(ProcessDriver, BadFirmwareIsRefusedAtLoad) {
  const ProcessConfig config;
  ProcessRemote remote(config);
  const std::string text = "#!/bin/sh\necho not a firmware\n";
  std::vector<std::byte> script(text.size());
  std::memcpy(script.data(), text.data(), text.size());
  auto r = remote.start(script);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, Status::kMalformed);
  EXPECT_NE(r.error().message.find("not an ELF"), std::string::npos) << r.error().message;
  EXPECT_EQ(remote.state(), State::kOffline);

  // A valid executable whose resource table has no rpmsg vdev (the tiny test firmware: an empty table).
  r = remote.start(read_file(AMP_TINY_FIRMWARE));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, Status::kNotFound);
  EXPECT_NE(r.error().message.find("no rpmsg vdev"), std::string::npos) << r.error().message;

  // Built for another machine (e_machine, at byte 18, patched to ARM): refused.
  auto arm = echo_firmware();
  arm[18] = std::byte{40};
  arm[19] = std::byte{0};
  r = remote.start(arm);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, Status::kNotSupported);
  EXPECT_NE(r.error().message.find("built for EM_ARM, this machine is EM_"), std::string::npos)
      << r.error().message;

  // The firmware's table is checked too: break the vdev's vring count in a copy.
  auto fw = echo_firmware();
  auto image = ElfImage::parse(fw, {.allow_position_independent = true});
  ASSERT_TRUE(image);
  auto rsc = image->resource_table();
  ASSERT_TRUE(rsc);
  const std::size_t num_of_vrings = rsc->file_offset + offsetof(RpmsgFirmwareTable, vdev) + 25;
  ASSERT_EQ(static_cast<int>(fw[num_of_vrings]), 2);
  fw[num_of_vrings] = std::byte{0};
  r = remote.start(fw);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, Status::kMalformed);
  EXPECT_NE(r.error().message.find("bad resource table"), std::string::npos) << r.error().message;
  EXPECT_EQ(remote.state(), State::kOffline);
}

// A .resource_table section of size 0: nothing to copy or parse (UBSan once caught a memcpy of nothing from a
// null pointer here), and no rpmsg vdev, which is what the error says.
TEST(ProcessDriver, AnEmptyResourceTableIsRefusedAtLoad) {
  const auto fw = read_file(AMP_EMPTY_TABLE_FIRMWARE);
  auto image = ElfImage::parse(fw, {.allow_position_independent = true});
  ASSERT_TRUE(image) << AMP_EMPTY_TABLE_FIRMWARE;
  auto rsc = image->resource_table();
  ASSERT_TRUE(rsc);
  ASSERT_EQ(rsc->data.size(), 0U) << "the test firmware's table is not empty";

  const ProcessConfig config;
  ProcessRemote remote(config);
  auto r = remote.start(fw);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, Status::kNotFound);
  EXPECT_NE(r.error().message.find(".resource_table section is empty"), std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("no rpmsg vdev"), std::string::npos) << r.error().message;
  EXPECT_EQ(remote.state(), State::kOffline);
}

// Like the kernel's remoteproc, the host does not wait for the firmware to say it booted (virtio's driver
// never waits for the device): a firmware that ends during boot either makes start() fail (it was gone
// before the link's hello reached it) or is a crash right after start. Either way, how it ended is told.
TEST(ProcessDriver, AFirmwareThatFailsToBootIsReportedAndReaped) {
  ProcessConfig config;
  config.args = {"--exit-at-start", "3"};
  ProcessRemote remote(config);
  auto r = remote.start(echo_firmware());
  if (!r) {
    EXPECT_NE(r.error().message.find("did not bring rpmsg up"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("exited with status 3"), std::string::npos) << r.error().message;
    EXPECT_EQ(remote.state(), State::kLoaded);
  } else {
    ASSERT_TRUE(remote.wait_for(State::kCrashed, 10s));
    EXPECT_EQ(remote.last_exit(), "exited with status 3");
  }
  EXPECT_EQ(remote.driver().pid(), -1);
  EXPECT_EQ(remote.driver().link(), nullptr);
}

TEST(ProcessDriver, StopKillsAFirmwareThatWillNotEnd) {
  ProcessConfig config;
  config.args = {"--stubborn"};  // ignores SIGTERM and stays after its host has gone
  config.stop_timeout = 300ms;
  Host host;
  ProcessRemote remote(config);
  host.attach(remote);
  ASSERT_NO_FATAL_FAILURE(start_and_bind(remote, host));
  const pid_t pid = remote.driver().pid();
  ASSERT_TRUE(remote.stop());
  EXPECT_FALSE(process_exists(pid));
  EXPECT_EQ(remote.state(), State::kStopped);
  EXPECT_EQ(remote.driver().last_end(), "killed by signal 9 (Killed)") << "SIGTERM was ignored: SIGKILL";
  EXPECT_EQ(remote.last_exit(), "") << "a stop is not a crash";
}

TEST(ProcessDriver, TooLittleMemoryForTheBuffersIsAClearError) {
  ProcessConfig config;
  config.memory_size = 0x10000;  // the vrings fit, 2 x 256 x 512 bytes of buffers do not
  ProcessRemote remote(config);
  auto r = remote.start(echo_firmware());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, Status::kNoMemory);
  EXPECT_NE(r.error().message.find("rpmsg buffers"), std::string::npos) << r.error().message;
}

TEST(ProcessDriver, EveryNotifyModeWorks) {
  for (const rpmsg::NotifyMode mode :
       {rpmsg::NotifyMode::kSocket, rpmsg::NotifyMode::kPoll, rpmsg::NotifyMode::kAdaptive}) {
    ProcessConfig config;
    config.link.notify = mode;
    Host host;
    ProcessRemote remote(config);
    host.attach(remote);
    ASSERT_TRUE(remote.start(echo_firmware())) << rpmsg::to_string(mode);
    ASSERT_TRUE(host.wait_bound()) << rpmsg::to_string(mode);
    ASSERT_NO_FATAL_FAILURE(host.expect_echoes(10, rpmsg::to_string(mode)));
    ASSERT_TRUE(remote.stop());
  }
}

TEST(ProcessDriver, JoinHostOutsideTheProcessDriverSaysWhy) {
  ASSERT_EQ(::unsetenv(kLinkFdVariable), 0);
  auto r = join_host();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, Status::kNotFound);
  EXPECT_NE(r.error().message.find("ampctl run"), std::string::npos);
  ASSERT_EQ(::setenv(kLinkFdVariable, "0", 1), 0);  // stdin: not a socket here
  r = join_host();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, Status::kInvalidArgument);
  ASSERT_EQ(::setenv(kLinkFdVariable, "x3", 1), 0);
  EXPECT_FALSE(join_host());
  ASSERT_EQ(::unsetenv(kLinkFdVariable), 0);
}

}  // namespace
}  // namespace amp::rproc
