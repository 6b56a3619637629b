// SPDX-License-Identifier: BSD-3-Clause
// VhostUserServer against a virtual machine played by the test: a vhost-user front end that speaks UML's
// sequence (tests/virtio/vhost_user_front_end.hpp) and, as the guest's kernel, rpmsg::Device in the driver
// role (what virtio_rpmsg_bus does) over the guest memory it shares, kicked through the kick eventfds and
// woken through the call descriptors (one end of a socketpair, as virtio_uml gives, or an eventfd) by an
// event loop of its own. Then the ways a front end goes, well or badly, and what the server does after.
#include "amp/rpmsg/linux/vhost_user_server.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "amp/metal/linux/event_fd.hpp"
#include "amp/metal/linux/event_loop.hpp"
#include "amp/metal/linux/shared_memory.hpp"
#include "amp/rpmsg/device.hpp"
#include "amp/virtio/ring.hpp"
#include "loopback_fixture.hpp"
#include "metal/fake_sysfs_fixture.hpp"
#include "virtio/vhost_user_front_end.hpp"

namespace amp::rpmsg {
namespace {

using namespace std::chrono_literals;
using amp::testing::kGuest;
using amp::testing::kMemSize;
using amp::testing::kRingAlign;
using amp::testing::kRingEntries;
using amp::testing::ring_offset;
using amp::testing::VhostUserFrontEnd;
using metal::UnixSocket;
using testing::bytes_of;
using testing::string_of;
using Request = virtio::vhost_user::Request;
using Bytes = amp::testing::LeBytes;

constexpr std::uint64_t kNsBit = 1ULL << kFeatureNs;
constexpr std::uint64_t kEventIdxBit = 1ULL << virtio::kFeatureEventIdx;
constexpr std::uint64_t kVersion1Bit = 1ULL << virtio::kFeatureVersion1;
constexpr std::uint64_t kOffered = kNsBit | kEventIdxBit | kVersion1Bit;  // the server's default offer
constexpr std::uint64_t kPool = 0x40000;  // the guest's rpmsg buffers: 2 x 256 of 512 bytes, to 0x80000
constexpr std::uint64_t kSecond = 1'000'000'000;
constexpr std::chrono::milliseconds kWait = 2s;
constexpr std::string_view kService = "amp-vhost-test";

/// `n` bytes running through every value from `seed` on (so zeros and 0xFF are carried too).
std::string pattern(std::size_t n, unsigned seed) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((seed + 7 * i) & 0xFF);
  return s;
}

/// Values handed from one thread to another, waited for with a bound.
template <class T>
class Mailbox {
 public:
  void push(T v) {
    {
      std::lock_guard lock(mutex_);
      items_.push_back(std::move(v));
    }
    changed_.notify_all();
  }
  /// The oldest one, or nothing when none comes within `timeout`.
  std::optional<T> pop(std::chrono::milliseconds timeout = kWait) {
    std::unique_lock lock(mutex_);
    if (!changed_.wait_for(lock, timeout, [&] { return !items_.empty(); })) return std::nullopt;
    T v = std::move(items_.front());
    items_.pop_front();
    return v;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<T> items_;
};

/// amp's side: the application the server runs, one endpoint named kService per session (created in
/// on_ready, destroyed in on_gone). `events` says what ran, in order: "ready", "gone", "disconnected: WHY".
/// The test's thread sends through send(), under the lock on_gone takes: as any application must, it stops
/// using the device when on_gone runs, for the device is destroyed after it.
struct App {
  VhostUserServer::Callbacks callbacks() {
    VhostUserServer::Callbacks cb;
    cb.on_ready = [this](Device& d) {
      if (hold_ready) (void)release_ready.pop();
      {
        std::lock_guard lock(mutex);
        created =
            d.create_endpoint(endpoint, kService, kAddrAny, kAddrAny,
                              [this](Endpoint&, const Message& m) { received.push(string_of(m.payload)); });
      }
      events.push("ready");
    };
    cb.on_gone = [this](Device&) {
      {
        std::lock_guard lock(mutex);
        endpoint.destroy();
        gone_on = std::this_thread::get_id();
      }
      events.push("gone");
    };
    cb.on_disconnected = [this](const std::string& why) { events.push("disconnected: " + why); };
    return cb;
  }

  Status send(std::string_view payload) {
    std::lock_guard lock(mutex);
    return endpoint.send(bytes_of(payload), kSecond);
  }
  std::uint32_t address() {
    std::lock_guard lock(mutex);
    return endpoint.address();
  }
  Status creation() {
    std::lock_guard lock(mutex);
    return created;
  }
  std::thread::id gone_thread() {
    std::lock_guard lock(mutex);
    return gone_on;
  }

  bool hold_ready = false;        // on_ready waits for release_ready first (set before the server starts)
  Mailbox<bool> release_ready;    // what it waits for
  Mailbox<std::string> received;  // what the endpoint received
  Mailbox<std::string> events;

 private:
  std::mutex mutex;
  Endpoint endpoint;
  Status created = Status::kInternal;  // what on_ready's create_endpoint said
  std::thread::id gone_on;             // the thread on_gone last ran on
};

/// A server listening at a socket in a directory of its own, with the App above it.
struct Rig {
  void listen(VhostUserServerConfig config = {}) {
    ASSERT_FALSE(dir.path().empty());
    path = (dir.path() / "vhost.sock").string();
    config.socket_path = path;
    auto s = VhostUserServer::listen(config, app.callbacks());
    ASSERT_TRUE(s) << s.error().message;
    server = std::move(*s);
  }
  VhostUserServer::Counters counters() const { return server->counters(); }
  /// The next event the App saw.
  std::string event() { return app.events.pop().value_or("(nothing within 2 s)"); }

