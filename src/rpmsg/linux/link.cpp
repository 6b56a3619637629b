// SPDX-License-Identifier: BSD-3-Clause
#include "amp/rpmsg/linux/link.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <climits>
#include <cstring>
#include <vector>

#include "amp/metal/log.hpp"
#include "amp/metal/time.hpp"
#include "amp/virtio/ring.hpp"

namespace amp::rpmsg {

using metal::sys_fail;
using metal::SysError;
using metal::SysResult;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t kPage = 0x1000;
constexpr std::size_t align_up(std::size_t v, std::size_t a) {
  return (v + a - 1) & ~(a - 1);
}

/// The creator's hello, sent once over the socket with the memfd and eventfds.
struct Hello {
  char magic[4];
  std::uint32_t version;
  std::uint8_t creator_role;
  std::uint8_t notify;
  std::uint16_t vdev;  // which vdev entry of the table (LinkLayout::vdev)
  std::uint32_t ring_size;
  std::uint32_t buffer_size;
  std::uint64_t shm_size;
  char posix_name[64];
  // The layout, explicit: the joiner checks it and uses it as is.
  std::uint64_t device_address;
  std::uint64_t table;
  std::uint64_t table_size;
  std::uint64_t pool;
  std::uint64_t pool_size;
};
static_assert(sizeof(Hello) == 136);
constexpr char kMagic[4] = {'A', 'M', 'P', 'L'};
constexpr std::uint32_t kHelloVersion = 3;

/// The joiner's answer to the hello: joined, or refused and why.
struct HelloReply {
  char magic[4];
  std::uint32_t version;
  std::int32_t status;  // amp::Status; kOk: joined
  std::uint8_t role;    // the joiner's
  std::uint8_t reserved[3];
  char reason[112];  // NUL-terminated
};
static_assert(sizeof(HelloReply) == 128);
constexpr char kReplyMagic[4] = {'A', 'M', 'P', 'R'};

/// Text from the peer, made safe to show: printable ASCII only.
std::string printable(const char* text, std::size_t max) {
  std::string out;
  for (std::size_t i = 0; i < max && text[i] != '\0'; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    out += c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?';
  }
  return out;
}

/// The joiner's answer: `status` (kOk: joined) and, when refusing, why.
Status send_reply(metal::UnixSocket& socket, Role role, Status status, const std::string& reason) {
  HelloReply r{};
  std::memcpy(r.magic, kReplyMagic, 4);
  r.version = kHelloVersion;
  r.status = static_cast<std::int32_t>(status);
  r.role = static_cast<std::uint8_t>(role);
  std::memcpy(r.reason, reason.data(), std::min(reason.size(), sizeof r.reason - 1));
  return socket.send_all(std::as_bytes(std::span(&r, 1)));
}

/// The joiner refuses: tells the creator why, and fails with the same words.
Unexpected<SysError> refuse(metal::UnixSocket& socket, Role role, Status status, const std::string& reason) {
  (void)send_reply(socket, role, status, reason);  // best effort: the peer may be gone already
  return sys_fail(status, reason);
}

/// The creator waits for the joiner's answer.
SysResult<void> await_reply(metal::UnixSocket& socket, Role creator_role, std::chrono::milliseconds timeout) {
  HelloReply r{};
  const Status got = socket.receive_exact(std::as_writable_bytes(std::span(&r, 1)), nullptr, 0, timeout);
  if (got == Status::kClosed) return sys_fail(Status::kClosed, "the peer hung up before joining the link");
  if (got == Status::kTimeout) {
    return sys_fail(Status::kTimeout, "the peer did not answer the link hello within " +
                                          std::to_string(timeout.count()) + " ms");
  }
  if (!ok(got)) return sys_fail(got, std::string("receiving the peer's answer: ") + amp::to_string(got));
  if (std::memcmp(r.magic, kReplyMagic, 4) != 0 || r.version != kHelloVersion) {
    return sys_fail(Status::kMalformed, "the peer's answer is not an amp link's (bad magic or version)");
  }
  const auto status = static_cast<Status>(r.status);
  if (r.status < 0 || status > Status::kInternal) {
    return sys_fail(Status::kMalformed,
                    "the peer's answer has an unknown status " + std::to_string(r.status));
  }
  if (!ok(status)) {
    return sys_fail(status, "the peer refused the link: " + printable(r.reason, sizeof r.reason));
  }
  if (r.role > 1 || static_cast<Role>(r.role) == creator_role) {
    return sys_fail(Status::kMalformed, "the peer joined in a role that is not the other one");
  }
  return {};
}

/// Whether [off, off + len) lies in [0, size).
bool inside(std::uint64_t off, std::uint64_t len, std::uint64_t size) {
  return off <= size && len <= size - off;
}

/// Lays out the one-vdev resource table at layout.table, its vrings at layout.vring0/1.
/// `sizes`: the buffer sizes the vdev declares (VIRTIO_RPMSG_F_BUFSZ offered), or none.
SysResult<void> write_table(const metal::SharedMemory& shm, const LinkLayout& layout, std::uint32_t ring_size,
                            std::uint32_t features, const BufferSizes* sizes = nullptr) {
  auto table = shm.region().subregion(layout.table, layout.table_size);
  const std::array<virtio::QueueInfo, 2> rings{
      virtio::QueueInfo{shm.device_address() + layout.vring0, layout.ring_align, ring_size, 1},
      virtio::QueueInfo{shm.device_address() + layout.vring1, layout.ring_align, ring_size, 2}};
  if (!table) return sys_fail(Status::kOutOfRange, "the shared memory is too small for the resource table");
  std::array<std::byte, kBufferSizesConfigSize> config{};
  virtio::RscVdev::Spec spec{kVirtioIdRpmsg, 0, features, 0, rings};
  if (sizes != nullptr) {
    encode_buffer_sizes(*sizes, config);
    spec.device_features |= 1U << kFeatureBufferSizes;
    spec.config_len = kBufferSizesConfigSize;
    spec.config = config;
  }
  if (auto body = virtio::write_single_vdev_table(*table, spec); !body) {
    return sys_fail(body.error(), std::string("writing the resource table: ") + amp::to_string(body.error()));
  }
  return {};
}

}  // namespace

