// SPDX-License-Identifier: BSD-3-Clause
#include "amp/rproc/linux/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include "amp/metal/linux/shared_memory.hpp"
#include "amp/metal/log.hpp"
#include "amp/rpmsg/wire.hpp"
#include "amp/rproc/elf.hpp"
#include "amp/rproc/linux/vdev_host.hpp"
#include "amp/rproc/resource_table.hpp"
#include "amp/virtio/rsc_vdev.hpp"

extern char** environ;

namespace amp::rproc {

using metal::sys_fail;
using metal::SysResult;

namespace {

#if defined(__x86_64__)
constexpr std::uint16_t kHostMachine = elf::kMachineX86_64;
#elif defined(__aarch64__)
constexpr std::uint16_t kHostMachine = elf::kMachineAarch64;
#elif defined(__arm__)
constexpr std::uint16_t kHostMachine = elf::kMachineArm;
#elif defined(__riscv)
constexpr std::uint16_t kHostMachine = elf::kMachineRiscv;
#else
constexpr std::uint16_t kHostMachine = elf::kMachineNone;  // not checked
#endif

constexpr std::size_t kPage = 0x1000;
/// MFD_EXEC (Linux 6.3), spelled out for older headers; older kernels refuse it with EINVAL.
constexpr unsigned kMfdExec = 0x0010U;
/// The descriptor number the program finds its socket at.
constexpr int kChildLinkFd = 3;

std::size_t align_up(std::size_t v, std::size_t a) {
  return (v + a - 1) & ~(a - 1);
}

int pidfd_open(pid_t pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

/// How a wait status reads to people.
std::string describe(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = ::strsignal(sig);
    return "killed by signal " + std::to_string(sig) +
           (name != nullptr ? std::string(" (") + name + ")" : "");
  }
  return "ended (status " + std::to_string(status) + ")";
}

/// The program's file name: the last component of ProcessConfig::name (a path or a file name).
std::string file_name_of(const std::string& name) {
  constexpr std::size_t kMaxFileName = 255;  // NAME_MAX
  std::string base = name.substr(name.find_last_of('/') + 1);
  if (base.empty() || base == "." || base == "..") base = "remote";
  if (base.size() > kMaxFileName) base.resize(kMaxFileName);
  return base;
}

/// What the program is executed by. The kernel names a program (its comm: what ps and top show) after the
/// last component of the path it was executed by: run as /proc/self/fd/N it would be "N", and by
/// execveat(AT_EMPTY_PATH) on the memfd "memfd:...". So it is executed by a symbolic link named after the
/// firmware, to /proc/self/fd/N (which the child resolves to its own copy of the descriptor), in a private
/// directory that lives only while the program starts. Where none can be made, /proc/self/fd/N it is.
class ExecPath {
 public:
  ExecPath(int fd, const std::string& file_name) : fd_path_("/proc/self/fd/" + std::to_string(fd)) {
    std::error_code ec;
    const std::filesystem::path tmp = std::filesystem::temp_directory_path(ec);  // $TMPDIR or /tmp
    if (ec) return;
    std::string dir = (tmp / "amp-rproc-XXXXXX").string();
    if (::mkdtemp(dir.data()) == nullptr) return;  // mode 0700: nobody else can change what it holds
    dir_ = dir;
    std::string link = dir + "/" + file_name;
    if (::symlink(fd_path_.c_str(), link.c_str()) == 0) link_ = std::move(link);
  }
  ~ExecPath() {
    if (!link_.empty()) ::unlink(link_.c_str());
    if (!dir_.empty()) ::rmdir(dir_.c_str());
  }
  ExecPath(const ExecPath&) = delete;
  ExecPath& operator=(const ExecPath&) = delete;
  const std::string& path() const { return link_.empty() ? fd_path_ : link_; }