  metal::testing::TempDir dir;
  std::string path;
  App app;
  std::unique_ptr<VhostUserServer> server;  // after the App: destroyed before what its callbacks use
};

enum class Call : std::uint8_t { kSocket, kEventFd };
struct GuestConfig {
  bool event_idx = true;      ///< ack VIRTIO_RING_F_EVENT_IDX
  Call call = Call::kSocket;  ///< what the call descriptors are
};

/// The guest's transport: the features the front end acked, the rings where it said they are.
class GuestTransport final : public virtio::Transport {
 public:
  explicit GuestTransport(std::uint64_t features) : features_(features) {}
  std::uint32_t device_id() const noexcept override { return kVirtioIdRpmsg; }
  std::uint8_t status() const noexcept override { return status_; }
  void set_status(std::uint8_t s) noexcept override { status_ = s; }
  std::uint64_t device_features() const noexcept override { return features_; }
  std::uint64_t driver_features() const noexcept override { return driver_features_; }
  void set_driver_features(std::uint64_t f) noexcept override { driver_features_ = f; }
  std::uint32_t queue_count() const noexcept override { return 2; }
  Result<virtio::QueueInfo> queue(std::uint32_t index) const noexcept override {
    if (index >= 2) return fail(Status::kOutOfRange);
    return virtio::QueueInfo{kGuest + ring_offset(index), kRingAlign, kRingEntries, index};
  }
  Status set_queue_address(std::uint32_t, metal::DeviceAddress) noexcept override {
    return Status::kNotSupported;
  }
  Status read_config(std::size_t, std::span<std::byte>) const noexcept override {
    return Status::kNotSupported;
  }
  Status write_config(std::size_t, std::span<const std::byte>) noexcept override {
    return Status::kNotSupported;
  }

 private:
  std::uint64_t features_;
  std::uint64_t driver_features_ = 0;
  std::uint8_t status_ = 0;
};

/// The guest's kicks: 8 bytes to the queue's kick eventfd.
class KickNotifier final : public Notifier {
 public:
  using Kicks = std::array<std::optional<metal::EventFd>, 2>;
  explicit KickNotifier(Kicks& kicks) : kicks_(kicks) {}
  Status notify(std::uint32_t q) noexcept override {
    return q < 2 && kicks_[q] ? kicks_[q]->signal() : Status::kOutOfRange;
  }

 private:
  Kicks& kicks_;
};

/// The virtual machine: a front end in UML's ways and a kernel whose virtio_rpmsg_bus is rpmsg::Device in
/// the driver role over the guest memory (an unsealed memfd, as UML's physical memory file is).
class Guest {
 public:
  explicit Guest(GuestConfig config = {})
      : config_(config),
        acked_(kNsBit | kVersion1Bit | (config.event_idx ? kEventIdxBit : 0)),
        transport_(acked_),
        kick_notifier_(kicks_) {}
  ~Guest() {
    if (loop_) {
      loop_->stop();
      loop_->join();
    }
    driver.stop();
  }
  Guest(const Guest&) = delete;
  Guest& operator=(const Guest&) = delete;

  /// Connects to `path` and sets the device up in UML's order, both queues enabled (not kicked yet).
  void connect(const std::string& path, std::uint64_t offered = kOffered) {
    const int fd = ::memfd_create("amp-guest-memory", MFD_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, kMemSize), 0);
    auto m = metal::shm::map_fd(metal::UniqueFd(fd), kMemSize, kGuest);
    ASSERT_TRUE(m) << m.error().message;
    memory_ = std::move(*m);
    auto loop = metal::EventLoop::create();
    ASSERT_TRUE(loop) << loop.error().message;
    loop_ = std::move(*loop);
    ASSERT_EQ(loop_->start_thread(), Status::kOk);
    auto s = UnixSocket::connect(path);
    ASSERT_TRUE(s) << s.error().message;
    front_.emplace(std::move(*s));
    ASSERT_NO_FATAL_FAILURE(front_->negotiate(memory_.fd(), offered, acked_));
    for (std::uint32_t q = 0; q < 2; ++q) {
      auto kick = metal::EventFd::create();
      ASSERT_TRUE(kick);
      kicks_[q].emplace(std::move(*kick));
      int call_fd = -1;
      std::optional<UnixSocket> far;  // the server's end of a socketpair: ours closes once it was sent
      if (config_.call == Call::kSocket) {
        auto pair = UnixSocket::pair();
        ASSERT_TRUE(pair);
        call_socket_[q].emplace(std::move(pair->first));
        far.emplace(std::move(pair->second));
        call_fd = far->fd();
      } else {
        auto e = metal::EventFd::create();
        ASSERT_TRUE(e);
        call_event_[q].emplace(std::move(*e));
        call_fd = call_event_[q]->fd();
      }
      ASSERT_NO_FATAL_FAILURE(front_->set_up_queue(q, call_fd, kicks_[q]->fd()));
    }
    for (std::uint32_t q = 0; q < 2; ++q) ASSERT_NO_FATAL_FAILURE(front_->enable(q, true));
  }

  /// The kernel's probe: the driver starts (its receive buffers posted), its interrupts are watched, and
  /// it kicks its receive queue (virtio_device_ready()). Again after a stop: a driver that came back.
  void start_driver() {
    for (auto& id : call_sources_) {
      if (id) {
        ASSERT_EQ(loop_->disable(*id), Status::kOk);
      }
    }
    if (driver_started_) driver.stop();  // a stop() before the first start would make it fail
    endpoint.destroy();
    DeviceConfig c;
    c.role = Role::kDriver;
    c.shm = memory_.region();
    c.transport = &transport_;
    c.notifier = &kick_notifier_;
    c.buffer_pool = kGuest + kPool;
    c.buffer_pool_size = 2 * kRingEntries * kDefaultBufferSize;
    ASSERT_EQ(driver.start(c, storage_), Status::kOk);
    driver_started_ = true;
    driver.set_name_service_handler([this](Device&, std::string_view name, std::uint32_t addr) {
      announced.push({std::string(name), addr});
    });
    for (std::uint32_t q = 0; q < 2; ++q) {
      if (call_sources_[q]) {
        ASSERT_EQ(loop_->enable(*call_sources_[q]), Status::kOk);
      } else {
        ASSERT_NO_FATAL_FAILURE(watch_call(q));
      }
    }
    kick(0);
  }

  /// Waits for amp's announcement of kService and binds an endpoint to it (/dev/rpmsgN in the guest).
  void bind() {
    auto a = announced.pop();
    ASSERT_TRUE(a) << "no announcement";
    EXPECT_EQ(a->first, kService);
    ASSERT_EQ(
        driver.create_endpoint(endpoint, "", kAddrAny, a->second,
                               [this](Endpoint&, const Message& m) { received.push(string_of(m.payload)); }),
        Status::kOk);
  }