Status Link::Kicker::notify(std::uint32_t) noexcept {
  switch (mode) {
    case NotifyMode::kEventFd:
    case NotifyMode::kAdaptive: {
      // We only ever add 1: a full counter, or a write that blocks, is the peer interfering.
      const Status s = eventfd->signal();
      if (s == Status::kBroken || s == Status::kWouldBlock) {
        link->fail(s == Status::kBroken
                       ? "the peer made the notification eventfd block (it cleared O_NONBLOCK and filled it)"
                       : "the peer filled the notification eventfd's counter");
        return Status::kBroken;
      }
      return s;
    }
    case NotifyMode::kSocket:
      // One byte per kick. A full socket buffer means the peer has kicks it has not read yet, which is as
      // good as one more.
      for (;;) {
        const char b = 1;
        if (::send(socket_fd, &b, 1, MSG_DONTWAIT | MSG_NOSIGNAL) == 1) return Status::kOk;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return Status::kOk;
        return Status::kClosed;
      }
    case NotifyMode::kPoll:
      return Status::kOk;  // the peer's thread watches the rings
  }
  return Status::kInternal;
}

const char* to_string(NotifyMode m) noexcept {
  switch (m) {
    case NotifyMode::kEventFd:
      return "eventfd";
    case NotifyMode::kSocket:
      return "socket";
    case NotifyMode::kPoll:
      return "poll";
    case NotifyMode::kAdaptive:
      return "adaptive";
  }
  return "?";
}

const char* to_string(Role r) noexcept {
  return r == Role::kDriver ? "driver" : "device";
}

SysResult<LinkLayout> LinkLayout::compute(std::uint32_t ring_size, std::uint32_t buffer_size) {
  auto ring = virtio::RingLayout::compute(ring_size, 0x1000);
  if (!ring)
    return sys_fail(Status::kInvalidArgument,
                    "ring size " + std::to_string(ring_size) + " is not a power of two in [1, 32768]");
  if (!valid_buffer_size(buffer_size)) {
    return sys_fail(Status::kInvalidArgument,
                    "buffer size " + std::to_string(buffer_size) + " must be a multiple of 8 in [24, 65544]");
  }
  LinkLayout l;
  l.table = 0;
  l.table_size = kPage;
  l.vring0 = kPage;
  l.vring1 = l.vring0 + align_up(ring->size, kPage);
  l.pool = l.vring1 + align_up(ring->size, kPage);
  l.pool_size = 2 * std::size_t{ring_size} * buffer_size;
  l.size = align_up(l.pool + l.pool_size, kPage);
  return l;
}

LinkLayout LinkLayout::openamp() {
  LinkLayout l;
  l.table = 0;
  l.table_size = 0x4000;
  l.vring0 = 0x4000;
  l.vring1 = 0x8000;
  l.pool = 0x10000;
  l.pool_size = 0x40000;
  l.size = 0x80000;
  return l;
}

Link::~Link() {
  close();
}

void Link::fail(std::string why) noexcept {
  {
    std::lock_guard lock(failure_mutex_);
    if (failure_.empty()) failure_ = std::move(why);
  }
  failed_.store(true, std::memory_order_release);
  if (alarm_) (void)alarm_->signal();  // ours alone, so this cannot block
}

std::string Link::failure() const {
  {
    std::lock_guard lock(failure_mutex_);
    if (!failure_.empty()) return failure_;
  }
  if (const virtio::Fault f = device_.fault(); f != virtio::Fault::kNone)
    return std::string("the peer broke the ring protocol: ") + virtio::to_string(f);
  return {};
}

