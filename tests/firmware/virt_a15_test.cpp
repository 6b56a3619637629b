// SPDX-License-Identifier: BSD-3-Clause
// amp's bare-metal firmware (firmware/baremetal, board virt-a15) run by QEMU as the contract between the
// firmware and the host's qemu driver says, with this test as the host: it creates the guest's RAM file,
// loads the ELF into it with amp::rproc::load, sets the doorbell mode in the loaded resource table, listens
// on the doorbell socket, spawns `qemu-system-arm -M virt,secure=on -cpu cortex-a15 -S ...`, brings the vdev
// up with amp's VdevHost over its own mapping of the file, and starts the guest with QMP `cont`.
//
// Notifications, interrupt mode: the host kicks the guest by writing one byte to the doorbell socket; the
// guest's bytes come back on it. VdevHost takes its interrupts from a UIO device, so a bridge thread turns
// each batch of doorbell bytes into a UIO interrupt count on a socket pair (the stand-in vdev_host_test uses
// too), and notes the guest's reset acknowledgements ('r'). Poll mode: no doorbell, both sides poll.
//
// Skipped (GTEST_SKIP) only when qemu-system-arm or the firmware images are missing.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "amp/metal/linux/shared_memory.hpp"
#include "amp/metal/linux/unix_socket.hpp"
#include "amp/rproc/baremetal_table.hpp"
#include "amp/rproc/elf.hpp"
#include "amp/rproc/linux/log_dictionary.hpp"
#include "amp/rproc/linux/vdev_host.hpp"
#include "amp/rproc/resource_table.hpp"

extern char** environ;

namespace amp::firmware {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr metal::DeviceAddress kRamDa = 0x4000'0000;
constexpr std::size_t kRamSize = 64 << 20;
constexpr metal::DeviceAddress kPoolDa = 0x4080'0000;  // the "vdev0buffer" carveout
constexpr std::size_t kPoolSize = 0x10'0000;

std::string find_in_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const fs::path p = fs::path(dir.empty() ? "." : dir) / name;
    if (::access(p.c_str(), X_OK) == 0) return p.string();
  }
  return {};
}

std::vector<std::byte> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(bytes.size());
  std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