  /// connect(), start_driver(), and once the server says the session started, bind().
  void boot(const std::string& path, VhostUserServer& server, std::uint64_t sessions) {
    ASSERT_NO_FATAL_FAILURE(connect(path));
    ASSERT_NO_FATAL_FAILURE(start_driver());
    ASSERT_TRUE(server.wait_sessions_started(sessions, kWait)) << "no session";
    ASSERT_NO_FATAL_FAILURE(bind());
  }

  /// The guest powers off: both queues disabled, then the connection closed.
  void power_off() {
    ASSERT_NO_FATAL_FAILURE(front_->enable(0, false));
    ASSERT_NO_FATAL_FAILURE(front_->enable(1, false));
    front_.reset();
  }

  void kick(std::uint32_t q) { ASSERT_EQ(kick_notifier_.notify(q), Status::kOk); }
  /// Stops watching queue q's call descriptor (its events stay in it).
  void unwatch_call(std::uint32_t q) {
    ASSERT_TRUE(call_sources_[q]);
    ASSERT_EQ(loop_->remove(*call_sources_[q]), Status::kOk);
    call_sources_[q].reset();
  }
  /// Closes our end of queue q's call socketpair: the server's writes fail with EPIPE.
  void close_call_socket(std::uint32_t q) {
    ASSERT_NO_FATAL_FAILURE(unwatch_call(q));
    call_socket_[q].reset();
  }
  /// The eventfd of queue q's call (Call::kEventFd).
  metal::EventFd& call_event(std::uint32_t q) { return *call_event_[q]; }

  VhostUserFrontEnd& front() { return *front_; }
  metal::SharedMemory& memory() { return memory_; }

  /// After a RESET_OWNER: the same memory and descriptors set up again on the same connection (eventfd
  /// calls only: a socketpair's far end was closed once sent).
  void set_up_again() {
    ASSERT_EQ(config_.call, Call::kEventFd);
    ASSERT_NO_FATAL_FAILURE(front_->negotiate(memory_.fd(), kOffered, acked_));
    for (std::uint32_t q = 0; q < 2; ++q)
      ASSERT_NO_FATAL_FAILURE(front_->set_up_queue(q, call_event_[q]->fd(), kicks_[q]->fd()));
    for (std::uint32_t q = 0; q < 2; ++q) ASSERT_NO_FATAL_FAILURE(front_->enable(q, true));
  }
  std::byte* at(std::uint64_t offset) { return memory_.bytes().data() + offset; }

  // The kernel's side (declared before what uses them).
  Mailbox<std::pair<std::string, std::uint32_t>> announced;
  Mailbox<std::string> received;

 private:
  void watch_call(std::uint32_t q) {
    if (config_.call == Call::kEventFd) {
      auto id = loop_->add_event_fd(*call_event_[q], [this](std::uint64_t) { interrupt(); });
      ASSERT_TRUE(id) << id.error().message;
      call_sources_[q] = *id;
      return;
    }
    const int fd = call_socket_[q]->fd();
    auto id = loop_->add_fd(fd, EPOLLIN, [this, fd, q](std::uint32_t) {
      std::array<std::byte, 64> drain{};
      ssize_t n = 0;
      while ((n = ::recv(fd, drain.data(), drain.size(), MSG_DONTWAIT)) > 0) {
      }
      // The server's end closed (the connection ended): nothing more comes.
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) (void)loop_->disable(call_ids_[q].load());
      interrupt();
    });
    ASSERT_TRUE(id) << id.error().message;
    call_ids_[q].store(*id);
    call_sources_[q] = *id;
  }
  /// The guest's interrupt handler: the driver looks at its rings.
  void interrupt() { (void)driver.process(); }

  GuestConfig config_;
  std::uint64_t acked_;
  metal::SharedMemory memory_;
  GuestTransport transport_;
  KickNotifier::Kicks kicks_;
  KickNotifier kick_notifier_;
  std::array<std::optional<UnixSocket>, 2> call_socket_;
  std::array<std::optional<metal::EventFd>, 2> call_event_;
  DeviceStorage<kRingEntries> storage_{};
  std::optional<VhostUserFrontEnd> front_;
  bool driver_started_ = false;

 public:
  Device driver;
  Endpoint endpoint;  // bound to amp's kService

 private:
  std::unique_ptr<metal::EventLoop> loop_;  // last: stopped first
  std::array<std::optional<metal::SourceId>, 2> call_sources_;
  std::array<std::atomic<metal::SourceId>, 2> call_ids_{};
};

/// Messages both ways, byte-exact, of several sizes up to the largest payload; then one byte too many.
void exchange(App& app, Guest& guest) {
  unsigned seed = 0;
  for (const std::size_t n : {1U, 2U, 17U, 255U, 256U, 495U, 496U}) {
    const std::string up = pattern(n, seed++), down = pattern(n, seed++);
    ASSERT_EQ(guest.endpoint.send(bytes_of(up), kSecond), Status::kOk) << n;
    const auto got = app.received.pop();
    ASSERT_TRUE(got) << "amp received no message of " << n << " bytes";
    EXPECT_EQ(*got, up) << n;
    ASSERT_EQ(app.send(down), Status::kOk) << n;
    const auto back = guest.received.pop();
    ASSERT_TRUE(back) << "the guest received no message of " << n << " bytes";
    EXPECT_EQ(*back, down) << n;
  }
  EXPECT_EQ(app.send(std::string(497, 'x')), Status::kTooLarge);
}

/// The reason of the App's next event, which must be on_disconnected's ("" for a plain hang-up).
std::string disconnection(Rig& rig) {
  const std::string e = rig.event();
  const std::string prefix = "disconnected: ";
  return e.rfind(prefix, 0) == 0 ? e.substr(prefix.size()) : "(not a disconnection: " + e + ")";
}