bool Link::healthy() {
  if (shm_.lost() && !failed_.load(std::memory_order_acquire)) {
    fail("the peer shrank the shared memory (it now reads zeros)");
  }
  if (!failed_.load(std::memory_order_acquire)) return true;
  on_alarm();
  return false;
}

void Link::on_alarm() {
  if (alarm_) (void)alarm_->consume();
  if (shm_.lost() && !failed_.load(std::memory_order_acquire)) {
    fail("the peer shrank the shared memory (it now reads zeros)");
  }
  if (!failed_.load(std::memory_order_acquire) || peer_gone_.load()) return;
  AMP_LOG_ERROR("link: %s; the link is down", failure().c_str());
  mark_peer_gone();
  if (loop_) loop_->stop();
}

void Link::mark_peer_gone() {
  device_.stop();  // first: once peer_gone() says so, sends fail
  {
    std::lock_guard lock(gone_mutex_);
    peer_gone_.store(true, std::memory_order_release);
  }
  gone_cv_.notify_all();
}

bool Link::wait_peer_gone(std::chrono::milliseconds timeout) {
  std::unique_lock lock(gone_mutex_);
  return gone_cv_.wait_for(lock, timeout, [this] { return peer_gone_.load(); });
}

void Link::close() {
  if (closed_.exchange(true)) return;
  stopping_.store(true, std::memory_order_release);
  shm_.notify_when_lost(-1);           // the alarm eventfd closes before the mapping goes
  if (alarm_) (void)alarm_->signal();  // wake an adaptive thread sleeping in poll()
  device_.stop();
  if (loop_) {
    loop_->stop();
    loop_->join();
  }
  if (thread_.joinable()) thread_.join();
}

SysResult<void> Link::prepare(const LinkLayout& layout) {
  const metal::IoRegion shm = shm_.region();
  auto table = shm.subregion(layout.table, layout.table_size);
  if (!table) return sys_fail(Status::kOutOfRange, "the shared memory is too small for the resource table");
  auto body = virtio::find_vdev(*table, layout.vdev);
  if (!body)
    return sys_fail(body.error(),
                    std::string("the resource table has no usable vdev: ") + amp::to_string(body.error()));
  auto transport = virtio::RscVdevTransport::open(*body);
  if (!transport) return sys_fail(transport.error(), "the vdev entry is malformed");
  transport_ = *transport;

  std::uint32_t max_ring = 0;
  for (std::uint32_t q = 0; q < 2; ++q) {
    auto info = transport_.queue(q);
    if (!info) return sys_fail(Status::kMalformed, "the vdev has fewer than two vrings");
    if (info->num > virtio::kMaxQueueSize) return sys_fail(Status::kMalformed, "vring size out of range");
    max_ring = std::max(max_ring, info->num);
  }
  storage_ = RuntimeStorage(max_ring);
  for (std::uint32_t q = 0; q < 2; ++q) {
    // What Device::start will check again, checked here too so that a joiner refuses in its answer.
    const virtio::QueueInfo info = *transport_.queue(q);
    auto ring = virtio::RingLayout::compute(info.num, info.align);
    if (!ring) return sys_fail(Status::kMalformed, "vring " + std::to_string(q) + ": bad size or alignment");
    if (!shm.offset_of(info.da, ring->size)) {
      return sys_fail(Status::kOutOfRange, "vring " + std::to_string(q) + " at " + metal::hex(info.da) +
                                               " is outside the shared memory");
    }
  }
  return {};
}

SysResult<void> Link::start(const LinkConfig& config, const LinkLayout& layout) {
  const metal::IoRegion shm = shm_.region();
  kicker_.mode = notify_;
  kicker_.eventfd = kick_out_ ? &*kick_out_ : nullptr;
  kicker_.socket_fd = socket_.fd();
  kicker_.link = this;
  auto alarm = metal::EventFd::create_private();
  if (!alarm) return sys_fail(alarm.error().status, alarm.error().message);
  alarm_.emplace(std::move(*alarm));
  shm_.notify_when_lost(alarm_->fd());

  DeviceConfig dc;
  dc.role = config.role;
  dc.shm = shm;
  dc.transport = &transport_;
  dc.notifier = &kicker_;
  dc.wait_mode = notify_ == NotifyMode::kPoll ? WaitMode::kSpin : WaitMode::kBlock;
  if (config.single_threaded && config.own_thread) {
    return sys_fail(Status::kInvalidArgument,
                    "a single-threaded link is driven by its caller (own_thread = false)");
  }
  dc.single_threaded = config.single_threaded;
  dc.notify_peer = notify_ != NotifyMode::kPoll;  // a polling peer needs no kicks, nor the fences they cost
  dc.buffer_pool = shm_.device_address() + layout.pool;
  dc.buffer_pool_size = layout.pool_size;
  dc.buffer_size = config.buffer_size;
  dc.event_idx = config.event_idx;
  dc.start_timeout_ns = static_cast<std::uint64_t>(std::chrono::nanoseconds(config.timeout).count());
  // Process before the handshake completes too: the device side announces its endpoints from start(),
  // and the notifications for those must not be lost.
  if (auto s = start_processing(config.own_thread, config.adaptive_spin); !s) return s;
  rescheduler_.bind(loop_.get(), [this] { (void)process_now(); });
  dc.reschedule = &rescheduler_;
  if (const Status s = storage_.start(device_, dc); !ok(s)) {
    if (s == Status::kClosed) return sys_fail(s, "the peer hung up during the virtio handshake");
    return sys_fail(s,
                    std::string("rpmsg start (") + to_string(config.role) + " role): " + amp::to_string(s));
  }
  // Anything that arrived while we were starting.
  // (kClosed: the peer already hung up, which the caller sees through peer_gone().)
  if (const Status s = process_now(); !ok(s) && s != Status::kClosed) {
    return sys_fail(s, std::string("rpmsg: first processing failed: ") + amp::to_string(s));
  }
  return {};
}