 private:
  std::string fd_path_;
  std::string dir_;
  std::string link_;
};

/// Finds the first rpmsg vdev, and counts vdevs.
/// The vdev plan_rpmsg() takes: the first rpmsg vdev with two vrings, counted as virtio::find_vdev counts.
struct RpmsgFinder final : ResourceVisitor {
  Status on_vdev(std::uint32_t, const Vdev& v, metal::IoRegion) noexcept override {
    if (!found && v.id == rpmsg::kVirtioIdRpmsg && v.num_vrings >= 2) {
      found = true;
      ordinal = seen;
    }
    ++seen;
    return Status::kOk;
  }
  bool found = false;
  std::uint32_t ordinal = 0;
  std::uint32_t seen = 0;
};

}  // namespace

struct ProcessDriver::Child {
  pid_t pid = -1;
  std::uint64_t generation = 0;
  int pidfd = -1;  // owned by the watch in watches_
  /// Each link session's socket goes to the program over this one (join_host() waits on it); closing it
  /// tells the program that the host is gone.
  metal::UnixSocket control{metal::UniqueFd()};
  metal::UniqueFd memory;  // the remote's memory (a memfd), kept for attach after detach
  rpmsg::LinkLayout layout;
  std::unique_ptr<rpmsg::Link> link;
  bool reaped = false;
  std::string how;  // once reaped
};

struct ProcessDriver::Watch {
  metal::SourceId source{};
  metal::UniqueFd pidfd;
};

ProcessDriver::ProcessDriver(ProcessConfig config) : config_(std::move(config)) {
  auto loop = metal::EventLoop::create();
  if (!loop) {
    error_ = "process driver: " + loop.error().message;
    return;
  }
  loop_ = std::move(*loop);
  if (!ok(loop_->start_thread())) {
    error_ = "process driver: cannot start its thread";
    loop_.reset();
  }
}

ProcessDriver::~ProcessDriver() {
  shutdown();
}

void ProcessDriver::shutdown() {
  {
    std::unique_lock lock(mutex_);
    if (shutting_down_) return;
    shutting_down_ = true;  // exit reports stop here
  }
  if (loop_) {
    loop_->stop();
    loop_->join();  // a report in progress (a recovery, even) finishes first
  }
  std::lock_guard op(op_mutex_);
  stop_op();
}

void ProcessDriver::on_link_up(LinkFn fn) {
  std::lock_guard lock(mutex_);
  link_up_ = std::move(fn);
}

void ProcessDriver::on_link_down(LinkFn fn) {
  std::lock_guard lock(mutex_);
  link_down_ = std::move(fn);
}

void ProcessDriver::on_exit(ExitFn fn) {
  std::lock_guard lock(mutex_);
  exit_ = std::move(fn);
}

rpmsg::Link* ProcessDriver::link() const {
  std::lock_guard lock(mutex_);
  return child_ ? child_->link.get() : nullptr;
}

pid_t ProcessDriver::pid() const {
  std::lock_guard lock(mutex_);
  return child_ ? child_->pid : -1;
}

std::string ProcessDriver::error() const {
  std::lock_guard lock(mutex_);
  return error_;
}

std::string ProcessDriver::last_end() const {
  std::lock_guard lock(mutex_);
  return last_how_;
}

std::vector<AssignedVdev> ProcessDriver::vdevs() const {
  std::lock_guard lock(mutex_);
  return vdevs_;
}

Status ProcessDriver::fail(Status s, std::string message) {
  AMP_LOG_DEBUG("rproc process: %s", message.c_str());  // the caller reports it
  set_error(std::move(message));
  return s;
}

void ProcessDriver::set_error(std::string message) {
  std::lock_guard lock(mutex_);
  error_ = std::move(message);
}

Status ProcessDriver::load(std::span<const std::byte> firmware) noexcept {
  std::lock_guard op(op_mutex_);
  auto image = ElfImage::parse(firmware, {.allow_position_independent = true});
  if (!image) return fail(to_status(image.error()), std::string("firmware: ") + to_string(image.error()));
  if (kHostMachine != elf::kMachineNone && image->machine() != kHostMachine) {
    return fail(Status::kNotSupported, std::string("firmware: built for ") +
                                           elf::machine_name(image->machine()).c_str() +
                                           ", this machine is " + elf::machine_name(kHostMachine).c_str());
  }
  auto rsc = image->resource_table();
  if (!rsc) {
    return fail(to_status(rsc.error()),
                std::string("firmware: ") + to_string(rsc.error()) + " (a native firmware declares one)");
  }
  if (rsc->data.empty()) {
    return fail(
        Status::kNotFound,
        "firmware: its .resource_table section is empty, so there is no rpmsg vdev (a native firmware "
        "declares one)");
  }
  // Check the table now (in an aligned copy), so that a bad one fails load, not start.
  std::vector<std::byte> table(rsc->data.begin(), rsc->data.end());
  std::vector<std::uint64_t> aligned((table.size() + 7) / 8);
  std::memcpy(aligned.data(), table.data(), table.size());
  const metal::IoRegion view(std::span(reinterpret_cast<std::byte*>(aligned.data()), table.size()), 0);
  auto parsed = ResourceTable::parse(view);
  if (!parsed)
    return fail(parsed.error().status, "firmware: bad resource table: " + describe(parsed.error()));
  RpmsgFinder finder;
  if (auto walk = parsed->for_each(finder); !walk)
    return fail(walk.error().status, "firmware: bad resource table: " + describe(walk.error()));
  if (!finder.found) {
    return fail(Status::kNotFound, "firmware: its resource table has no rpmsg vdev with two vrings");
  }

  // The program runs from a sealed copy: what was checked is what runs.
  // Executable on purpose (MFD_EXEC, where the kernel knows it: vm.memfd_noexec may default to no-exec).
  // Named after the firmware's file (/proc/PID/exe shows it); the kernel takes 249 characters.
  const std::string memfd_name = file_name_of(config_.name).substr(0, 249);
  int raw = ::memfd_create(memfd_name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING | kMfdExec);
  if (raw < 0 && errno == EINVAL) raw = ::memfd_create(memfd_name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  // Kept above descriptor 3, which the program's control socket takes in the child.
  metal::UniqueFd exe(raw >= 0 ? ::fcntl(raw, F_DUPFD_CLOEXEC, 10) : -1);
  if (raw >= 0) ::close(raw);
  if (!exe) return fail(Status::kIoError, std::string("memfd_create: ") + std::strerror(errno));
  std::size_t done = 0;
  while (done < firmware.size()) {
    const ssize_t n = ::write(exe.get(), firmware.data() + done, firmware.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      return fail(Status::kIoError, std::string("writing the firmware copy: ") + std::strerror(errno));
    done += static_cast<std::size_t>(n);
  }
  if (::fcntl(exe.get(), F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) != 0) {
    return fail(Status::kIoError, std::string("sealing the firmware copy: ") + std::strerror(errno));
  }
  executable_ = std::move(exe);
  table_ = std::move(table);
  set_error({});
  return Status::kOk;
}

Status ProcessDriver::start() noexcept {
  std::lock_guard op(op_mutex_);
  if (!loop_) return fail(Status::kInternal, "process driver: no event loop");
  if (!executable_) return fail(Status::kNotFound, "no firmware loaded");
  if (child_) return fail(Status::kBusy, "the firmware runs already");

  // --- The remote's memory: the table at 0, then the host's pool (vrings, carveouts, rpmsg buffers). ---
  const std::size_t table_size = table_.size();
  const std::size_t pool_at = align_up(table_size, kPage);
  if (config_.memory_size < pool_at + kPage)
    return fail(Status::kInvalidArgument, "the remote's memory is too small for its resource table");
  auto shm = metal::shm::create_memfd("amp-rproc-" + config_.name, config_.memory_size, config_.memory_base);
  if (!shm) return fail(shm.error().status, shm.error().message);
  const metal::IoRegion memory = shm->region();
  if (!ok(memory.write(0, table_))) return fail(Status::kInternal, "copying the resource table");
  auto table_region = memory.subregion(0, table_size);
  auto pool_region = memory.subregion(pool_at, config_.memory_size - pool_at);
  if (!table_region || !pool_region) return fail(Status::kInternal, "laying out the remote's memory");
  auto table = ResourceTable::parse(*table_region);
  if (!table) return fail(table.error().status, "resource table: " + describe(table.error()));
  DeviceMemoryPool pool(*pool_region);
  const std::array<metal::IoRegion, 1> remote_memory{memory};
  auto plan = plan_rpmsg(*table, remote_memory, pool, config_.link.buffer_size);
  if (!plan) {
    return fail(plan.error().status, plan.error().message + " (the remote's memory is " +
                                         std::to_string(config_.memory_size) + " bytes)");
  }
  const std::size_t pool_bytes = plan->buffers_size;
  const metal::DeviceAddress buffers = plan->buffers;
  rpmsg::LinkLayout layout;
  layout.size = config_.memory_size;
  layout.device_address = config_.memory_base;
  layout.table = 0;
  layout.table_size = table_size;
  layout.vdev = plan->vdev.ordinal;
  layout.pool = static_cast<std::size_t>(buffers - config_.memory_base);
  layout.pool_size = pool_bytes;
  {
    std::lock_guard lock(mutex_);
    vdevs_.assign(1, plan->vdev);
  }

  metal::UniqueFd memory_fd(::fcntl(shm->fd(), F_DUPFD_CLOEXEC, 0));
  if (!memory_fd) return fail(Status::kIoError, std::string("dup: ") + std::strerror(errno));

  // --- The program, with its control socket at descriptor 3. ---
  auto socks = metal::UnixSocket::pair();
  if (!socks) return fail(socks.error().status, socks.error().message);
  metal::UniqueFd child_end(::fcntl(socks->second.fd(), F_DUPFD_CLOEXEC, 10));  // never 3 itself
  if (!child_end) return fail(Status::kIoError, std::string("dup: ") + std::strerror(errno));
  socks->second = metal::UnixSocket(metal::UniqueFd());

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawnattr_init(&attr);
  ::posix_spawn_file_actions_adddup2(&actions, child_end.get(), kChildLinkFd);
  // A remote has no terminal: in a background group, reading one would stop it (SIGTTIN) for good.
  ::posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  // Its own process group (a terminal's Ctrl-C is the host's to handle), default signals, nothing blocked.
  sigset_t none;
  sigset_t all;
  ::sigemptyset(&none);
  ::sigfillset(&all);
  ::posix_spawnattr_setsigmask(&attr, &none);
  ::posix_spawnattr_setsigdefault(&attr, &all);
  ::posix_spawnattr_setpgroup(&attr, 0);
  ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  std::vector<std::string> args{config_.name};
  args.insert(args.end(), config_.args.begin(), config_.args.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::string link_var = std::string(kLinkFdVariable) + "=" + std::to_string(kChildLinkFd);
  std::vector<char*> envp;
  const std::string prefix = std::string(kLinkFdVariable) + "=";
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (std::strncmp(*e, prefix.c_str(), prefix.size()) != 0) envp.push_back(*e);
  }
  envp.push_back(link_var.data());
  envp.push_back(nullptr);
  pid_t pid = -1;
  int rc = 0;
  {
    const ExecPath exec(executable_.get(), file_name_of(config_.name));
    rc = ::posix_spawn(&pid, exec.path().c_str(), &actions, &attr, argv.data(), envp.data());
  }  // posix_spawn returns once the program runs (or failed to): the path has served
  ::posix_spawn_file_actions_destroy(&actions);
  ::posix_spawnattr_destroy(&attr);
  child_end.reset();
  if (rc != 0) return fail(Status::kIoError, std::string("starting the firmware: ") + std::strerror(rc));

  auto child = std::make_unique<Child>();
  child->pid = pid;
  child->control = std::move(socks->first);
  child->memory = std::move(memory_fd);
  child->layout = layout;
  child->generation = ++generation_;
  // Watch for its end. The watch owns the pidfd and removes itself once the program is gone.
  auto watch = std::make_unique<Watch>();
  watch->pidfd = metal::UniqueFd(pidfd_open(pid));
  if (!watch->pidfd) {
    const int err = errno;
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    return fail(Status::kIoError, std::string("pidfd_open: ") + std::strerror(err));
  }
  child->pidfd = watch->pidfd.get();
  const std::uint64_t gen = child->generation;
  auto source =
      loop_->add_fd(watch->pidfd.get(), EPOLLIN, [this, gen](std::uint32_t) { on_child_exit(gen); });
  if (!source) {
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    return fail(source.error().status, source.error().message);
  }
  watch->source = *source;
  watches_[gen] = std::move(watch);
  {
    std::lock_guard lock(mutex_);
    child_ = std::move(child);
  }
  AMP_LOG_INFO("rproc process: started %s (pid %d)", config_.name.c_str(), static_cast<int>(pid));

  // --- rpmsg: the virtio driver role over the firmware's vdev. ---
  if (const Status st = open_session(std::move(*shm)); !ok(st)) {
    std::string why = "the firmware did not bring rpmsg up: " + error();
    // A program that hung up on its link is most likely on its way out: give its end a moment to show.
    pollfd p{child_->pidfd, POLLIN, 0};
    const bool ended_by_itself = ::poll(&p, 1, st == Status::kClosed ? 1000 : 0) > 0;
    stop_op();
    if (ended_by_itself) why += " (it " + last_end() + ")";
    return fail(st, std::move(why));
  }
  set_error({});
  return Status::kOk;
}

Status ProcessDriver::open_session(metal::SharedMemory memory) {
  auto session = metal::UnixSocket::pair();
  if (!session) return fail(session.error().status, session.error().message);
  const std::byte hello{1};
  const int fds[] = {session->second.fd()};
  if (const Status st = child_->control.send_all(std::span(&hello, 1), fds); !ok(st)) {
    return fail(st, std::string("handing the program its link: ") + amp::to_string(st));
  }
  session->second = metal::UnixSocket(metal::UniqueFd());
  rpmsg::LinkConfig lc = config_.link;
  lc.role = rpmsg::Role::kDriver;
  lc.posix_shm_name.clear();
  lc.own_thread = true;
  lc.single_threaded = false;
  auto link = rpmsg::Link::create_in(std::move(session->first), lc, std::move(memory), child_->layout);
  if (!link) return fail(link.error().status, link.error().message);
  LinkFn up;
  {
    std::lock_guard lock(mutex_);
    child_->link = std::move(*link);
    up = link_up_;
  }
  if (up) up(*child_->link);  // without mutex_: it may call the getters
  return Status::kOk;
}

Status ProcessDriver::detach() noexcept {
  std::lock_guard op(op_mutex_);
  if (!child_ || !child_->link) return fail(Status::kBusy, "detach: no program with a link to detach from");
  take_down_link();  // the program keeps running, waiting for the next host
  AMP_LOG_INFO("rproc process: detached from %s (pid %d)", config_.name.c_str(),
               static_cast<int>(child_->pid));
  set_error({});
  return Status::kOk;
}

Status ProcessDriver::attach() noexcept {
  std::lock_guard op(op_mutex_);
  if (!child_) {
    return fail(Status::kNotFound,
                "attach: no running program to attach to (the process driver attaches to a program it "
                "detached from)");
  }
  if (child_->link) return fail(Status::kBusy, "attach: attached already");
  // What the remote has in its memory now is what counts: check its resource table again.
  metal::UniqueFd fd(::fcntl(child_->memory.get(), F_DUPFD_CLOEXEC, 0));
  if (!fd) return fail(Status::kIoError, std::string("dup: ") + std::strerror(errno));
  auto memory = metal::shm::map_fd(std::move(fd), child_->layout.size, child_->layout.device_address);
  if (!memory) return fail(memory.error().status, memory.error().message);
  auto table_region = memory->region().subregion(child_->layout.table, child_->layout.table_size);
  if (!table_region) return fail(Status::kInternal, "attach: the table is outside the remote's memory");
  auto table = ResourceTable::parse(*table_region);
  if (!table)
    return fail(table.error().status, "attach: the remote's resource table: " + describe(table.error()));
  RpmsgFinder finder;
  if (auto walk = table->for_each(finder); !walk || !finder.found || finder.ordinal != child_->layout.vdev) {
    return fail(Status::kMalformed, "attach: the remote's resource table has no usable rpmsg vdev");
  }
  if (const Status st = open_session(std::move(*memory)); !ok(st)) {
    set_error("attach: " + error());
    return st;
  }
  AMP_LOG_INFO("rproc process: attached to %s (pid %d)", config_.name.c_str(), static_cast<int>(child_->pid));
  set_error({});
  return Status::kOk;
}

void ProcessDriver::take_down_link() {
  std::unique_ptr<rpmsg::Link> link;
  LinkFn down;
  {
    std::lock_guard lock(mutex_);  // briefly: the getters must never wait for what follows
    if (!child_ || !child_->link) return;
    link = std::move(child_->link);
    down = link_down_;
  }
  link->close();  // endpoints get their unbind; sends fail with kClosed
  // A virtio reset: the device waits for the next driver (after a detach) instead of trusting old rings.
  if (auto table = link->memory().region().subregion(child_->layout.table, child_->layout.table_size)) {
    if (auto body = virtio::find_vdev(*table, child_->layout.vdev)) {
      if (auto transport = virtio::RscVdevTransport::open(*body)) transport->set_status(0);
    }
  }
  if (down) down(*link);
}

void ProcessDriver::kill_group(int sig) {
  // The program's own process group (posix_spawn made it), so what it started goes too; and the program
  // itself, in case it left the group.
  ::kill(-child_->pid, sig);
  ::kill(child_->pid, sig);
}

void ProcessDriver::reap() {
  if (!child_ || child_->reaped) return;
  // Whatever the program left running in its group goes with it (the group lives while it is a zombie).
  ::kill(-child_->pid, SIGKILL);
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(child_->pid, &status, 0);
  } while (r < 0 && errno == EINTR);
  const std::string how = r == child_->pid ? describe(status) : "could not be waited for";
  {
    std::lock_guard lock(mutex_);
    child_->reaped = true;
    child_->how = how;
    last_how_ = how;
  }
  AMP_LOG_INFO("rproc process: %s (pid %d) %s", config_.name.c_str(), static_cast<int>(child_->pid),
               how.c_str());
}

void ProcessDriver::stop_op() {
  if (!child_) return;
  take_down_link();
  child_->control = metal::UnixSocket(metal::UniqueFd());  // the host is gone: the program's cue to end
  if (!child_->reaped) {
    // Without its host a native firmware ends by itself: give it a moment, then SIGTERM asks it to, and
    // SIGKILL makes it.
    auto ended_within = [this](std::chrono::milliseconds timeout) {
      pollfd p{child_->pidfd, POLLIN, 0};
      int n;
      do {
        n = ::poll(&p, 1, static_cast<int>(timeout.count()));
      } while (n < 0 && errno == EINTR);
      return n > 0;
    };
    if (!ended_within(std::min(config_.stop_timeout, std::chrono::milliseconds(200)))) {
      kill_group(SIGTERM);
      if (!ended_within(config_.stop_timeout)) {
        AMP_LOG_WARNING("rproc process: %s did not end within %lld ms of SIGTERM; killing it",
                        config_.name.c_str(), static_cast<long long>(config_.stop_timeout.count()));
        kill_group(SIGKILL);
      }
    }
    reap();
  }
  std::lock_guard lock(mutex_);
  child_.reset();  // its watch fires (the pidfd of a reaped process is readable) and cleans up
}

Status ProcessDriver::stop() noexcept {
  std::lock_guard op(op_mutex_);
  stop_op();
  return Status::kOk;
}

void ProcessDriver::on_child_exit(std::uint64_t generation) {
  ExitFn report;
  std::string how;
  {
    std::lock_guard op(op_mutex_);
    auto it = watches_.find(generation);
    if (it == watches_.end()) return;
    (void)loop_->remove(it->second->source);  // from its own handler: returns at once
    if (!child_ || child_->generation != generation) {
      watches_.erase(it);  // stopped already
      return;
    }
    // The program ended while running (or detached): a crash.
    reap();
    take_down_link();
    std::lock_guard lock(mutex_);
    how = child_->how;
    child_.reset();
    watches_.erase(it);
    if (shutting_down_) return;
    report = exit_;
  }
  AMP_LOG_WARNING("rproc process: %s %s unexpectedly", config_.name.c_str(), how.c_str());
  if (report) report(how);
}

// --- ProcessRemote ---

ProcessRemote::ProcessRemote(ProcessConfig config) : driver_(std::move(config)) {
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
    if (s == Status::kBusy) {  // a stop got there first: it ended because we asked
      std::lock_guard lock(mutex_);
      last_exit_ = before;
      return;
    }
    if (!ok(s) && down_) down_(how);
  });
}