/// A guest's whole life on `rig`'s server: it boots, gets session number `session`, talks, powers off.
void full_session(Rig& rig, GuestConfig config, std::uint64_t session = 1) {
  Guest guest(config);
  ASSERT_NO_FATAL_FAILURE(guest.boot(rig.path, *rig.server, session));
  EXPECT_EQ(rig.event(), "ready");
  EXPECT_EQ(rig.app.creation(), Status::kOk);
  EXPECT_EQ(guest.endpoint.remote_address(), rig.app.address()) << "bound to the announced address";
  EXPECT_EQ(guest.driver.event_idx(), config.event_idx);
  ASSERT_NO_FATAL_FAILURE(exchange(rig.app, guest));
  ASSERT_NO_FATAL_FAILURE(guest.power_off());
  ASSERT_TRUE(rig.server->wait_sessions_ended(session, kWait));
  EXPECT_EQ(rig.event(), "gone");
  ASSERT_TRUE(rig.server->wait_disconnections(rig.counters().connections, kWait));
  EXPECT_EQ(disconnection(rig), "") << "a plain hang-up";
}

/// A front end was dropped with an error: the server counted it, said why, and serves the next guest.
void expect_dropped_then_serves_the_next(Rig& rig, std::uint64_t failures, const std::string& why) {
  const auto c = rig.counters();
  EXPECT_EQ(c.failures, failures);
  EXPECT_NE(c.last_error.find(why), std::string::npos) << c.last_error;
  const std::uint64_t sessions = c.sessions_started;
  ASSERT_NO_FATAL_FAILURE(full_session(rig, {}, sessions + 1));
  EXPECT_EQ(rig.counters().failures, failures) << "the next one ended well";
}

/// A session ran and its connection was dropped with `why`: ready, gone, that reason, then the next guest.
void expect_session_dropped(Rig& rig, const std::string& why, const std::string& key) {
  EXPECT_EQ(rig.event(), "ready");
  EXPECT_EQ(rig.event(), "gone");
  EXPECT_EQ(disconnection(rig), why);
  ASSERT_NO_FATAL_FAILURE(expect_dropped_then_serves_the_next(rig, 1, key));
}

// ---- sessions ----

TEST(VhostUserServer, AFrontEndInUmlsSequenceGetsASessionThatCarriesMessagesBothWays) {
  Rig rig;
  ASSERT_NO_FATAL_FAILURE(rig.listen());
  ASSERT_NO_FATAL_FAILURE(full_session(rig, {.event_idx = true, .call = Call::kSocket}));
  const auto c = rig.counters();
  EXPECT_EQ(c.connections, 1U);
  EXPECT_EQ(c.sessions_started, 1U);
  EXPECT_EQ(c.sessions_ended, 1U);
  EXPECT_EQ(c.disconnections, 1U);
  EXPECT_EQ(c.failures, 0U);
  EXPECT_EQ(c.turned_away, 0U);
  EXPECT_EQ(c.last_error, "");
}

TEST(VhostUserServer, ASessionCountsAsStartedOnlyOnceOnReadyHasRun) {
  // What on_ready creates is there once wait_sessions_started() says so.
  Rig rig;
  rig.app.hold_ready = true;
  ASSERT_NO_FATAL_FAILURE(rig.listen());
  Guest guest;
  ASSERT_NO_FATAL_FAILURE(guest.connect(rig.path));
  ASSERT_NO_FATAL_FAILURE(guest.start_driver());
  EXPECT_FALSE(rig.server->wait_sessions_started(1, 100ms)) << "counted while on_ready still waits";
  EXPECT_EQ(rig.counters().sessions_started, 0U);
  rig.app.release_ready.push(true);
  ASSERT_TRUE(rig.server->wait_sessions_started(1, kWait));
  EXPECT_EQ(rig.app.events.pop(0ms).value_or("(none)"), "ready");
  EXPECT_EQ(rig.app.creation(), Status::kOk);
  ASSERT_NO_FATAL_FAILURE(guest.bind());
  ASSERT_NO_FATAL_FAILURE(exchange(rig.app, guest));
}

TEST(VhostUserServer, ASessionWorksWithoutEventIndexes) {
  Rig rig;
  ASSERT_NO_FATAL_FAILURE(rig.listen());
  ASSERT_NO_FATAL_FAILURE(full_session(rig, {.event_idx = false, .call = Call::kSocket}));
}

TEST(VhostUserServer, ASessionWorksWithEventFdsAsCallDescriptors) {
  Rig rig;
  ASSERT_NO_FATAL_FAILURE(rig.listen());
  ASSERT_NO_FATAL_FAILURE(full_session(rig, {.event_idx = true, .call = Call::kEventFd}));
}

TEST(VhostUserServer, ASessionWorksWithoutEventIndexesOverEventFds) {
  Rig rig;
  ASSERT_NO_FATAL_FAILURE(rig.listen());
  ASSERT_NO_FATAL_FAILURE(full_session(rig, {.event_idx = false, .call = Call::kEventFd}));
}

TEST(VhostUserServer, AServerThatOffersNoEventIndexesServesADriverWithout) {
  Rig rig;
  VhostUserServerConfig config;
  config.event_idx = false;
  ASSERT_NO_FATAL_FAILURE(rig.listen(config));
  Guest guest({.event_idx = false});
  ASSERT_NO_FATAL_FAILURE(guest.connect(rig.path, kNsBit | kVersion1Bit));
  ASSERT_NO_FATAL_FAILURE(guest.start_driver());
  ASSERT_TRUE(rig.server->wait_sessions_started(1, kWait));
  ASSERT_NO_FATAL_FAILURE(guest.bind());
  EXPECT_FALSE(guest.driver.event_idx());
  ASSERT_NO_FATAL_FAILURE(exchange(rig.app, guest));
}

// ---- teardown and reconnection ----

TEST(VhostUserServer, AFrontEndThatLeavesIsFollowedByAFreshSessionForTheNext) {
  Rig rig;
  ASSERT_NO_FATAL_FAILURE(rig.listen());
  ASSERT_NO_FATAL_FAILURE(full_session(rig, {}, 1));
  ASSERT_NO_FATAL_FAILURE(full_session(rig, {.event_idx = false, .call = Call::kEventFd}, 2));
  const auto c = rig.counters();
  EXPECT_EQ(c.connections, 2U);
  EXPECT_EQ(c.sessions_started, 2U);
  EXPECT_EQ(c.sessions_ended, 2U);
  EXPECT_EQ(c.disconnections, 2U);
  EXPECT_EQ(c.failures, 0U);
}