Status Link::process_now(bool rearm) {
  const Status s = device_.process(rearm);
  if (s == Status::kBroken && !failed_.load(std::memory_order_acquire)) {
    fail(failure());  // the ring fault, in words
    on_alarm();
  }
  return s;
}

void Link::on_socket_readable() {
  char buf[4096];
  // At most 64 KiB per dispatch (the loop comes back while more is there): a peer that floods the socket
  // cannot keep this thread, and with it close(), here.
  for (int chunk = 0; chunk < 16; ++chunk) {
    const ssize_t n = ::recv(socket_.fd(), buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) continue;  // kicks (socket mode): drain them, then process once
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      if (!peer_gone_.load()) {
        AMP_LOG_INFO("link: the peer hung up");
        mark_peer_gone();
      }
      return;
    }
    if (errno == EINTR) continue;
    break;
  }
  if (notify_ == NotifyMode::kSocket) (void)process_now();
}

SysResult<void> Link::start_processing(bool own_thread, std::chrono::microseconds spin) {
  if (notify_ == NotifyMode::kPoll) {
    if (own_thread) thread_ = std::thread([this] { poll_loop(); });
    return {};
  }
  if (notify_ == NotifyMode::kAdaptive) {
    if (!own_thread) return sys_fail(Status::kNotSupported, "adaptive polling needs the link's own thread");
    thread_ = std::thread([this, spin] { adaptive_loop(spin); });
    return {};
  }
  auto loop = metal::EventLoop::create();
  if (!loop) return sys_fail(loop.error().status, loop.error().message);
  loop_ = std::move(*loop);
  if (notify_ == NotifyMode::kEventFd) {
    // The peer shares this eventfd: consume it ourselves (bounded), so interference ends the link.
    auto id = loop_->add_fd(kick_in_->fd(), EPOLLIN, [this](std::uint32_t) {
      if (auto n = kick_in_->consume(); !n) {
        fail("the peer made our notification eventfd block (it cleared O_NONBLOCK and took the count)");
        on_alarm();
        return;
      }
      (void)process_now();
    });
    if (!id) return sys_fail(id.error().status, id.error().message);
  }
  auto alarm_id = loop_->add_fd(alarm_->fd(), EPOLLIN, [this](std::uint32_t) { on_alarm(); });
  if (!alarm_id) return sys_fail(alarm_id.error().status, alarm_id.error().message);
  // The socket: kicks in socket mode, and in every mode the sign that the peer is gone.
  auto id = loop_->add_fd(socket_.fd(), EPOLLIN | EPOLLRDHUP, [this](std::uint32_t) {
    on_socket_readable();
    if (peer_gone_.load()) loop_->stop();
  });
  if (!id) return sys_fail(id.error().status, id.error().message);
  if (!own_thread) return {};
  if (const Status s = loop_->start_thread(); !ok(s)) return sys_fail(s, "starting the link's thread");
  return {};
}

SysResult<int> Link::poll_events(std::chrono::milliseconds timeout) {
  if (!loop_) {
    if (!healthy()) return sys_fail(Status::kBroken, failure());
    const Status s = process_now();
    if (!ok(s)) return sys_fail(s, std::string("rpmsg: ") + amp::to_string(s));
    return 1;
  }
  return loop_->poll(timeout);
}

bool Link::check_hangup() {
  pollfd p{socket_.fd(), POLLIN | POLLRDHUP, 0};
  if (::poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR)) != 0) {
    mark_peer_gone();
    return true;
  }
  return false;
}

void Link::poll_loop() {
  std::uint64_t next_check = 0;
  for (std::uint32_t turn = 0; !stopping_.load(std::memory_order_acquire); ++turn) {
    const Status s = process_now();
    if (s == Status::kBroken || s == Status::kClosed || !healthy()) break;
    metal::cpu_relax();
    // Look for a hang-up about every 10 ms; read the clock (a vDSO call) only every 1024 turns.
    if (turn % 1024 == 0) {
      const std::uint64_t now = metal::monotonic_ns();
      if (now >= next_check) {
        next_check = now + 10'000'000;
        if (check_hangup()) break;
      }
    }
  }
}

