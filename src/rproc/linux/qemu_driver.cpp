// SPDX-License-Identifier: BSD-3-Clause
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <thread>
#include <utility>

#include "amp/metal/log.hpp"
#include "amp/rproc/linux/qemu.hpp"
#include "amp/rproc/linux/qemu_process.hpp"

namespace amp::rproc {

using metal::hex;
using metal::sys_fail;
using metal::SysResult;

namespace {

// The amp doorbell entry's body words (baremetal_table.hpp).
enum DoorbellWord : unsigned { kModeWord = 0, kStateWord = 1, kPingWord = 2, kPongWord = 3 };

/// Where `word` of the image's doorbell entry is in guest RAM (from RAM's start), if the image has it.
std::optional<std::size_t> doorbell_word(const QemuFirmware& fw, metal::DeviceAddress ram_base,
                                         DoorbellWord word) {
  if (!fw.doorbell_mode_offset || (word >= kPingWord && !fw.watchdog)) return std::nullopt;
  return static_cast<std::size_t>(fw.table_da - ram_base) + *fw.doorbell_mode_offset + 4 * std::size_t{word};
}

}  // namespace

struct QemuDriver::Image {
  QemuFirmware fw;
};

struct QemuDriver::Watch {
  metal::SourceId source{};
  metal::UniqueFd pidfd;  // a copy of QEMU's, so that the watch outlives the QemuProcess
};

QemuDriver::QemuDriver(QemuConfig config) : config_(std::move(config)) {
  auto loop = metal::EventLoop::create();
  if (!loop) {
    error_ = "qemu driver: " + loop.error().message;
    return;
  }
  loop_ = std::move(*loop);
  if (!ok(loop_->start_thread())) {
    error_ = "qemu driver: cannot start its thread";
    loop_.reset();
  }
}

QemuDriver::~QemuDriver() {
  shutdown();
}

void QemuDriver::shutdown() {
  {
    std::lock_guard lock(mutex_);
    if (shutting_down_) return;
    shutting_down_ = true;  // exit reports stop here
  }
  if (loop_) {
    loop_->stop();
    loop_->join();  // a report in progress (a recovery, even) finishes first
  }
  std::lock_guard op(op_mutex_);
  stop_op();
  std::unique_ptr<QemuProcess> gone;
  {
    std::lock_guard lock(mutex_);
    gone = std::move(qemu_);
  }
}

void QemuDriver::on_link_up(DeviceFn fn) {
  std::lock_guard lock(mutex_);
  link_up_ = std::move(fn);
}

void QemuDriver::on_link_down(DeviceFn fn) {
  std::lock_guard lock(mutex_);
  link_down_ = std::move(fn);
}

void QemuDriver::on_exit(ExitFn fn) {
  std::lock_guard lock(mutex_);
  exit_ = std::move(fn);
}

rpmsg::Device* QemuDriver::device() const {
  std::lock_guard lock(mutex_);
  return vdev_ ? &vdev_->device() : nullptr;
}

pid_t QemuDriver::pid() const {
  std::lock_guard lock(mutex_);
  return qemu_ && !qemu_->ended() ? qemu_->pid() : -1;
}

std::string QemuDriver::error() const {
  std::lock_guard lock(mutex_);
  return error_;
}

std::string QemuDriver::last_end() const {
  std::lock_guard lock(mutex_);
  return last_how_;
}

std::string QemuDriver::trace() const {
  std::lock_guard lock(mutex_);
  if (!qemu_ || !image_ || !image_->fw.trace) return {};
  const std::array<metal::IoRegion, 1> ram{qemu_->ram()};
  // The length is the image's: only a buffer that lies in guest RAM is read (and sized for).
  if (!ram[0].offset_of(image_->fw.trace->da, image_->fw.trace->len)) return {};
  std::vector<char> text(image_->fw.trace->len);
  auto n = read_trace(ram, *image_->fw.trace, text);
  if (!n) return {};
  return image_->fw.log_dictionary.render_text(std::string_view(text.data(), *n));
}

std::string QemuDriver::console() const {
  std::lock_guard lock(mutex_);
  if (!qemu_) return {};
  return image_ ? image_->fw.log_dictionary.render_text(qemu_->console()) : qemu_->console();
}

std::string QemuDriver::qemu_output() const {
  std::lock_guard lock(mutex_);
  return qemu_ ? qemu_->output() : std::string();
}

std::optional<RpmsgPlan> QemuDriver::plan() const {
  std::lock_guard lock(mutex_);
  return plan_;
}

metal::IoRegion QemuDriver::memory() const {
  std::lock_guard lock(mutex_);
  return qemu_ ? qemu_->ram() : metal::IoRegion();
}

SysResult<std::string> QemuDriver::machine_status() {
  std::lock_guard op(op_mutex_);
  if (!qemu_ || qemu_->ended()) return sys_fail(Status::kNotFound, "no QEMU runs");
  return qemu_->qmp().status(config_.qemu_timeout);
}

Status QemuDriver::fail(Status s, std::string message) {
  AMP_LOG_DEBUG("rproc qemu: %s", message.c_str());  // the caller reports it
  set_error(std::move(message));
  return s;
}

void QemuDriver::set_error(std::string message) {
  std::lock_guard lock(mutex_);
  error_ = std::move(message);
}

Status QemuDriver::load(std::span<const std::byte> firmware) noexcept {
  std::lock_guard op(op_mutex_);
  if (!loop_) return fail(Status::kInternal, "qemu driver: no event loop");
  // The image first: a firmware this board cannot run starts nothing.
  auto fw = check_qemu_firmware(config_.board, firmware, config_.poll);
  if (!fw) return fail(fw.error().status, fw.error().message);
  stop_op();  // a QEMU of an earlier load (a reload without a start)
  hung_.clear();

  QemuLaunch launch;
  launch.binary = config_.binary.empty() ? config_.board.binary : config_.binary;
  launch.package = config_.board.package;
  launch.machine = config_.board.machine;
  launch.cpu = config_.board.cpu;
  launch.ram_base = config_.board.ram_base;
  launch.ram_size = config_.board.ram_size;
  launch.entry = fw->entry;
  launch.extra_args = config_.extra_args;
  launch.ram_dir = config_.ram_dir;
  launch.runtime_dir = config_.runtime_dir;
  launch.timeout = config_.qemu_timeout;
  auto qemu = QemuProcess::launch(launch);
  if (!qemu) return fail(qemu.error().status, qemu.error().message);

  // The image into the paused machine's RAM, then the doorbell mode into its table.
  const std::array<metal::IoRegion, 1> ram{(*qemu)->ram()};
  auto image = ElfImage::parse(firmware);
  if (!image) return fail(Status::kInternal, "firmware: parsed once, not twice");
  if (auto loaded = rproc::load(*image, ram, {.machine = config_.board.elf_machine}); !loaded)
    return fail(to_status(loaded.error()), std::string("firmware: loading it: ") + to_string(loaded.error()));
  if (const auto at = doorbell_word(*fw, config_.board.ram_base, kModeWord)) {
    const std::uint32_t mode = config_.poll ? kDoorbellModePoll : kDoorbellModeInterrupt;
    if (!ok(ram[0].store<std::uint32_t>(*at, mode, std::memory_order_release)))
      return fail(Status::kInternal, "writing the doorbell mode");
  }

  // Watch for its end, from now on: a QEMU that dies while loaded is noticed too.
  auto watch = std::make_unique<Watch>();
  watch->pidfd = metal::UniqueFd(::fcntl((*qemu)->pidfd(), F_DUPFD_CLOEXEC, 0));
  if (!watch->pidfd) return fail(Status::kIoError, std::string("dup: ") + std::strerror(errno));
  const std::uint64_t gen = ++generation_;
  auto source = loop_->add_fd(watch->pidfd.get(), EPOLLIN, [this, gen](std::uint32_t) { on_qemu_exit(gen); });
  if (!source) return fail(source.error().status, source.error().message);
  watch->source = *source;
  watches_[gen] = std::move(watch);
  kick_.set_fd((*qemu)->doorbell());
  auto new_image = std::make_unique<Image>();
  new_image->fw = std::move(*fw);
  std::unique_ptr<QemuProcess> old;
  {
    std::lock_guard lock(mutex_);
    old = std::move(qemu_);
    qemu_ = std::move(*qemu);
    image_ = std::move(new_image);
    plan_.reset();
    error_.clear();
  }
  started_ = false;
  set_doorbell_drain(true);  // until a vdev host reads it
  AMP_LOG_INFO("rproc qemu: loaded into QEMU (pid %d), entry %s, paused", static_cast<int>(qemu_->pid()),
               hex(image_->fw.entry).c_str());
  return Status::kOk;
}

Status QemuDriver::start() noexcept {
  std::lock_guard op(op_mutex_);
  if (!qemu_ || !image_) return fail(Status::kNotFound, "no firmware loaded");
  if (qemu_->ended()) return fail(Status::kClosed, "QEMU ended before the start: it " + qemu_->how());
  if (started_) return fail(Status::kBusy, "the firmware runs already");
  if (auto r = qemu_->qmp().execute("cont", config_.qemu_timeout); !r) {
    // A firmware that ends at once (a fault at boot) can end QEMU before its answer: then it did run, and
    // its end is a crash that the watch reports right after this start.
    pollfd p{qemu_->pidfd(), POLLIN, 0};
    if (r.error().status == Status::kClosed && ::poll(&p, 1, 1000) > 0) {
      AMP_LOG_INFO("rproc qemu: QEMU ended as its CPU started");
      started_ = true;
      set_error({});
      return Status::kOk;
    }
    std::string why = r.error().message;
    stop_op();
    return fail(r.error().status, "starting the CPU: " + why);
  }
  started_ = true;
  if (const Status st = open_vdev(); !ok(st)) {
    std::string why = error();
    stop_op();
    return fail(st, why);
  }
  start_watchdog();
  set_error({});
  return Status::kOk;
}

void QemuDriver::start_watchdog() {
  stop_watchdog();
  if (config_.watchdog.count() <= 0) return;
  const auto at = doorbell_word(image_->fw, config_.board.ram_base, kPingWord);
  if (!at) {
    AMP_LOG_INFO("rproc qemu: the firmware's doorbell entry has no watchdog words: no watchdog");
    return;
  }
  Watchdog w;
  w.ping = 1;
  w.answered = std::chrono::steady_clock::now();
  (void)qemu_->ram().store<std::uint32_t>(*at, w.ping, std::memory_order_release);
  const auto period = std::max<std::chrono::nanoseconds>(config_.watchdog / 4, std::chrono::milliseconds(5));
  // Its QEMU's: every way a QEMU ends or is replaced removes the timer first (stop_watchdog).
  auto timer = loop_->add_timer(period, period, [this](std::uint64_t) { on_watchdog_tick(); });
  if (!timer) {
    AMP_LOG_WARNING("rproc qemu: no watchdog: %s", timer.error().message.c_str());
    return;
  }
  w.timer = *timer;
  watchdog_ = w;
}

void QemuDriver::stop_watchdog() {
  if (!watchdog_) return;
  (void)loop_->remove(watchdog_->timer);  // from its own handler too: returns at once
  watchdog_.reset();
}

void QemuDriver::on_watchdog_tick() {
  // An operation holds the lock for a bounded time (and may end this QEMU): look again at the next tick.
  std::unique_lock op(op_mutex_, std::try_to_lock);
  if (!op.owns_lock() || !watchdog_ || !qemu_ || qemu_->ended() || !started_) return;
  const auto at = doorbell_word(image_->fw, config_.board.ram_base, kPingWord);
  const auto pong_at = doorbell_word(image_->fw, config_.board.ram_base, kPongWord);
  if (!at || !pong_at) return;
  const metal::IoRegion ram = qemu_->ram();
  const auto now = std::chrono::steady_clock::now();
  const auto pong = ram.load<std::uint32_t>(*pong_at, std::memory_order_acquire);
  if (pong && *pong == watchdog_->ping) {
    watchdog_->answered = now;
    ++watchdog_->ping;
    (void)ram.store<std::uint32_t>(*at, watchdog_->ping, std::memory_order_release);
  } else if (now - watchdog_->answered >= config_.watchdog) {
    using std::chrono::duration_cast;
    using std::chrono::milliseconds;
    const auto silent = duration_cast<milliseconds>(now - watchdog_->answered).count();
    std::string why = "the firmware stopped answering its watchdog: no answer to ping " +
                      std::to_string(watchdog_->ping) + " for " + std::to_string(silent) + " ms (pong " +
                      (pong ? std::to_string(*pong) : std::string("unreadable")) + "); QEMU killed";
    AMP_LOG_WARNING("rproc qemu: %s", why.c_str());
    hung_ = std::move(why);  // op_mutex_ guards it
    stop_watchdog();
    qemu_->kill();  // its pidfd's watch reports the end as a crash
    return;
  }
  // Again while unanswered: a ping the firmware read before the table was put back (attach) is answered
  // with the old number, and only a doorbell makes a firmware in WFI look again.
  if (!config_.poll) (void)kick_.notify(0);
}

Status QemuDriver::open_vdev() {
  const QemuFirmware& fw = image_->fw;
  const metal::IoRegion ram = qemu_->ram();
  // The table as the image has it: vrings at ANY, no status, for the host to fill in again.
  const std::size_t table_at = static_cast<std::size_t>(fw.table_da - config_.board.ram_base);
  if (!ok(ram.write(table_at, fw.table))) return fail(Status::kInternal, "restoring the resource table");
  if (const auto at = doorbell_word(fw, config_.board.ram_base, kModeWord)) {
    const std::uint32_t mode = config_.poll ? kDoorbellModePoll : kDoorbellModeInterrupt;
    (void)ram.store<std::uint32_t>(*at, mode, std::memory_order_release);
  }
  if (const auto at = doorbell_word(fw, config_.board.ram_base, kPingWord); at && watchdog_) {
    // The watchdog's ping as it was, not the image's 0 (an attach puts the table back under it).
    (void)ram.store<std::uint32_t>(*at, watchdog_->ping, std::memory_order_release);
  }
  VdevHostConfig vc;
  vc.memory = {ram};
  vc.table_da = fw.table_da;
  vc.table_size = fw.table.size();
  vc.pool_da = fw.pool_da;
  vc.pool_size = fw.pool_size;
  vc.buffer_size = config_.buffer_size;
  vc.event_idx = config_.event_idx;
  vc.timeout = config_.timeout;
  if (!config_.poll) {
    vc.kick = &kick_;
    vc.irq_fd = qemu_->doorbell();
    vc.irq_source = IrqSource::kSocket;
  }
  set_doorbell_drain(false);  // the vdev host reads it from here on
  auto host = VdevHost::start(std::move(vc));
  if (!host) {
    set_doorbell_drain(true);
    return fail(host.error().status, "rpmsg: " + host.error().message);
  }
  DeviceFn up;
  {
    std::lock_guard lock(mutex_);
    vdev_ = std::move(*host);
    plan_ = vdev_->plan();
    up = link_up_;
  }
  if (up) up(vdev_->device());               // without mutex_: it may call the getters
  if (!config_.poll) (void)kick_.notify(0);  // the firmware waits for DRIVER_OK in WFI: wake it
  return Status::kOk;
}

void QemuDriver::wait_until_idle() {
  // Until the firmware says it let go of the old vrings, it may still be working on them: a message it was
  // handling then could reach the new ones. A firmware that never says so is noticed anyway (putting the
  // table back resets its state), so the wait is bounded.
  const auto at = doorbell_word(image_->fw, config_.board.ram_base, kStateWord);
  if (!at) return;
  const metal::IoRegion ram = qemu_->ram();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  for (;;) {
    const auto state = ram.load<std::uint32_t>(*at, std::memory_order_acquire);
    if (!state || *state == kDoorbellStateIdle) return;
    pollfd ended{qemu_->pidfd(), POLLIN, 0};
    if (std::chrono::steady_clock::now() >= deadline || ::poll(&ended, 1, 0) > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  AMP_LOG_WARNING("rproc qemu: the firmware did not let go of its vrings within 2 s; attaching anyway");
}

void QemuDriver::take_down_vdev() {
  std::unique_ptr<VdevHost> host;
  DeviceFn down;
  {
    std::lock_guard lock(mutex_);  // briefly: the getters must never wait for what follows
    if (!vdev_) return;
    host = std::move(vdev_);
    down = link_down_;
  }
  host->close();  // endpoints get their unbind, sends fail with kClosed; the vdev is reset (status 0)
  if (down) down(host->device());
}

void QemuDriver::set_doorbell_drain(bool on) {
  if (!on) {
    if (drain_) (void)loop_->remove(*drain_);
    drain_.reset();
    return;
  }
  if (drain_ || !qemu_ || qemu_->ended()) return;
  // Whenever no vdev host reads the doorbell (loaded, starting, detached, stopping), the guest's bytes must
  // still go: QEMU's UART waits for room in the socket with its big lock held, and then not even QMP (cont,
  // quit) answers.
  const int fd = qemu_->doorbell();
  // The handler may run before add_fd returns: it finds its id through an atomic.
  auto id = std::make_shared<std::atomic<std::uint64_t>>(0);
  auto source = loop_->add_fd(fd, EPOLLIN, [this, fd, id](std::uint32_t) {
    if (drain_doorbell(fd).closed) (void)loop_->disable(metal::SourceId{id->load()});
  });
  if (!source) {
    AMP_LOG_WARNING("rproc qemu: cannot drain the doorbell while detached: %s",
                    source.error().message.c_str());
    return;
  }
  id->store(static_cast<std::uint64_t>(*source));
  drain_ = *source;
}

Status QemuDriver::detach() noexcept {
  std::lock_guard op(op_mutex_);
  if (!vdev_) return fail(Status::kBusy, "detach: no running firmware with rpmsg up to detach from");
  take_down_vdev();
  if (!config_.poll) (void)kick_.notify(0);  // so that the firmware sees the reset
  set_doorbell_drain(true);
  AMP_LOG_INFO("rproc qemu: detached from QEMU (pid %d)", static_cast<int>(qemu_->pid()));
  set_error({});
  return Status::kOk;
}

Status QemuDriver::attach() noexcept {
  std::lock_guard op(op_mutex_);
  if (!qemu_ || qemu_->ended() || !started_) {
    return fail(Status::kNotFound,
                "attach: no QEMU of ours runs (the qemu driver attaches to a firmware it detached from)");
  }
  if (vdev_) return fail(Status::kBusy, "attach: attached already");
  set_doorbell_drain(false);
  wait_until_idle();
  if (const Status st = open_vdev(); !ok(st)) {
    set_error("attach: " + error());
    set_doorbell_drain(true);
    return st;
  }
  AMP_LOG_INFO("rproc qemu: attached to QEMU (pid %d)", static_cast<int>(qemu_->pid()));
  set_error({});
  return Status::kOk;
}

void QemuDriver::stop_op() {
  stop_watchdog();
  take_down_vdev();
  started_ = false;
  if (!qemu_ || qemu_->ended()) {
    set_doorbell_drain(false);
    return;
  }
  set_doorbell_drain(true);  // for QMP quit to be heard
  const std::string how = qemu_->stop(config_.stop_timeout);
  set_doorbell_drain(false);
  std::lock_guard lock(mutex_);
  last_how_ = how;
}

Status QemuDriver::stop() noexcept {
  std::lock_guard op(op_mutex_);
  stop_op();
  return Status::kOk;
}

std::string QemuDriver::describe_end() {
  std::string how = "QEMU " + qemu_->how();
  const int status = qemu_->wait_status();
  const std::string said = qemu_->output_since_ready(1024);  // not its start-up's warnings
  std::string last;                                          // QEMU's last line, if it said anything
  if (const auto end = said.find_last_not_of("\r\n "); end != std::string::npos) {
    const auto begin = said.find_last_of('\n', end);
    last = said.substr(begin == std::string::npos ? 0 : begin + 1,
                       end - (begin == std::string::npos ? 0 : begin + 1) + 1);
  }
  if (!last.empty()) {
    how += ": " + last;
  } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
    how += " (the firmware ended it through semihosting: a guest fault)";
  }
  return how;
}

void QemuDriver::on_qemu_exit(std::uint64_t generation) {
  ExitFn report;
  std::string how;
  {
    std::lock_guard op(op_mutex_);
    auto it = watches_.find(generation);
    if (it == watches_.end()) return;
    (void)loop_->remove(it->second->source);  // from its own handler: returns at once
    const bool current = qemu_ && generation == generation_ && !qemu_->ended();
    watches_.erase(it);
    if (!current) return;  // stopped already, or an earlier QEMU
    // QEMU ended while nobody asked it to (or the watchdog killed it): a crash.
    stop_watchdog();
    take_down_vdev();
    set_doorbell_drain(false);
    started_ = false;
    (void)qemu_->reap();
    how = hung_.empty() ? describe_end() : std::exchange(hung_, {});
    std::lock_guard lock(mutex_);
    last_how_ = qemu_->how();
    if (shutting_down_) return;
    report = exit_;
  }
  AMP_LOG_WARNING("rproc qemu: %s unexpectedly", how.c_str());
  if (report) report(how);
}

// --- QemuRemote ---

QemuRemote::QemuRemote(QemuConfig config) : driver_(std::move(config)) {
  lifecycle_.set_listener([this](const Transition& t) {
    {
      std::lock_guard lock(mutex_);
      state_ = t.to;
    }
    changed_.notify_all();
    if (transition_) transition_(t);
  });
  driver_.on_exit([this](const std::string& how) {
    std::string before;
    {
      std::lock_guard lock(mutex_);
      before = std::exchange(last_exit_, how);  // for the transition callback to read
    }
    const Status s = lifecycle_.report_crash(Status::kClosed);
    if (s == Status::kBusy) {  // not running: a stop got there first, or it was only loaded
      std::lock_guard lock(mutex_);
      last_exit_ = before;
      return;
    }
    if (!ok(s) && down_) down_(how);
  });
}

QemuRemote::~QemuRemote() {
  driver_.shutdown();  // no more reports into lifecycle_, which goes first
}

void QemuRemote::on_transition(std::function<void(const Transition&)> fn) {
  transition_ = std::move(fn);
}

SysResult<void> QemuRemote::result(Status s) const {
  if (ok(s)) return {};
  std::string why = driver_.error();
  if (why.empty() || s == Status::kBusy)
    why = std::string(amp::to_string(s)) + " (the remote is " + to_string(lifecycle_.state()) + ")";
  return sys_fail(s, why);
}

SysResult<void> QemuRemote::load(std::vector<std::byte> firmware) {
  // The Lifecycle keeps a view of the bytes for recovery: the old ones stay until the new ones loaded.
  auto fresh = std::make_unique<std::vector<std::byte>>(std::move(firmware));
  if (const Status s = lifecycle_.load(*fresh); !ok(s)) return result(s);
  firmware_ = std::move(fresh);
  return {};
}

SysResult<void> QemuRemote::start(std::vector<std::byte> firmware) {
  if (auto r = load(std::move(firmware)); !r) return r;
  return result(lifecycle_.start());
}

SysResult<void> QemuRemote::stop() {
  const State s = lifecycle_.state();
  if (s != State::kRunning && s != State::kAttached && s != State::kDetached) return {};
  return result(lifecycle_.stop());
}

State QemuRemote::state() const {
  std::lock_guard lock(mutex_);
  return state_;
}

bool QemuRemote::wait_for(State s, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return state_ == s; });
}

std::string QemuRemote::last_exit() const {
  std::lock_guard lock(mutex_);
  return last_exit_;
}

}  // namespace amp::rproc