TEST(VhostUserServer, ASecondFrontEndIsTurnedAwayWhileOneIsServed) {
  Rig rig;
  ASSERT_NO_FATAL_FAILURE(rig.listen());
  Guest guest;
  ASSERT_NO_FATAL_FAILURE(guest.boot(rig.path, *rig.server, 1));
  auto second = UnixSocket::connect(rig.path);
  ASSERT_TRUE(second) << second.error().message;
  VhostUserFrontEnd intruder(std::move(*second));
  ASSERT_NO_FATAL_FAILURE(intruder.expect_hung_up());  // before it could say anything
  auto c = rig.counters();
  EXPECT_EQ(c.turned_away, 1U);
  EXPECT_EQ(c.connections, 1U);
  EXPECT_EQ(c.failures, 0U);
  // The first one did not notice.
  ASSERT_NO_FATAL_FAILURE(exchange(rig.app, guest));
  EXPECT_EQ(rig.counters().sessions_ended, 0U);
}

/// The guest's driver goes (rmmod virtio_rpmsg_bus: its queues disabled, session 1 ends) and comes back
/// (modprobe: the queues enabled again over the same rings, the driver starts afresh: session 2).
void reload_driver(Rig& rig, Guest& guest) {
  ASSERT_NO_FATAL_FAILURE(guest.front().enable(0, false));
  ASSERT_NO_FATAL_FAILURE(guest.front().enable(1, false));
  ASSERT_TRUE(rig.server->wait_sessions_ended(1, kWait));
  EXPECT_EQ(rig.event(), "gone");
  ASSERT_NO_FATAL_FAILURE(guest.front().enable(0, true));
  ASSERT_NO_FATAL_FAILURE(guest.front().enable(1, true));
  ASSERT_NO_FATAL_FAILURE(guest.start_driver());
  ASSERT_TRUE(rig.server->wait_sessions_started(2, kWait));
  EXPECT_EQ(rig.event(), "ready");
  ASSERT_NO_FATAL_FAILURE(guest.bind());
}

TEST(VhostUserServer, QueuesDisabledAndEnabledAgainGiveAFreshSessionOnTheSameConnection) {
  Rig rig;
  ASSERT_NO_FATAL_FAILURE(rig.listen());
  Guest guest;
  ASSERT_NO_FATAL_FAILURE(guest.boot(rig.path, *rig.server, 1));
  EXPECT_EQ(rig.event(), "ready");
  ASSERT_NO_FATAL_FAILURE(exchange(rig.app, guest));
  ASSERT_NO_FATAL_FAILURE(reload_driver(rig, guest));
  ASSERT_NO_FATAL_FAILURE(exchange(rig.app, guest));
  const auto c = rig.counters();
  EXPECT_EQ(c.connections, 1U);
  EXPECT_EQ(c.disconnections, 0U);
  EXPECT_EQ(c.sessions_ended, 1U);
}

TEST(VhostUserServer, StopEndsTheSessionRunsTheCallbacksAndRemovesTheSocket) {
  Rig rig;
  ASSERT_NO_FATAL_FAILURE(rig.listen());
  Guest guest;
  ASSERT_NO_FATAL_FAILURE(guest.boot(rig.path, *rig.server, 1));
  EXPECT_EQ(rig.event(), "ready");
  ASSERT_TRUE(std::filesystem::exists(rig.path));
  rig.server->stop();
  // on_gone and on_disconnected ran on this thread, before stop() returned.
  EXPECT_EQ(rig.app.events.pop(0ms).value_or("(none)"), "gone");
  EXPECT_EQ(rig.app.gone_thread(), std::this_thread::get_id());
  EXPECT_EQ(rig.app.events.pop(0ms).value_or("(none)"), "disconnected: ");
  const auto c = rig.counters();
  EXPECT_EQ(c.sessions_ended, 1U);
  EXPECT_EQ(c.disconnections, 1U);
  EXPECT_EQ(c.failures, 0U);
  EXPECT_FALSE(std::filesystem::exists(rig.path)) << "the socket file is still there";
  EXPECT_EQ(rig.app.send("late"), Status::kClosed) << "destroyed in on_gone";
  ASSERT_NO_FATAL_FAILURE(guest.front().expect_hung_up());
  rig.server->stop();  // idempotent
  EXPECT_FALSE(UnixSocket::connect(rig.path)) << "nobody listens any more";
}

TEST(VhostUserServer, AResetOwnerStopsTheDeviceBeforeItsMemoryGoesAndTheSameConnectionMaySetUpAgain) {
  Rig rig;
  ASSERT_NO_FATAL_FAILURE(rig.listen());
  Guest guest({.event_idx = true, .call = Call::kEventFd});
  ASSERT_NO_FATAL_FAILURE(guest.boot(rig.path, *rig.server, 1));
  EXPECT_EQ(rig.event(), "ready");
  // An application thread sends all along: the reset must stop it before the rings are unmapped.
  std::atomic<bool> done{false};
  std::atomic<int> closed{0};
  std::thread sender([&] {
    while (!done.load()) {
      if (rig.app.send("x") == Status::kClosed) ++closed;
    }
  });
  guest.front().send(Request::kResetOwner);
  const bool ended = rig.server->wait_sessions_ended(1, kWait);
  std::this_thread::sleep_for(20ms);  // sends go on meanwhile, against the stopped device
  done = true;
  sender.join();
  ASSERT_TRUE(ended);
  EXPECT_EQ(rig.event(), "gone");
  EXPECT_GT(closed.load(), 0) << "sends after the reset fail with kClosed";
  // The front end sets the same memory and descriptors up again: a fresh session on the same connection.
  ASSERT_NO_FATAL_FAILURE(guest.set_up_again());
  ASSERT_NO_FATAL_FAILURE(guest.start_driver());
  ASSERT_TRUE(rig.server->wait_sessions_started(2, kWait));
  EXPECT_EQ(rig.event(), "ready");
  ASSERT_NO_FATAL_FAILURE(guest.bind());
  ASSERT_NO_FATAL_FAILURE(exchange(rig.app, guest));
  const auto c = rig.counters();
  EXPECT_EQ(c.connections, 1U);
  EXPECT_EQ(c.failures, 0U) << c.last_error;
}