void Link::adaptive_loop(std::chrono::microseconds spin) {
  const auto spin_ns = static_cast<std::uint64_t>(std::chrono::nanoseconds(spin).count());
  std::uint64_t last_work = metal::monotonic_ns();
  std::uint64_t next_check = 0;
  std::uint64_t seen = device_.rx_count();
  auto worked = [&] {
    const std::uint64_t n = device_.rx_count();
    const bool w = n != seen;
    seen = n;
    return w;
  };
  while (!stopping_.load(std::memory_order_acquire)) {
    // While traffic flows, keep the peer's kicks off and poll.
    Status s = process_now(false);
    if (s == Status::kBroken || s == Status::kClosed || !healthy()) break;
    const std::uint64_t now = metal::monotonic_ns();
    if (worked()) last_work = now;
    if (now >= next_check) {
      next_check = now + 10'000'000;
      if (check_hangup()) break;
    }
    if (now - last_work < spin_ns) {
      metal::cpu_relax();
      continue;
    }
    // Quiet for a while: ask for kicks again (this re-checks the rings), then sleep until one comes.
    s = process_now(true);
    if (s == Status::kBroken || s == Status::kClosed) break;
    if (worked()) {
      last_work = metal::monotonic_ns();
      continue;
    }
    pollfd p[3] = {
        {kick_in_->fd(), POLLIN, 0}, {socket_.fd(), POLLIN | POLLRDHUP, 0}, {alarm_->fd(), POLLIN, 0}};
    if (stopping_.load(std::memory_order_acquire)) break;
    if (::poll(p, 3, -1) > 0) {  // close() wakes us through the alarm
      if ((p[0].revents & POLLIN) != 0 && !kick_in_->consume()) {
        fail("the peer made our notification eventfd block (it cleared O_NONBLOCK and took the count)");
      }
      if ((p[1].revents & (POLLHUP | POLLRDHUP | POLLERR)) != 0 && check_hangup()) break;
      if (!healthy()) break;
    }
    last_work = metal::monotonic_ns();
  }
}

SysResult<std::unique_ptr<Link>> Link::create(metal::UnixSocket socket, const LinkConfig& config) {
  auto layout = LinkLayout::compute(config.ring_size, config.buffer_size);
  if (!layout) return sys_fail(layout.error().status, layout.error().message);
  metal::SharedMemory shm;
  if (config.posix_shm_name.empty()) {
    auto m = metal::shm::create_memfd("amp-link", layout->size, 0);
    if (!m) return sys_fail(m.error().status, m.error().message);
    shm = std::move(*m);
  } else {
    if (config.posix_shm_name.size() >= sizeof(Hello::posix_name)) {
      return sys_fail(Status::kInvalidArgument, "POSIX shm name too long: " + config.posix_shm_name);
    }
    auto m = metal::shm::open_posix(config.posix_shm_name, layout->size, metal::OpenMode::kCreateOrOpen, 0);
    if (!m) return sys_fail(m.error().status, m.error().message);
    shm = std::move(*m);
  }
  // Lay out the table before the peer can look at it.
  const std::uint32_t features =
      (1U << kFeatureNs) | (config.event_idx ? 1U << virtio::kFeatureEventIdx : 0U);
  // The buffer size goes through the virtio negotiation too (VIRTIO_RPMSG_F_BUFSZ), as with a firmware
  // that declares its own: the driver side takes it from the config space.
  const BufferSizes sizes{config.buffer_size, config.buffer_size};
  if (auto s = write_table(shm, *layout, config.ring_size, features, &sizes); !s)
    return Unexpected<SysError>(s.error());
  return create_in(std::move(socket), config, std::move(shm), *layout);
}