ProcessRemote::~ProcessRemote() {
  driver_.shutdown();  // no more reports into lifecycle_, which goes first
}

void ProcessRemote::on_transition(std::function<void(const Transition&)> fn) {
  transition_ = std::move(fn);
}

SysResult<void> ProcessRemote::result(Status s) const {
  if (ok(s)) return {};
  std::string why = driver_.error();
  if (why.empty() || s == Status::kBusy) {
    why = std::string(amp::to_string(s)) + " (the remote is " + to_string(lifecycle_.state()) + ")";
  }
  return sys_fail(s, why);
}

SysResult<void> ProcessRemote::start(std::vector<std::byte> firmware) {
  // The Lifecycle keeps a view of the bytes for recovery: the old ones stay until the new ones loaded.
  auto fresh = std::make_unique<std::vector<std::byte>>(std::move(firmware));
  if (const Status s = lifecycle_.load(*fresh); !ok(s)) return result(s);
  firmware_ = std::move(fresh);
  return result(lifecycle_.start());
}

SysResult<void> ProcessRemote::stop() {
  const State s = lifecycle_.state();
  if (s != State::kRunning && s != State::kAttached && s != State::kDetached) return {};
  return result(lifecycle_.stop());
}

State ProcessRemote::state() const {
  std::lock_guard lock(mutex_);
  return state_;
}