TEST(VhostUserServer, StopDoesNotWaitForEchoesThatWaitForBuffersTheGuestNeverGivesBack) {
  // An echo that waits up to 10 s per message for one of the guest's receive buffers, and a guest that
  // stops giving them back: stop() tells the device to give up at once instead of waiting out each echo.
  metal::testing::TempDir dir;
  const std::string path = (dir.path() / "vhost.sock").string();
  Endpoint echo;
  Mailbox<bool> ready;
  VhostUserServer::Callbacks cb;
  cb.on_ready = [&](Device& d) {
    ASSERT_EQ(d.create_endpoint(
                  echo, kService, kAddrAny, kAddrAny,
                  [](Endpoint& e, const Message& m) { (void)e.send_to(m.src, m.payload, 10 * kSecond); }),
              Status::kOk);
    ready.push(true);
  };
  cb.on_gone = [&](Device&) { echo.destroy(); };
  VhostUserServerConfig config;
  config.socket_path = path;
  auto server = VhostUserServer::listen(config, std::move(cb));
  ASSERT_TRUE(server) << server.error().message;
  Guest guest;
  ASSERT_NO_FATAL_FAILURE(guest.boot(path, **server, 1));
  ASSERT_TRUE(ready.pop());
  ASSERT_NO_FATAL_FAILURE(guest.unwatch_call(0));  // its receive buffers are never taken back and re-posted
  for (std::size_t i = 0; i < kRingEntries + 8; ++i)
    ASSERT_EQ(guest.endpoint.send(bytes_of("echo me"), kSecond), Status::kOk) << i;
  std::this_thread::sleep_for(100ms);  // the server's thread is now in an echo that waits
  const auto t0 = std::chrono::steady_clock::now();
  (*server)->stop();
  const auto took = std::chrono::steady_clock::now() - t0;
  // A bound on a liveness property, not a speed measurement: one waiting echo alone would take 10 s.
  EXPECT_LT(took, 5s) << "stop() waited for the echoes";
}

TEST(VhostUserServer, AFrontEndThatReadsNoRepliesIsDroppedInsteadOfBlockingTheServer) {
  Rig rig;
  VhostUserServerConfig config;
  config.message_timeout = 300ms;
  ASSERT_NO_FATAL_FAILURE(rig.listen(config));
  auto s = UnixSocket::connect(rig.path);
  ASSERT_TRUE(s);
  VhostUserFrontEnd front(std::move(*s));
  front.send(Request::kSetOwner);
  // GET_FEATURES again and again, never reading an answer, until the server stops reading too (its replies
  // filled the socket) and then drops us: a send that waits 1 s for room, or fails, ends the flood.
  const timeval limit{1, 0};
  ASSERT_EQ(::setsockopt(front.socket().fd(), SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit), 0);
  Bytes get;
  get.u32(static_cast<std::uint32_t>(Request::kGetFeatures)).u32(virtio::vhost_user::kVersion).u32(0);
  int sent = 0;
  while (sent < 1'000'000 && front.socket().send(get.v)) ++sent;
  EXPECT_LT(sent, 1'000'000);
  ASSERT_TRUE(rig.server->wait_disconnections(1, kWait)) << "the server still waits for room for a reply";
  EXPECT_EQ(disconnection(rig),
            "vhost-user: answering GET_FEATURES: the front end reads no replies (the socket stayed full)");
  ASSERT_NO_FATAL_FAILURE(expect_dropped_then_serves_the_next(rig, 1, "the front end reads no replies"));
}

// ---- hostile front ends ----

TEST(VhostUserServer, AFrontEndThatKicksWithoutEndDoesNotKeepTheServerBusy) {
  Rig rig;
  ASSERT_NO_FATAL_FAILURE(rig.listen());
  const int mem = ::memfd_create("amp-guest-memory", MFD_CLOEXEC);
  ASSERT_GE(mem, 0);
  const metal::UniqueFd memory(mem);
  ASSERT_EQ(::ftruncate(mem, kMemSize), 0);
  auto s = UnixSocket::connect(rig.path);
  ASSERT_TRUE(s);
  VhostUserFrontEnd front(std::move(*s));
  ASSERT_NO_FATAL_FAILURE(front.negotiate(mem, kOffered, kNsBit | kVersion1Bit));
  // Semaphore eventfds as kicks: one write of a huge count keeps them readable for ever.
  std::array<metal::UniqueFd, 2> kicks, calls;
  for (std::uint32_t q = 0; q < 2; ++q) {
    kicks[q] = metal::UniqueFd(::eventfd(0, EFD_SEMAPHORE | EFD_CLOEXEC));
    calls[q] = metal::UniqueFd(::eventfd(0, EFD_CLOEXEC));
    ASSERT_TRUE(kicks[q].valid() && calls[q].valid());
    ASSERT_NO_FATAL_FAILURE(front.set_up_queue(q, calls[q].get(), kicks[q].get()));
  }
  for (std::uint32_t q = 0; q < 2; ++q) ASSERT_NO_FATAL_FAILURE(front.enable(q, true));
  const std::uint64_t forever = 0xfffffffffffffffeULL;
  ASSERT_EQ(::write(kicks[1].get(), &forever, sizeof forever), static_cast<ssize_t>(sizeof forever));
  ASSERT_TRUE(rig.server->wait_sessions_started(1, kWait));
  // This process's CPU time over half a second of the flood (the test's own thread sleeps): the server's
  // thread would spend all of it reading kicks.
  const auto cpu = [] {
    timespec t{};
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return std::chrono::seconds(t.tv_sec) + std::chrono::nanoseconds(t.tv_nsec);
  };
  const auto cpu0 = cpu();
  std::this_thread::sleep_for(500ms);
  const auto used = cpu() - cpu0;
  EXPECT_LT(used, 150ms) << "the server's thread spun on the kicks";
  // Paused, and for longer each time: at 10 ms a pause, half a second would hold some 50 of them.
  const std::uint64_t pauses = rig.counters().kick_pauses;
  EXPECT_GE(pauses, 1U);
  EXPECT_LE(pauses, 12U) << "the pauses do not grow";
  // Meanwhile it still answers the front end.
  ASSERT_NO_FATAL_FAILURE(front.request(Request::kGetFeatures));
  EXPECT_EQ(amp::testing::u64_of(front.reply(Request::kGetFeatures)),
            kOffered | (1ULL << virtio::vhost_user::kFeatureProtocolFeatures));
  EXPECT_EQ(rig.counters().failures, 0U);
}