SysResult<std::unique_ptr<Link>> Link::create_in(metal::UnixSocket socket, const LinkConfig& config,
                                                 metal::SharedMemory memory, const LinkLayout& layout) {
  if (config.posix_shm_name.size() >= sizeof(Hello::posix_name)) {
    return sys_fail(Status::kInvalidArgument, "POSIX shm name too long: " + config.posix_shm_name);
  }
  if (config.posix_shm_name.empty() && memory.fd() < 0) {
    return sys_fail(Status::kInvalidArgument,
                    "the link's shared memory must be a memfd or a named POSIX shm");
  }
  if (layout.size != memory.size() || layout.vdev > 0xFFFF ||
      !inside(layout.table, layout.table_size, layout.size) ||
      !inside(layout.pool, layout.pool_size, layout.size) ||
      layout.device_address != memory.device_address()) {
    return sys_fail(Status::kInvalidArgument, "the link layout does not fit its shared memory");
  }
  std::unique_ptr<Link> link(new Link());
  link->socket_ = std::move(socket);
  link->notify_ = config.notify;
  link->shm_ = std::move(memory);
  if (auto prepared = link->prepare(layout); !prepared)
    return Unexpected<SysError>(std::move(prepared).error());
  std::vector<int> fds;
  if (config.posix_shm_name.empty()) fds.push_back(link->shm_.fd());
  std::optional<metal::EventFd> to_peer;
  std::optional<metal::EventFd> from_peer;
  if (config.notify == NotifyMode::kEventFd || config.notify == NotifyMode::kAdaptive) {
    auto a = metal::EventFd::create();
    auto b = metal::EventFd::create();
    if (!a || !b) return sys_fail(Status::kIoError, "creating eventfds");
    to_peer.emplace(std::move(*a));
    from_peer.emplace(std::move(*b));
    fds.push_back(to_peer->fd());
    fds.push_back(from_peer->fd());
  }
  Hello h{};
  std::memcpy(h.magic, kMagic, 4);
  h.version = kHelloVersion;
  h.creator_role = static_cast<std::uint8_t>(config.role);
  h.notify = static_cast<std::uint8_t>(config.notify);
  h.ring_size = config.ring_size;
  h.buffer_size = config.buffer_size;
  h.shm_size = layout.size;
  std::memcpy(h.posix_name, config.posix_shm_name.data(), config.posix_shm_name.size());
  h.device_address = layout.device_address;
  h.table = layout.table;
  h.table_size = layout.table_size;
  h.vdev = static_cast<std::uint16_t>(layout.vdev);
  h.pool = layout.pool;
  h.pool_size = layout.pool_size;
  if (const Status s = link->socket_.send_all(std::as_bytes(std::span(&h, 1)), fds); !ok(s)) {
    if (s == Status::kClosed) return sys_fail(s, "the peer hung up before joining the link");
    return sys_fail(s, std::string("sending the link hello: ") + amp::to_string(s));
  }
  if (auto joined = await_reply(link->socket_, config.role, config.timeout); !joined) {
    return Unexpected<SysError>(std::move(joined).error());
  }
  link->kick_out_ = std::move(to_peer);
  link->kick_in_ = std::move(from_peer);
  if (auto s = link->start(config, layout); !s) return sys_fail(s.error().status, s.error().message);
  return link;
}

SysResult<std::unique_ptr<Link>> Link::accept(metal::UnixListener& listener, const LinkConfig& config,
                                              std::chrono::milliseconds peer_wait, int interrupt_fd) {
  using Clock = std::chrono::steady_clock;
  const bool forever = peer_wait.count() < 0;
  const Clock::time_point deadline = Clock::now() + (forever ? std::chrono::milliseconds(0) : peer_wait);
  for (;;) {
    int wait_ms = -1;
    if (!forever) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) {
        return sys_fail(Status::kTimeout, "waiting for a peer on " + listener.path() +
                                              ": none connected within " + std::to_string(peer_wait.count()) +
                                              " ms");
      }
      wait_ms = static_cast<int>(std::min<std::int64_t>(left.count(), INT_MAX));
    }
    pollfd p[2] = {{listener.fd(), POLLIN, 0}, {interrupt_fd, POLLIN, 0}};
    const int rc = ::poll(p, interrupt_fd >= 0 ? 2 : 1, wait_ms);
    if (rc < 0 && errno != EINTR) return sys_fail("waiting for a peer on " + listener.path() + ": poll");
    if (interrupt_fd >= 0 && (p[1].revents & POLLIN) != 0)
      return sys_fail(Status::kClosed, "interrupted while waiting for a peer on " + listener.path());
    if (rc <= 0 || (p[0].revents & POLLIN) == 0) continue;
    auto conn = listener.accept(std::chrono::milliseconds(0));
    if (!conn) {
      if (conn.error().status == Status::kTimeout) continue;  // the client gave up before we took it
      return Unexpected<SysError>(std::move(conn).error());
    }
    auto link = create(std::move(*conn), config);
    if (link) return link;
    // A client that left, stayed silent or spoke something else is not a reason to stop serving.
    const Status why = link.error().status;
    if (why != Status::kClosed && why != Status::kTimeout && why != Status::kMalformed) return link;
    AMP_LOG_WARNING("link: a client of %s went away without joining (%s); waiting for the next",
                    listener.path().c_str(), link.error().message.c_str());
  }
}