std::string text_of(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

/// A QMP client: one command at a time, answers read up to their "return" (or "error"), events skipped.
class Qmp {
 public:
  explicit Qmp(metal::UnixSocket s) : s_(std::move(s)) {}

  /// Reads the greeting and leaves capabilities negotiation mode.
  bool handshake() {
    std::string line;
    return read_line(line) && line.find("\"QMP\"") != std::string::npos &&
           command("{\"execute\":\"qmp_capabilities\"}", nullptr);
  }

  bool command(const std::string& json, std::string* answer) {
    const std::string out = json + "\n";
    if (!ok(s_.send_all(std::as_bytes(std::span(out))))) return false;
    for (std::string line; read_line(line);) {
      if (line.find("\"return\"") != std::string::npos || line.find("\"error\"") != std::string::npos) {
        if (answer != nullptr) *answer = line;
        return line.find("\"return\"") != std::string::npos;
      }
    }
    return false;
  }

 private:
  bool read_line(std::string& line) {
    for (;;) {
      if (const auto nl = buffer_.find('\n'); nl != std::string::npos) {
        line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return true;
      }
      pollfd p{s_.fd(), POLLIN, 0};
      if (::poll(&p, 1, 5000) <= 0) return false;
      char chunk[512];
      auto n = s_.receive(std::as_writable_bytes(std::span(chunk)));
      if (!n || *n == 0) return false;
      buffer_.append(chunk, *n);
    }
  }

  metal::UnixSocket s_;
  std::string buffer_;
};

/// The host's end of the doorbell: kicks the guest (a Notifier for VdevHost), and a bridge thread that reads
/// the guest's bytes, raises a UIO interrupt count on `uio_host_end()` for them and drains VdevHost's
/// re-arm writes.
class Doorbell final : public rpmsg::Notifier {
 public:
  Doorbell(metal::UnixSocket socket, std::pair<metal::UnixSocket, metal::UnixSocket> uio)
      : socket_(std::move(socket)), uio_host_(std::move(uio.first)), uio_bridge_(std::move(uio.second)) {
    bridge_ = std::thread([this] { run(); });
  }
  ~Doorbell() {
    stop_ = true;
    bridge_.join();
  }

  Status notify(std::uint32_t) noexcept override {
    std::lock_guard lock(send_mutex_);
    const char byte = 'h';
    ++host_kicks_;
    return ::send(socket_.fd(), &byte, 1, MSG_NOSIGNAL) == 1 ? Status::kOk : Status::kIoError;
  }

  /// The descriptor VdevHost takes as its UIO device.
  int uio_host_end() const { return uio_host_.fd(); }
  /// Notification bytes ('k') and reset acknowledgements ('r') the guest sent so far.
  int guest_kicks() const { return guest_kicks_.load(); }
  int reset_acks() const { return reset_acks_.load(); }
  int host_kicks() const { return host_kicks_.load(); }
  int other_bytes() const { return other_bytes_.load(); }
  bool closed() const { return closed_.load(); }

 private:
  void run() {
    std::uint32_t count = 0;
    while (!stop_) {
      pollfd p[2] = {{socket_.fd(), POLLIN, 0}, {uio_bridge_.fd(), POLLIN, 0}};
      if (::poll(p, 2, 20) <= 0) continue;
      if ((p[0].revents & (POLLIN | POLLHUP)) != 0 && !closed_) {
        char bytes[256];
        const ssize_t n = ::recv(socket_.fd(), bytes, sizeof bytes, MSG_DONTWAIT);
        if (n == 0) closed_ = true;  // QEMU has gone
        bool notification = false;
        for (ssize_t i = 0; i < n; ++i) {
          if (bytes[i] == 'r') {
            ++reset_acks_;
          } else if (bytes[i] == 'k') {
            ++guest_kicks_;
          } else {
            ++other_bytes_;
          }
          notification = true;  // a reset acknowledgement is worth a look at the rings too
        }
        if (notification) {
          ++count;
          (void)::send(uio_bridge_.fd(), &count, sizeof count, MSG_DONTWAIT | MSG_NOSIGNAL);
        }
      }
      if ((p[1].revents & POLLIN) != 0) {
        char rearm[64];
        while (::recv(uio_bridge_.fd(), rearm, sizeof rearm, MSG_DONTWAIT) > 0) {
        }
      }
    }
  }

  metal::UnixSocket socket_;
  metal::UnixSocket uio_host_;
  metal::UnixSocket uio_bridge_;
  std::mutex send_mutex_;
  std::thread bridge_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> closed_{false};
  std::atomic<int> guest_kicks_{0};
  std::atomic<int> reset_acks_{0};
  std::atomic<int> host_kicks_{0};
  std::atomic<int> other_bytes_{0};
};

/// Announcements and replies from the guest, as the host's VdevHost thread sees them.
class Inbox {
 public:
  void announce(std::string_view name, std::uint32_t addr) {
    std::lock_guard lock(m_);
    services_[std::string(name)] = addr;
    cv_.notify_all();
  }
  void clear_services() {
    std::lock_guard lock(m_);
    services_.clear();
  }
  std::optional<std::uint32_t> wait_service(const std::string& name, std::chrono::milliseconds timeout) {
    std::unique_lock lock(m_);
    if (!cv_.wait_for(lock, timeout, [&] { return services_.count(name) != 0; })) return std::nullopt;
    return services_[name];
  }
  bool has_service(const std::string& name) {
    std::lock_guard lock(m_);
    return services_.count(name) != 0;
  }
  void reply(std::span<const std::byte> payload) {
    std::lock_guard lock(m_);
    replies_.emplace_back(payload.begin(), payload.end());
    cv_.notify_all();
  }
  std::optional<std::vector<std::byte>> wait_reply(std::chrono::milliseconds timeout) {
    std::unique_lock lock(m_);
    if (!cv_.wait_for(lock, timeout, [&] { return !replies_.empty(); })) return std::nullopt;
    auto r = std::move(replies_.front());
    replies_.pop_front();
    return r;
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  std::map<std::string, std::uint32_t> services_;
  std::deque<std::vector<std::byte>> replies_;
};

enum class Mode { kInterrupt, kPoll };

class VirtA15 : public ::testing::Test {
 public:  // for the cases' helper functions
  void SetUp() override {
    qemu_ = find_in_path("qemu-system-arm");
    if (qemu_.empty()) GTEST_SKIP() << "qemu-system-arm is not installed (apt-get install qemu-system-arm)";
    for (const char* image :
         {AMP_FIRMWARE_VIRT_A15, AMP_FIRMWARE_VIRT_A15_TEST, AMP_FIRMWARE_VIRT_A15_TEST2}) {
      if (std::string(image).empty() || !fs::exists(image)) {
        GTEST_SKIP() << "the bare-metal firmware images were not built (arm-none-eabi-g++ missing?): '"
                     << image << "'";
      }
    }
    char dir[] = "/tmp/amp-fw-XXXXXX";  // short: socket paths must fit sun_path
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
  }

  void TearDown() override {
    endpoints_.clear();  // before the device they are on
    host_.reset();
    stop_qemu();
    doorbell_.reset();
    if (!dir_.empty()) {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    }
  }

  /// Creates the RAM file, loads `image` into it, sets the doorbell mode, and spawns QEMU paused.
  void boot(const std::string& image, Mode mode) {
    mode_ = mode;
    auto ram = metal::shm::open_file(dir_ + "/ram", kRamSize, 0, metal::OpenMode::kCreate, kRamDa);
    ASSERT_TRUE(ram) << ram.error().message;
    ram_.emplace(std::move(*ram));
    file_ = read_file(image);
    auto elf = rproc::ElfImage::parse(file_);
    ASSERT_TRUE(elf) << rproc::to_string(elf.error());
    dictionary_ = rproc::LogDictionary::of(*elf);
    const metal::IoRegion memory[] = {ram_->region()};
    auto loaded = rproc::load(*elf, memory, {.machine = rproc::elf::kMachineArm});
    ASSERT_TRUE(loaded) << rproc::to_string(loaded.error());
    auto rsc = elf->resource_table();
    ASSERT_TRUE(rsc);
    table_da_ = rsc->da;
    table_size_ = rsc->data.size();
    ASSERT_EQ(table_size_, sizeof(rproc::BaremetalFirmwareTable));
    entry_ = elf->entry();
    ASSERT_TRUE(ok(table().store<std::uint32_t>(
        offsetof(rproc::BaremetalFirmwareTable, doorbell.mode),
        mode == Mode::kPoll ? rproc::kDoorbellModePoll : rproc::kDoorbellModeInterrupt)));

    // The doorbell listens before QEMU starts, so no byte is lost.
    auto listener = metal::UnixListener::listen(dir_ + "/db");
    ASSERT_TRUE(listener) << listener.error().message;
    spawn();
    auto db = listener->accept(10s);
    ASSERT_TRUE(db) << "QEMU did not connect to the doorbell: " << db.error().message;
    auto uio = metal::UnixSocket::pair();
    ASSERT_TRUE(uio);
    doorbell_ = std::make_unique<Doorbell>(std::move(*db), std::move(*uio));
    auto qmp = metal::UnixSocket::connect(dir_ + "/qmp", 10s);
    ASSERT_TRUE(qmp) << qmp.error().message;
    qmp_.emplace(std::move(*qmp));
    ASSERT_TRUE(qmp_->handshake());
  }

  /// Brings the vdev up from the host's side (before or after `cont`).
  void attach() {
    inbox_.clear_services();
    rproc::VdevHostConfig c;
    c.memory = {ram_->region()};
    c.table_da = table_da_;
    c.table_size = table_size_;
    c.pool_da = kPoolDa;
    c.pool_size = kPoolSize;
    if (mode_ == Mode::kInterrupt) {
      c.kick = doorbell_.get();
      c.irq_fd = doorbell_->uio_host_end();
    }
    auto host = rproc::VdevHost::start(std::move(c));
    ASSERT_TRUE(host) << host.error().message;
    host_ = std::move(*host);
    host_->device().set_name_service_handler(
        [this](rpmsg::Device&, std::string_view name, std::uint32_t addr) { inbox_.announce(name, addr); });
  }

  void cont() {
    std::string answer;
    ASSERT_TRUE(qmp_->command("{\"execute\":\"cont\"}", &answer)) << answer;
  }

  /// The guest's answer to `payload` sent to service `name`; nullopt after `timeout`.
  std::optional<std::vector<std::byte>> ask(const std::string& name, std::span<const std::byte> payload,
                                            std::chrono::milliseconds timeout = 5s) {
    const auto addr = inbox_.wait_service(name, 10s);
    EXPECT_TRUE(addr) << "'" << name << "' was not announced; trace:\n" << trace();
    if (!addr) return std::nullopt;
    rpmsg::Endpoint& ep = endpoint(name, *addr);
    EXPECT_EQ(ep.send(payload, 1'000'000'000), Status::kOk);
    return inbox_.wait_reply(timeout);
  }

  rpmsg::Endpoint& endpoint(const std::string& name, std::uint32_t addr) {
    auto& slot = endpoints_[name];
    if (!slot || slot->remote_address() != addr || !slot->attached()) {
      slot = std::make_unique<rpmsg::Endpoint>();
      EXPECT_EQ(host_->device().create_endpoint(
                    *slot, "", rpmsg::kAddrAny, addr,
                    [this](rpmsg::Endpoint&, const rpmsg::Message& m) { inbox_.reply(m.payload); }),
                Status::kOk);
    }
    return *slot;
  }

  /// The guest's state word in the doorbell entry.
  std::uint32_t guest_state() {
    return table().load<std::uint32_t>(offsetof(rproc::BaremetalFirmwareTable, doorbell.state)).value_or(~0U);
  }

  /// Resets the vdev from the host's side (status 0) and kicks the guest so that it looks (interrupt mode).
  /// `wait`: then waits for the guest to let go of the vrings (its state word idle, and in interrupt mode its
  /// 'r' byte) and puts the vrings' addresses back to ANY, for the next attach to place them. Without: puts
  /// the image's whole table back at once, as a host in a hurry does.
  void detach(bool wait = true) {
    EXPECT_EQ(guest_state(), rproc::kDoorbellStateServing);
    const int acks = doorbell_->reset_acks();
    const std::size_t resets = resets_logged();
    endpoints_.clear();
    host_->close();
    host_.reset();
    if (mode_ == Mode::kInterrupt) {
      ASSERT_EQ(doorbell_->notify(0), Status::kOk);
    }
    if (!wait) {
      restore_table();
      return;
    }
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while ((guest_state() != rproc::kDoorbellStateIdle ||
            (mode_ == Mode::kInterrupt && doorbell_->reset_acks() == acks)) &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(1ms);
    }
    ASSERT_EQ(guest_state(), rproc::kDoorbellStateIdle)
        << "the guest did not let go of the vrings; " << state();
    if (mode_ == Mode::kInterrupt) {
      ASSERT_EQ(doorbell_->reset_acks(), acks + 1) << "the guest did not acknowledge the reset; " << state();
    }
    EXPECT_EQ(resets_logged(), resets + 1) << trace();
    for (std::size_t i = 0; i < 2; ++i) {
      const std::size_t at = offsetof(rproc::BaremetalFirmwareTable, vdev.vring) +
                             i * sizeof(rproc::FwRscVring) + offsetof(rproc::FwRscVring, da);
      ASSERT_TRUE(ok(table().store<std::uint32_t>(at, rproc::kRscAddrAny)));
    }
  }

  /// Writes the image's resource table over the loaded one (with this run's doorbell mode).
  void restore_table() {
    auto elf = rproc::ElfImage::parse(file_);
    ASSERT_TRUE(elf);
    auto rsc = elf->resource_table();
    ASSERT_TRUE(rsc);
    ASSERT_TRUE(ok(table().write(0, rsc->data)));
    ASSERT_TRUE(ok(table().store<std::uint32_t>(
        offsetof(rproc::BaremetalFirmwareTable, doorbell.mode),
        mode_ == Mode::kPoll ? rproc::kDoorbellModePoll : rproc::kDoorbellModeInterrupt)));
  }

  metal::IoRegion table() {
    auto r = ram_->region().subregion(table_da_ - kRamDa, table_size_);
    EXPECT_TRUE(r);
    return r ? *r : metal::IoRegion{};
  }

  /// The trace buffer, found through the loaded resource table's trace entry, its lines rendered when the
  /// image logs by dictionary.
  std::string trace() { return dictionary_.render_text(raw_trace()); }

  /// The trace buffer's text as the firmware wrote it.
  std::string raw_trace() {
    struct Finder final : rproc::ResourceVisitor {
      rproc::Trace trace;
      Status on_trace(std::uint32_t, const rproc::Trace& t) noexcept override {
        trace = t;
        return Status::kOk;
      }
    } finder;
    auto rt = rproc::ResourceTable::parse(table());
    if (!rt || !rt->for_each(finder)) return "(no resource table)";
    auto region = ram_->region().subregion(finder.trace.da - kRamDa, finder.trace.len);
    if (!region) return "(trace buffer outside RAM)";
    const std::string all = text_of(region->bytes());
    return all.substr(0, all.find('\0'));
  }

  /// For failure messages: the doorbell's counts, where the guest's CPU is, and its trace.
  std::string state() {
    std::ostringstream out;
    if (doorbell_) {
      out << "doorbell: host kicks " << doorbell_->host_kicks() << ", guest kicks "
          << doorbell_->guest_kicks() << ", reset acks " << doorbell_->reset_acks() << ", other bytes "
          << doorbell_->other_bytes() << (doorbell_->closed() ? ", closed" : "") << "\n";
    }
    std::string regs;
    if (qmp_ && pid_ > 0 &&
        qmp_->command(
            "{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":\"info registers\"}}",
            &regs)) {
      const auto pc = regs.find("R15=");
      const auto psr = regs.find("PSR=");
      if (pc != std::string::npos) out << "guest " << regs.substr(pc, 13);
      if (psr != std::string::npos) out << " " << regs.substr(psr, 13);
      out << "\n";
    }
    out << "trace:\n" << trace();
    return out.str();
  }

  /// How many vdev resets the guest has logged.
  std::size_t resets_logged() {
    const std::string log = trace();
    std::size_t n = 0;
    for (auto at = log.find("vdev reset by the host"); at != std::string::npos;
         at = log.find("vdev reset by the host", at + 1)) {
      ++n;
    }
    return n;
  }

  std::string console() { return dictionary_.render_text(raw_console()); }
  std::string raw_console() {
    std::ifstream in(dir_ + "/console");
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

  /// Waits up to `timeout` for QEMU to end; its wait status, or nullopt.
  std::optional<int> wait_qemu(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (pid_ > 0) {
      int status = 0;
      const pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return status;
      }
      if (std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(5ms);
    }
    return std::nullopt;
  }

  /// CPU time QEMU has used so far, in seconds (utime + stime).
  double qemu_cpu_seconds() {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::istringstream fields(stat.substr(stat.rfind(')') + 2));
    std::string f;
    unsigned long long utime = 0, stime = 0;
    for (int i = 3; fields >> f; ++i) {
      if (i == 14) utime = std::stoull(f);
      if (i == 15) {
        stime = std::stoull(f);
        break;
      }
    }
    return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  }

  std::string qemu_;
  std::string dir_;
  Mode mode_ = Mode::kInterrupt;
  std::optional<metal::SharedMemory> ram_;
  std::vector<std::byte> file_;
  rproc::LogDictionary dictionary_;
  metal::DeviceAddress table_da_ = 0;
  std::size_t table_size_ = 0;
  metal::DeviceAddress entry_ = 0;
  pid_t pid_ = -1;
  std::unique_ptr<Doorbell> doorbell_;
  std::optional<Qmp> qmp_;
  std::unique_ptr<rproc::VdevHost> host_;
  Inbox inbox_;
  std::map<std::string, std::unique_ptr<rpmsg::Endpoint>> endpoints_;

 private:
  void spawn() {
    char entry[32];
    std::snprintf(entry, sizeof entry, "0x%llx", static_cast<unsigned long long>(entry_));
    const std::vector<std::string> args = {
        qemu_,
        "-M",
        "virt,secure=on",
        "-cpu",
        "cortex-a15",
        "-m",
        "64M",
        "-object",
        "memory-backend-file,id=ram,size=64M,mem-path=" + dir_ + "/ram,share=on",
        "-machine",
        "memory-backend=ram",
        "-nic",
        "none",
        "-display",
        "none",
        "-monitor",
        "none",
        "-S",
        "-qmp",
        "unix:" + dir_ + "/qmp,server=on,wait=off",
        "-semihosting-config",
        "enable=on,target=native",
        "-chardev",
        "file,id=con,path=" + dir_ + "/console",
        "-serial",
        "chardev:con",
        "-chardev",
        "socket,id=db,path=" + dir_ + "/db",
        "-serial",
        "chardev:db",
        "-device",
        std::string("loader,addr=") + entry + ",cpu-num=0"};
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    const std::string log = dir_ + "/qemu.log";
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    const int err = ::posix_spawn(&pid_, qemu_.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ASSERT_EQ(err, 0) << std::strerror(err);
  }

  void stop_qemu() {
    if (pid_ <= 0) return;
    if (qmp_) (void)qmp_->command("{\"execute\":\"quit\"}", nullptr);
    if (!wait_qemu(2s)) {
      ::kill(pid_, SIGKILL);
      (void)wait_qemu(5s);
    }
  }
};

std::span<const std::byte> bytes_of(const std::string& s) {
  return std::as_bytes(std::span(s));
}

/// Echoes of every size from 1 byte to a full 496-byte payload, each checked.
void expect_echoes(VirtA15& t, const std::string& tag) {
  for (std::size_t size :
       {std::size_t{1}, std::size_t{7}, std::size_t{64}, std::size_t{255}, std::size_t{496}}) {
    std::string text = tag + " " + std::to_string(size) + " ";
    while (text.size() < size) text += static_cast<char>('a' + text.size() % 26);
    text.resize(size);
    const auto reply = t.ask("amp-echo", bytes_of(text));
    ASSERT_TRUE(reply) << "no echo of " << size << " bytes; " << t.state();
    EXPECT_EQ(text_of(*reply), text);
  }
}

}  // namespace

TEST_F(VirtA15, EchoesAnnouncesItsServicesAndIdlesInInterruptMode) {
  boot(AMP_FIRMWARE_VIRT_A15, Mode::kInterrupt);
  attach();  // before the guest runs: it finds DRIVER_OK at once
  cont();
  for (const char* name : {"amp-echo", "amp-matrix", "rpmsg-openamp-demo-channel", "amp-version"}) {
    EXPECT_TRUE(inbox_.wait_service(name, 10s)) << name << " not announced; trace:\n" << trace();
  }
  EXPECT_FALSE(inbox_.has_service("amp-fault")) << "the release image has no test services";
  expect_echoes(*this, "irq");
  const auto version = ask("amp-version", bytes_of("?"));
  ASSERT_TRUE(version);
  EXPECT_EQ(text_of(*version), "amp-firmware " AMP_FIRMWARE_VERSION " virt-a15");
  // Both directions went through the doorbell.
  EXPECT_GT(doorbell_->host_kicks(), 0);
  EXPECT_GT(doorbell_->guest_kicks(), 0);
  EXPECT_EQ(doorbell_->other_bytes(), 0);

  // Idle means WFI: QEMU uses (almost) no CPU while nothing happens. A guest that spun would use a
  // whole second of it.
  std::this_thread::sleep_for(200ms);
  const double before = qemu_cpu_seconds();
  std::this_thread::sleep_for(1s);
  EXPECT_LT(qemu_cpu_seconds() - before, 0.25) << "the guest does not idle";

  const std::string log = trace();
  EXPECT_NE(log.find("amp-firmware " AMP_FIRMWARE_VERSION " virt-a15: doorbell on"), std::string::npos)
      << log;
  EXPECT_NE(log.find("rpmsg: up, vrings at 0x408"), std::string::npos) << log;
  EXPECT_NE(console().find("rpmsg: up"), std::string::npos) << console();
  // The release image logs by dictionary (AMP_FIRMWARE_LOG_DICTIONARY, on by default): what it wrote holds
  // records and time stamps, not the messages, which only the ELF file has.
  if (dictionary_.empty()) GTEST_SKIP() << "this image logs text (AMP_FIRMWARE_LOG_DICTIONARY=OFF)";
  const std::string raw = raw_trace();
  EXPECT_EQ(raw.find("rpmsg: up"), std::string::npos) << raw;
  EXPECT_EQ(raw_console().find("rpmsg: up"), std::string::npos) << raw_console();
  EXPECT_EQ(raw.rfind("[#", 0), 0U) << raw;
  EXPECT_NE(raw.find("info: @"), std::string::npos) << raw;
  EXPECT_NE(log.find("[    "), std::string::npos) << log;  // the time stamp, rendered
}

TEST_F(VirtA15, MultipliesMatricesInBothProtocolsAndRefusesWhatIsNotARequest) {
  boot(AMP_FIRMWARE_VIRT_A15, Mode::kInterrupt);
  attach();
  cont();
  // Built byte by byte at the protocol's offsets: u32 size, then u32 elements[6][6], per matrix.
  const auto request = [](std::uint32_t size_a, std::uint32_t size_b) {
    std::vector<std::uint32_t> words(74, 0);
    words[0] = size_a;
    words[37] = size_b;
    for (std::uint32_t i = 0; i < 6; ++i) {
      for (std::uint32_t j = 0; j < 6; ++j) {
        words[1 + 6 * i + j] = 3 * i + j + 1;
        words[38 + 6 * i + j] = i * j + 2;
      }
    }
    std::vector<std::byte> b(words.size() * 4);
    std::memcpy(b.data(), words.data(), b.size());
    return b;
  };
  const auto product = [](std::uint32_t n) {
    std::vector<std::uint32_t> words(37, 0);
    words[0] = n;
    for (std::uint32_t i = 0; i < n; ++i) {
      for (std::uint32_t j = 0; j < n; ++j) {
        std::uint32_t sum = 0;
        for (std::uint32_t k = 0; k < n; ++k) sum += (3 * i + k + 1) * (k * j + 2);
        words[1 + 6 * i + j] = sum;
      }
    }
    std::vector<std::byte> b(words.size() * 4);
    std::memcpy(b.data(), words.data(), b.size());
    return b;
  };
  for (const char* service : {"amp-matrix", "rpmsg-openamp-demo-channel"}) {
    SCOPED_TRACE(service);
    for (std::uint32_t n : {1U, 4U, 6U}) {
      const auto reply = ask(service, request(n, n));
      ASSERT_TRUE(reply) << "trace:\n" << trace();
      EXPECT_EQ(*reply, product(n)) << "size " << n;
    }
    // Not requests: refused without a reply, so the next reply is the next good request's product.
    std::vector<std::vector<std::byte>> bad = {request(7, 7), request(0, 0), request(6, 5),
                                               request(0xFFFFFFFF, 0xFFFFFFFF)};
    auto longer = request(3, 3);
    longer.push_back(std::byte{0});
    bad.push_back(longer);
    auto shorter = request(3, 3);
    shorter.pop_back();
    bad.push_back(shorter);
    bad.push_back(std::vector<std::byte>(3));
    for (const auto& b : bad) EXPECT_FALSE(ask(service, b, 200ms)) << b.size() << "-byte message answered";
    const auto reply = ask(service, request(2, 2));
    ASSERT_TRUE(reply);
    EXPECT_EQ(*reply, product(2));
    // The shutdown value does not end the firmware.
    const std::uint32_t stop = 0xEF56A55A;
    EXPECT_FALSE(ask(service, std::as_bytes(std::span(&stop, 1)), 200ms));
    const auto after = ask(service, request(5, 5));
    ASSERT_TRUE(after);
    EXPECT_EQ(*after, product(5));
  }
  const std::string log = trace();
  EXPECT_NE(log.find("refused a message from"), std::string::npos) << log;
  EXPECT_NE(log.find("matrix size 7 (it is 1 to 6)"), std::string::npos) << log;
  EXPECT_NE(log.find("the matrices' sizes differ (6 and 5)"), std::string::npos) << log;
  EXPECT_NE(log.find("a request is 296 bytes, not 297"), std::string::npos) << log;
}

TEST_F(VirtA15, ServesInPollMode) {
  boot(AMP_FIRMWARE_VIRT_A15, Mode::kPoll);
  cont();  // the guest waits (spinning) for DRIVER_OK
  std::this_thread::sleep_for(100ms);
  attach();
  expect_echoes(*this, "poll");
  EXPECT_EQ(doorbell_->guest_kicks(), 0) << "no doorbell in poll mode";
  EXPECT_EQ(doorbell_->host_kicks(), 0);
  EXPECT_NE(trace().find("doorbell off (poll mode)"), std::string::npos) << trace();
}

TEST_F(VirtA15, ServesAgainAfterTheHostResetsTheVdev) {
  boot(AMP_FIRMWARE_VIRT_A15, Mode::kInterrupt);
  attach();
  cont();
  expect_echoes(*this, "first");
  detach();
  EXPECT_NE(trace().find("rpmsg: vdev reset by the host"), std::string::npos) << trace();
  // A second host session on the same running guest, with the vrings placed afresh.
  attach();
  expect_echoes(*this, "second");
  const auto version = ask("amp-version", bytes_of("again"));
  ASSERT_TRUE(version);
  EXPECT_EQ(text_of(*version), "amp-firmware " AMP_FIRMWARE_VERSION " virt-a15");
  detach();
  attach();
  expect_echoes(*this, "third");
}

// The qemu driver's way: reset, kick, the image's table back and DRIVER_OK again at once, without waiting
// for the guest. A guest that has not seen the reset yet still notices (its state word was cleared) and
// serves the new session, whichever it saw first.
TEST_F(VirtA15, ServesAgainAfterAnImmediateReattach) {
  boot(AMP_FIRMWARE_VIRT_A15, Mode::kInterrupt);
  attach();
  cont();
  expect_echoes(*this, "first");
  for (int round = 0; round < 5; ++round) {
    SCOPED_TRACE(round);
    detach(false);
    attach();
    expect_echoes(*this, "again");
    if (HasFatalFailure()) return;
  }
  EXPECT_EQ(resets_logged(), 5U) << trace();
}

TEST_F(VirtA15, ServesAgainAfterAnImmediateReattachInPollMode) {
  boot(AMP_FIRMWARE_VIRT_A15, Mode::kPoll);
  attach();
  cont();
  expect_echoes(*this, "first");
  for (int round = 0; round < 5; ++round) {
    SCOPED_TRACE(round);
    detach(false);
    attach();
    expect_echoes(*this, "again");
    if (HasFatalFailure()) return;
  }
}

TEST_F(VirtA15, PollModeResetAndReattach) {
  boot(AMP_FIRMWARE_VIRT_A15, Mode::kPoll);
  attach();
  cont();
  expect_echoes(*this, "first");
  detach();
  attach();
  expect_echoes(*this, "second");
}

TEST_F(VirtA15, TheFirstTestImageIsTest1WithTheFaultService) {
  boot(AMP_FIRMWARE_VIRT_A15_TEST, Mode::kInterrupt);
  attach();
  cont();
  EXPECT_TRUE(inbox_.wait_service("amp-fault", 10s)) << trace();
  const auto version = ask("amp-version", bytes_of("?"));
  ASSERT_TRUE(version);
  EXPECT_EQ(text_of(*version), "amp-firmware test-1 virt-a15");
}

TEST_F(VirtA15, TheSecondTestImageIsTest2) {
  boot(AMP_FIRMWARE_VIRT_A15_TEST2, Mode::kPoll);
  attach();
  cont();
  EXPECT_TRUE(inbox_.wait_service("amp-fault", 10s)) << trace();
  const auto version = ask("amp-version", bytes_of("?"));
  ASSERT_TRUE(version);
  EXPECT_EQ(text_of(*version), "amp-firmware test-2 virt-a15");
}

TEST_F(VirtA15, AFaultEndsQemuWithAnErrorAndIsInTheTrace) {
  boot(AMP_FIRMWARE_VIRT_A15_TEST, Mode::kInterrupt);
  attach();
  cont();
  expect_echoes(*this, "before the fault");
  EXPECT_FALSE(ask("amp-fault", bytes_of("crash"), 500ms));
  const auto status = wait_qemu(10s);
  ASSERT_TRUE(status) << "QEMU did not exit after the fault; " << state();
  ASSERT_TRUE(WIFEXITED(*status)) << "status " << *status;
  EXPECT_EQ(WEXITSTATUS(*status), 1);
  // The RAM file outlives QEMU: the trace buffer says what happened.
  const std::string log = trace();
  EXPECT_NE(log.find("amp-fault: a message from"), std::string::npos) << log;
  EXPECT_NE(log.find("fault: undefined instruction at pc 0x401"), std::string::npos) << log;
  EXPECT_NE(console().find("fault: undefined instruction"), std::string::npos) << console();
}

TEST_F(VirtA15, ADataAbortEndsQemuWithAnErrorAndIsInTheTrace) {
  boot(AMP_FIRMWARE_VIRT_A15_TEST2, Mode::kPoll);
  attach();
  cont();
  EXPECT_FALSE(ask("amp-fault", bytes_of("data abort"), 500ms));
  const auto status = wait_qemu(10s);
  ASSERT_TRUE(status) << "QEMU did not exit after the fault; " << state();
  ASSERT_TRUE(WIFEXITED(*status)) << "status " << *status;
  EXPECT_EQ(WEXITSTATUS(*status), 1);
  const std::string log = trace();
  EXPECT_NE(log.find("amp-fault: a message from"), std::string::npos) << log;
  // The faulting load's address is in the report (DFAR), and the handler did not go on to the UDF after it.
  EXPECT_NE(log.find("fault: data abort at pc 0x401"), std::string::npos) << log;
  EXPECT_NE(log.find("far 0x7fff0000)"), std::string::npos) << log;
  EXPECT_EQ(log.find("undefined instruction at"), std::string::npos) << log;
}

}  // namespace amp::firmware