/// `n` messages from the guest to amp, one at a time (so each makes a kick of its own without event idx).
void send_up(Rig& rig, Guest& guest, int n) {
  for (int i = 0; i < n; ++i) {
    const std::string up = "up " + std::to_string(i);
    ASSERT_EQ(guest.endpoint.send(bytes_of(up), kSecond), Status::kOk) << i;
    ASSERT_EQ(rig.app.received.pop().value_or("(none)"), up);
  }
}

TEST(VhostUserServer, AGuestAtWorkIsNeverPausedHoweverOftenItKicks) {
  // Without event indexes the guest kicks for every message it sends and for the buffers it gives back when
  // amp waits for them: each of those kicks shows work (an available index moved), however many there are,
  // so none of them pauses the kicks. Messages and buffers returned both: far more than the ring holds.
  Rig rig;
  ASSERT_NO_FATAL_FAILURE(rig.listen());
  Guest guest({.event_idx = false, .call = Call::kEventFd});
  ASSERT_NO_FATAL_FAILURE(guest.boot(rig.path, *rig.server, 1));
  EXPECT_EQ(rig.event(), "ready");
  constexpr int kMessages = 16 * static_cast<int>(kRingEntries);
  ASSERT_NO_FATAL_FAILURE(send_up(rig, guest, kMessages));
  for (int i = 0; i < kMessages; ++i) ASSERT_EQ(rig.app.send("down " + std::to_string(i)), Status::kOk) << i;
  for (int i = 0; i < kMessages; ++i)
    ASSERT_EQ(guest.received.pop().value_or("(none)"), "down " + std::to_string(i));
  EXPECT_EQ(rig.counters().kick_pauses, 0U);
  EXPECT_EQ(rig.counters().failures, 0U);
}

TEST(VhostUserServer, ADriverThatComesBackOnTheSameConnectionIsNotTakenForAFlood) {
  // Its rings start again at index 0: what the last session's indexes reached says nothing of the new ones.
  Rig rig;
  ASSERT_NO_FATAL_FAILURE(rig.listen());
  Guest guest({.event_idx = false, .call = Call::kEventFd});
  ASSERT_NO_FATAL_FAILURE(guest.boot(rig.path, *rig.server, 1));
  EXPECT_EQ(rig.event(), "ready");
  ASSERT_NO_FATAL_FAILURE(send_up(rig, guest, 300));
  ASSERT_NO_FATAL_FAILURE(reload_driver(rig, guest));
  ASSERT_NO_FATAL_FAILURE(send_up(rig, guest, 300));
  EXPECT_EQ(rig.counters().kick_pauses, 0U);
}

TEST(VhostUserServer, RingsOutsideTheGuestMemoryEndTheConnection) {
  Rig rig;
  ASSERT_NO_FATAL_FAILURE(rig.listen());
  {
    auto s = UnixSocket::connect(rig.path);
    ASSERT_TRUE(s);
    VhostUserFrontEnd front(std::move(*s));
    const int fd = ::memfd_create("amp-guest-memory", MFD_CLOEXEC);
    ASSERT_GE(fd, 0);
    metal::UniqueFd memory(fd);
    ASSERT_EQ(::ftruncate(fd, kMemSize), 0);
    ASSERT_NO_FATAL_FAILURE(front.negotiate(fd, kOffered, kOffered));
    ASSERT_NO_FATAL_FAILURE(front.expect_acked(Request::kSetVringNum, Bytes().u32(0).u32(kRingEntries)));
    Bytes outside;  // the descriptors run past the end of the memory
    const std::uint64_t desc = amp::testing::kUser + kMemSize - 0x800;
    outside.u32(0).u32(0).u64(desc).u64(desc + 0x2000).u64(desc + 0x1000).u64(0);
    ASSERT_NO_FATAL_FAILURE(front.expect_acked(Request::kSetVringAddr, outside, {}, 1));
    ASSERT_NO_FATAL_FAILURE(front.expect_hung_up());
  }
  ASSERT_TRUE(rig.server->wait_disconnections(1, kWait));
  const std::string why = disconnection(rig);
  EXPECT_NE(why.find("SET_VRING_ADDR: queue 0: 0x7f00000ff800 (+4096 bytes) lies in no region"),
            std::string::npos)
      << why;
  EXPECT_EQ(rig.counters().sessions_started, 0U);
  ASSERT_NO_FATAL_FAILURE(
      expect_dropped_then_serves_the_next(rig, 1, "lies in no region of the memory table"));
}

TEST(VhostUserServer, ADescriptorOutsideTheGuestMemoryIsARingFault) {
  Rig rig;
  ASSERT_NO_FATAL_FAILURE(rig.listen());
  {
    Guest guest;
    ASSERT_NO_FATAL_FAILURE(guest.boot(rig.path, *rig.server, 1));
    // A message for amp whose buffer lies past the guest memory: descriptor 0 of queue 1, offered by hand
    // (the driver has sent nothing on it yet).
    const auto layout = *virtio::RingLayout::compute(kRingEntries, kRingAlign);
    const std::uint64_t ring = ring_offset(1);
    const Bytes desc = Bytes().u64(kGuest + kMemSize).u32(512).u32(0);  // addr, len, flags 0, next 0
    std::memcpy(guest.at(ring + layout.desc_entry(0)), desc.v.data(), desc.v.size());
    const std::uint16_t head = 0, idx = 1;
    std::memcpy(guest.at(ring + layout.avail_entry(0)), &head, 2);
    std::memcpy(guest.at(ring + layout.avail_idx()), &idx, 2);
    ASSERT_NO_FATAL_FAILURE(guest.kick(1));
    ASSERT_TRUE(rig.server->wait_disconnections(1, kWait));
    ASSERT_NO_FATAL_FAILURE(guest.front().expect_hung_up());
  }
  EXPECT_EQ(rig.event(), "ready");
  EXPECT_EQ(rig.event(), "gone");
  const std::string why = disconnection(rig);
  EXPECT_EQ(why, "the front end broke the ring protocol: buffer outside the shared region");
  EXPECT_EQ(rig.counters().sessions_ended, 1U);
  ASSERT_NO_FATAL_FAILURE(expect_dropped_then_serves_the_next(rig, 1, "broke the ring protocol"));
}