bool ProcessRemote::wait_for(State s, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return state_ == s; });
}

std::string ProcessRemote::last_exit() const {
  std::lock_guard lock(mutex_);
  return last_exit_;
}

// --- The firmware's side ---

SysResult<std::unique_ptr<rpmsg::Link>> join_host(rpmsg::LinkConfig config) {
  // The control socket is the program's for its whole life: taken from the environment once.
  static std::mutex mutex;
  static metal::UnixSocket control{metal::UniqueFd()};
  std::lock_guard lock(mutex);
  if (!control.valid()) {
    const char* value = std::getenv(kLinkFdVariable);
    if (value == nullptr) {
      return sys_fail(Status::kNotFound, std::string(kLinkFdVariable) +
                                             " is not set: this program is a native firmware, started by "
                                             "`ampctl run` (or amp::rproc::ProcessRemote)");
    }
    char* end = nullptr;
    errno = 0;
    const long fd = std::strtol(value, &end, 10);
    struct stat st {};
    if (errno != 0 || end == value || *end != '\0' || fd < 0 || fd > 1'000'000 ||
        ::fstat(static_cast<int>(fd), &st) != 0 || !S_ISSOCK(st.st_mode)) {
      return sys_fail(Status::kInvalidArgument,
                      std::string(kLinkFdVariable) + "=" + value + " is not an open socket");
    }
    ::fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);  // not for the programs it may start
    ::unsetenv(kLinkFdVariable);
    control = metal::UnixSocket(metal::UniqueFd(static_cast<int>(fd)));
  }
  // Asleep until the host opens the next session (at start, or at an attach after a detach).
  std::byte hello{};
  std::vector<metal::UniqueFd> fds;
  auto n = control.receive(std::span(&hello, 1), &fds, 1);
  if (!n) return sys_fail(n.error().status, "waiting for the host: " + n.error().message);
  if (*n == 0) return sys_fail(Status::kClosed, "the host has gone");
  if (fds.size() != 1) return sys_fail(Status::kMalformed, "the host's session message carried no socket");
  config.role = rpmsg::Role::kDevice;
  auto link = rpmsg::Link::join(metal::UnixSocket(std::move(fds[0])), config);
  // kClosed means "the host has gone for good": a session that fails says something else (kIoError), and
  // the program may wait for the next one.
  if (!link && link.error().status == Status::kClosed) {
    return sys_fail(Status::kIoError,
                    "the host's session ended before rpmsg came up: " + link.error().message);
  }
  return link;
}

}  // namespace amp::rproc