SysResult<std::unique_ptr<Link>> Link::join(metal::UnixSocket socket, const LinkConfig& config) {
  std::unique_ptr<Link> link(new Link());
  link->socket_ = std::move(socket);
  Hello h{};
  std::vector<metal::UniqueFd> fds;
  // One deadline for the whole hello, however it is chopped up, and no more descriptors than a hello has.
  const Status received =
      link->socket_.receive_exact(std::as_writable_bytes(std::span(&h, 1)), &fds, 3, config.timeout);
  if (received == Status::kTimeout) {
    return sys_fail(Status::kTimeout, "no complete link hello from the peer within " +
                                          std::to_string(config.timeout.count()) +
                                          " ms (it sent none, or stopped half-way)");
  }
  if (received == Status::kMalformed) {
    return sys_fail(Status::kMalformed, "the link hello came with more descriptors than a hello has");
  }
  if (!ok(received)) {
    return sys_fail(received, std::string("receiving the link hello: ") + amp::to_string(received));
  }
  metal::UnixSocket& peer = link->socket_;
  if (std::memcmp(h.magic, kMagic, 4) != 0 || h.version != kHelloVersion) {
    return refuse(peer, config.role, Status::kMalformed,
                  "the peer is not an amp link of this version (bad hello)");
  }
  if (h.notify > static_cast<std::uint8_t>(NotifyMode::kAdaptive) || h.creator_role > 1) {
    return refuse(peer, config.role, Status::kMalformed, "bad link hello (notify mode or role out of range)");
  }
  const auto creator_role = static_cast<Role>(h.creator_role);
  if (creator_role == config.role) {
    return refuse(peer, config.role, Status::kInvalidArgument,
                  std::string("both sides asked for the ") + to_string(config.role) + " role");
  }
  // The peer's layout is untrusted: it must lie inside the memory it describes.
  if (h.shm_size == 0 || h.shm_size > (std::uint64_t{1} << 40) ||
      !inside(h.table, h.table_size, h.shm_size) || !inside(h.pool, h.pool_size, h.shm_size)) {
    return refuse(peer, config.role, Status::kMalformed,
                  "the link hello's layout does not fit its shared memory");
  }
  LinkLayout layout;
  layout.size = static_cast<std::size_t>(h.shm_size);
  layout.table = static_cast<std::size_t>(h.table);
  layout.table_size = static_cast<std::size_t>(h.table_size);
  layout.vdev = h.vdev;  // find_vdev refuses one the table does not have
  layout.pool = static_cast<std::size_t>(h.pool);
  layout.pool_size = static_cast<std::size_t>(h.pool_size);
  layout.device_address = h.device_address;
  link->notify_ = static_cast<NotifyMode>(h.notify);
  h.posix_name[sizeof h.posix_name - 1] = '\0';
  const std::string posix_name(h.posix_name);
  const bool eventfds = link->notify_ == NotifyMode::kEventFd || link->notify_ == NotifyMode::kAdaptive;
  const std::size_t want_fds = (posix_name.empty() ? 1U : 0U) + (eventfds ? 2U : 0U);
  if (fds.size() != want_fds)
    return refuse(peer, config.role, Status::kMalformed, "the link hello carried the wrong descriptors");
  std::size_t next = 0;
  if (posix_name.empty()) {
    // A memfd the peer could still shrink would make our accesses fault (SIGBUS): it must be sealed.
    const int seals = ::fcntl(fds[next].get(), F_GET_SEALS);
    if (seals < 0 || (seals & F_SEAL_SHRINK) == 0) {
      return refuse(peer, config.role, Status::kMalformed,
                    "the peer's shared memory is not a memfd sealed against shrinking");
    }
    auto shm = metal::shm::map_fd(std::move(fds[next++]), layout.size, layout.device_address);
    if (!shm) return refuse(peer, config.role, shm.error().status, shm.error().message);
    link->shm_ = std::move(*shm);
  } else {
    auto shm = metal::shm::open_posix(posix_name, layout.size, metal::OpenMode::kOpen, layout.device_address);
    if (!shm) return refuse(peer, config.role, shm.error().status, shm.error().message);
    link->shm_ = std::move(*shm);
  }
  if (eventfds) {
    // The creator's "to peer" is our "in".
    auto in = metal::EventFd::adopt(std::move(fds[next++]));
    auto out = metal::EventFd::adopt(std::move(fds[next++]));
    if (!in || !out)
      return refuse(peer, config.role, Status::kMalformed, "the link hello's eventfds are not eventfds");
    link->kick_in_.emplace(std::move(*in));
    link->kick_out_.emplace(std::move(*out));
  }
  // Everything that could still make us fail is checked before we say we joined.
  if (auto prepared = link->prepare(layout); !prepared)
    return refuse(peer, config.role, prepared.error().status, prepared.error().message);
  if (const Status s = send_reply(peer, config.role, Status::kOk, ""); !ok(s)) {
    return sys_fail(s, s == Status::kClosed ? std::string("the peer hung up before we joined the link")
                                            : std::string("answering the link hello: ") + amp::to_string(s));
  }
  LinkConfig effective = config;
  effective.ring_size = h.ring_size;
  effective.buffer_size = h.buffer_size;
  if (auto s = link->start(effective, layout); !s) return sys_fail(s.error().status, s.error().message);
  return link;
}