TEST(VhostUserServer, GuestMemoryShrunkUnderTheServerEndsTheConnectionWithoutACrash) {
  Rig rig;
  ASSERT_NO_FATAL_FAILURE(rig.listen());
  {
    Guest guest;
    ASSERT_NO_FATAL_FAILURE(guest.boot(rig.path, *rig.server, 1));
    ASSERT_NO_FATAL_FAILURE(exchange(rig.app, guest));
    ASSERT_EQ(::ftruncate(guest.memory().fd(), 0), 0);  // SIGBUS for whoever touches it next
    ASSERT_NO_FATAL_FAILURE(guest.kick(1));             // the server looks at queue 1's ring
    ASSERT_TRUE(rig.server->wait_disconnections(1, kWait));
    ASSERT_NO_FATAL_FAILURE(guest.front().expect_hung_up());
  }
  ASSERT_NO_FATAL_FAILURE(expect_session_dropped(
      rig, "the guest memory was lost: the front end shrank its file under us", "guest memory was lost"));
}

TEST(VhostUserServer, ACallSocketWhoseOtherEndClosedEndsTheConnection) {
  Rig rig;
  ASSERT_NO_FATAL_FAILURE(rig.listen());
  {
    Guest guest;
    ASSERT_NO_FATAL_FAILURE(guest.boot(rig.path, *rig.server, 1));
    ASSERT_NO_FATAL_FAILURE(exchange(rig.app, guest));
    ASSERT_NO_FATAL_FAILURE(guest.close_call_socket(0));
    // The driver waits for interrupts on its receive queue: amp's next message notifies it, into EPIPE.
    EXPECT_EQ(rig.app.send("into a closed pipe"), Status::kOk);
    ASSERT_TRUE(rig.server->wait_disconnections(1, kWait));
    ASSERT_NO_FATAL_FAILURE(guest.front().expect_hung_up());
  }
  ASSERT_NO_FATAL_FAILURE(
      expect_session_dropped(rig, "writing the call descriptor of queue 0: Broken pipe", "Broken pipe"));
}

TEST(VhostUserServer, ACallEventFdMadeBlockingAndFullEndsTheConnectionInsteadOfBlockingIt) {
  Rig rig;
  ASSERT_NO_FATAL_FAILURE(rig.listen());
  {
    Guest guest({.call = Call::kEventFd});
    ASSERT_NO_FATAL_FAILURE(guest.boot(rig.path, *rig.server, 1));
    ASSERT_NO_FATAL_FAILURE(exchange(rig.app, guest));
    ASSERT_NO_FATAL_FAILURE(guest.unwatch_call(0));
    // The eventfd's open file is shared with the server: clear O_NONBLOCK and fill the counter.
    const int call = guest.call_event(0).fd();
    ASSERT_EQ(::fcntl(call, F_SETFL, 0), 0);
    const std::uint64_t most = 0xfffffffffffffffeULL;
    ASSERT_EQ(::write(call, &most, sizeof most), 8);
    EXPECT_EQ(rig.app.send("into a full eventfd"), Status::kOk);
    ASSERT_TRUE(rig.server->wait_disconnections(1, kWait));
    ASSERT_NO_FATAL_FAILURE(guest.front().expect_hung_up());
  }
  EXPECT_EQ(rig.event(), "ready");
  EXPECT_EQ(rig.event(), "gone");
  EXPECT_EQ(disconnection(rig),
            "writing the call descriptor of queue 0: blocked (the front end interfered with it)");
  ASSERT_NO_FATAL_FAILURE(expect_dropped_then_serves_the_next(rig, 1, "blocked"));
}

TEST(VhostUserServer, ACallDescriptorSwappedOnARunningQueueIsRefused) {
  Rig rig;
  ASSERT_NO_FATAL_FAILURE(rig.listen());
  {
    Guest guest;
    ASSERT_NO_FATAL_FAILURE(guest.boot(rig.path, *rig.server, 1));
    auto other = metal::EventFd::create();
    ASSERT_TRUE(other);
    ASSERT_NO_FATAL_FAILURE(
        guest.front().expect_acked(Request::kSetVringCall, Bytes().u64(0), {other->fd()}, 1));
    ASSERT_NO_FATAL_FAILURE(guest.front().expect_hung_up());
  }
  ASSERT_TRUE(rig.server->wait_disconnections(1, kWait));
  ASSERT_NO_FATAL_FAILURE(expect_session_dropped(rig, "vhost-user: SET_VRING_CALL: queue 0 runs",
                                                 "SET_VRING_CALL: queue 0 runs"));
}

TEST(VhostUserServer, GarbageInsteadOfAHeaderEndsTheConnection) {
  Rig rig;
  ASSERT_NO_FATAL_FAILURE(rig.listen());
  {
    auto s = UnixSocket::connect(rig.path);
    ASSERT_TRUE(s);
    VhostUserFrontEnd front(std::move(*s));
    ASSERT_EQ(front.socket().send_all(bytes_of("GET / HTTP/1.1\r\nHost: amp\r\n\r\n")), Status::kOk);
    ASSERT_NO_FATAL_FAILURE(front.expect_hung_up());
  }
  ASSERT_TRUE(rig.server->wait_disconnections(1, kWait));
  EXPECT_EQ(disconnection(rig), "vhost-user: request 542393671: protocol version 3, not 1");
  ASSERT_NO_FATAL_FAILURE(expect_dropped_then_serves_the_next(rig, 1, "protocol version 3, not 1"));
}

}  // namespace
}  // namespace amp::rpmsg