namespace {

/// An advisory lock on byte `index` of the OpenAMP shm object, held as long as the object stays open
/// (an OFD lock: it belongs to our open file, not to the process, so two links in one process conflict too).
SysResult<void> lock_openamp_index(const metal::SharedMemory& shm, unsigned index,
                                   const std::string& shm_name, const std::string& socket_path) {
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = index;
  fl.l_len = 1;
  if (::fcntl(shm.fd(), F_OFD_SETLK, &fl) == 0) return {};
  if (errno == EAGAIN || errno == EACCES) {
    return sys_fail(Status::kBusy, "OpenAMP process " + std::to_string(index) + " of POSIX shm '" + shm_name +
                                       "' (socket " + socket_path +
                                       ") is in use by another process; give this pair other names "
                                       "(the socket path and the shm name)");
  }
  return sys_fail("locking POSIX shm '" + shm_name + "' for OpenAMP process " + std::to_string(index));
}

}  // namespace

SysResult<std::unique_ptr<Link>> Link::openamp_linux(unsigned index, Role role,
                                                     std::chrono::milliseconds timeout,
                                                     const std::string& socket_path,
                                                     const std::string& shm_name) {
  OpenAmpLinuxConfig c;
  c.index = index;
  c.role = role;
  c.timeout = timeout;
  c.peer_wait = timeout;
  c.socket_path = socket_path;
  c.shm_name = shm_name;
  return openamp_linux(c);
}

SysResult<std::unique_ptr<Link>> Link::openamp_linux(const OpenAmpLinuxConfig& oc) {
  if (oc.index > 1)
    return sys_fail(Status::kInvalidArgument, "the OpenAMP process index is 0 (server) or 1 (client)");
  const LinkLayout layout = LinkLayout::openamp();
  std::unique_ptr<Link> link(new Link());
  link->notify_ = NotifyMode::kSocket;
  LinkConfig config;
  config.role = oc.role;
  config.notify = NotifyMode::kSocket;
  config.ring_size = 256;
  config.buffer_size = kDefaultBufferSize;
  config.event_idx = false;  // OpenAMP offers only the name service
  config.timeout = oc.timeout;
  const auto timeout_ns = static_cast<std::uint64_t>(std::chrono::nanoseconds(oc.timeout).count());
  if (oc.index == 0) {
    auto shm = metal::shm::open_posix(oc.shm_name, layout.size, metal::OpenMode::kCreateOrOpen, 0);
    if (!shm) return sys_fail(shm.error().status, shm.error().message);
    // Before touching anything: another process 0 of this shm may be running.
    if (auto locked = lock_openamp_index(*shm, 0, oc.shm_name, oc.socket_path); !locked)
      return Unexpected<SysError>(std::move(locked).error());
    auto listener = metal::UnixListener::listen(oc.socket_path);
    if (!listener) {
      if (listener.error().status == Status::kAlreadyExists) {
        return sys_fail(Status::kBusy, "the OpenAMP socket " + oc.socket_path +
                                           " is in use by another process: " + listener.error().message);
      }
      return sys_fail(listener.error().status, listener.error().message);
    }
    link->shm_ = std::move(*shm);
    // The server writes the table, like OpenAMP's: one rpmsg vdev offering only the name service.
    if (const Status st = link->shm_.region().fill(0, std::byte{0}, layout.size); !ok(st)) {
      return sys_fail(st, "clearing the shared memory");
    }
    if (auto s = write_table(link->shm_, layout, 256, 1U << kFeatureNs); !s)
      return Unexpected<SysError>(s.error());
    auto conn = listener->accept(oc.peer_wait);
    if (!conn)
      return sys_fail(conn.error().status,
                      "waiting for OpenAMP process 1 on " + oc.socket_path + ": " + conn.error().message);
    link->socket_ = std::move(*conn);
  } else {
    auto conn = metal::UnixSocket::connect(oc.socket_path, oc.peer_wait);
    if (!conn) return sys_fail(conn.error().status, conn.error().message);
    link->socket_ = std::move(*conn);
    // The server may still be writing the table: wait for a valid one.
    const std::uint64_t deadline = metal::deadline_after(timeout_ns);
    for (;;) {
      auto shm = metal::shm::open_posix(oc.shm_name, layout.size, metal::OpenMode::kOpen, 0);
      if (shm) {
        if (auto locked = lock_openamp_index(*shm, 1, oc.shm_name, oc.socket_path); !locked)
          return Unexpected<SysError>(std::move(locked).error());
        auto table = shm->region().subregion(layout.table, layout.vring0);
        if (table && virtio::find_vdev(*table)) {
          link->shm_ = std::move(*shm);
          break;
        }
      }
      if (metal::monotonic_ns() >= deadline) {
        return sys_fail(Status::kTimeout,
                        "no valid resource table in POSIX shm '" + oc.shm_name + "' within the timeout");
      }
      metal::sleep_ns(5'000'000);
    }
  }
  if (auto p = link->prepare(layout); !p) return Unexpected<SysError>(std::move(p).error());
  if (auto s = link->start(config, layout); !s) return sys_fail(s.error().status, s.error().message);
  return link;
}

}  // namespace amp::rpmsg
