// SPDX-License-Identifier: BSD-3-Clause
#include "amp/rproc/linux/qemu_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

#include "amp/metal/log.hpp"

extern char** environ;

namespace amp::rproc {

using metal::hex;
using metal::sys_fail;
using metal::SysResult;
using Clock = std::chrono::steady_clock;

namespace {

/// The longest path a UNIX socket address holds (sun_path, with its NUL).
constexpr std::size_t kMaxSocketPath = 107;
/// close_range(2)'s flag, spelled out for older headers.
constexpr unsigned kCloseRangeCloexec = 1U << 2;

int pidfd_open(pid_t pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 1'000'000'000));
}

/// A path inside a QEMU option value: commas are doubled (QEMU's escape).
std::string qemu_escape(const std::string& s) {
  std::string out;
  for (const char c : s) {
    out += c;
    if (c == ',') out += ',';
  }
  return out;
}

std::size_t size_of(int fd) {
  struct stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0 || st.st_size <= 0) return 0;
  return static_cast<std::size_t>(st.st_size);
}

/// The last `max` bytes of the file open at `fd` after its first `skip` bytes, read with pread (the file
/// offset is QEMU's).
std::string tail_of(int fd, std::size_t max, std::size_t skip = 0) {
  const std::size_t size = size_of(fd);
  if (size <= skip) return {};
  const std::size_t from = size - skip > max ? size - max : skip;
  std::string out(size - from, '\0');
  std::size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(from + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  out.resize(done);
  return out;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

/// Starts programs from one thread that lives as long as the process: PR_SET_PDEATHSIG fires when the
/// thread that forked the child ends, so the children of a thread that comes and goes would be killed with
/// it. The thread and its state are never destroyed (a detached thread may still use them at exit).
class Spawner {
 public:
  struct Job {
    const char* path = nullptr;
    char* const* argv = nullptr;
    char* const* envp = nullptr;
    int out_fd = -1;
    pid_t pid = -1;
    int error = 0;  // errno of a failed fork or exec
    bool done = false;
  };

  static Spawner& instance() {
    static Spawner* spawner = new Spawner();  // never destroyed, on purpose
    return *spawner;
  }

  /// Runs `job` on the spawner's thread and waits for it: the child runs (job.pid) or failed (job.error).
  void run(Job& job) {
    std::unique_lock lock(mutex_);
    jobs_.push_back(&job);
    wake_.notify_one();
    done_.wait(lock, [&] { return job.done; });
  }

 private:
  Spawner() {
    std::thread([this] { serve(); }).detach();
  }

  void serve() {
    ::pthread_setname_np(::pthread_self(), "amp-qemu-spawn");
    for (;;) {
      Job* job = nullptr;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return !jobs_.empty(); });
        job = jobs_.front();
        jobs_.pop_front();
      }
      spawn(*job);
      std::lock_guard lock(mutex_);
      job->done = true;
      done_.notify_all();
    }
  }

  /// fork + exec. Between the two, the child calls only async-signal-safe functions.
  static void spawn(Job& job) {
    int report[2];  // the exec's errno, if it fails; closed by a successful exec
    if (::pipe2(report, O_CLOEXEC) != 0) {
      job.error = errno;
      return;
    }
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);  // the parent ended before the line above
      ::setpgid(0, 0);
      const int null = ::open("/dev/null", O_RDONLY);
      if (null >= 0) ::dup2(null, 0);
      ::dup2(job.out_fd, 1);
      ::dup2(job.out_fd, 2);
      // Nothing of the host's but stdin, stdout and stderr goes to QEMU.
      ::syscall(SYS_close_range, 3U, ~0U, kCloseRangeCloexec);
      sigset_t none;
      ::sigemptyset(&none);
      struct sigaction dfl {};
      dfl.sa_handler = SIG_DFL;
      for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &dfl, nullptr);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::execve(job.path, job.argv, job.envp);
      const int err = errno;
      (void)!::write(report[1], &err, sizeof err);
      ::_exit(127);
    }
    ::close(report[1]);
    if (pid < 0) {
      job.error = errno;
      ::close(report[0]);
      return;
    }
    int err = 0;
    ssize_t n;
    do {
      n = ::read(report[0], &err, sizeof err);
    } while (n < 0 && errno == EINTR);
    ::close(report[0]);
    if (n == sizeof err) {  // exec failed: the child has exited
      while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
      }
      job.error = err;
      return;
    }
    job.pid = pid;
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  std::deque<Job*> jobs_;
};

bool executable_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

}  // namespace

SysResult<std::string> find_qemu(const std::string& binary, const std::string& package) {
  const std::string hint = " (Debian: apt-get install " + package + ")";
  if (binary.find('/') != std::string::npos) {
    if (executable_file(binary)) return binary;
    const int err = errno;
    return sys_fail(Status::kNotFound, "QEMU: " + binary + " is not an executable file" +
                                           (err != 0 ? std::string(" (") + std::strerror(err) + ")" : "") +
                                           hint);
  }
  const char* path = std::getenv("PATH");
  const std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  for (std::size_t from = 0; from <= dirs.size();) {
    std::size_t to = dirs.find(':', from);
    if (to == std::string::npos) to = dirs.size();
    // An empty entry is the current directory. (Not an assignment of "." to an empty string: g++ -O3
    // warns about that one with -Wrestrict, falsely.)
    const std::string dir = to > from ? dirs.substr(from, to - from) : std::string(".");
    const std::string candidate = dir + "/" + binary;
    if (executable_file(candidate)) return candidate;
    from = to + 1;
  }
  return sys_fail(Status::kNotFound, "QEMU: " + binary + " is not installed (not found in PATH)" + hint);
}

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = ::strsignal(sig);
    return "killed by signal " + std::to_string(sig) +
           (name != nullptr ? std::string(" (") + name + ")" : "");
  }
  return "ended (status " + std::to_string(status) + ")";
}

SysResult<std::unique_ptr<QemuProcess>> QemuProcess::launch(const QemuLaunch& launch) {
  std::unique_ptr<QemuProcess> qemu(new QemuProcess());
  if (auto s = qemu->start(launch); !s) return Unexpected<metal::SysError>(std::move(s).error());
  return qemu;
}

metal::SysError QemuProcess::failed(Status status, std::string why) {
  if (pid_ > 0 && !ended()) {
    // Did it end? Give a QEMU that is on its way out a moment to finish its message.
    pollfd p{pidfd_.get(), POLLIN, 0};
    if (::poll(&p, 1, 100) > 0) reap();
  }
  if (ended()) why += " (QEMU " + how_ + ")";
  const std::string said = trim(output(2048));
  if (!said.empty()) why += ": " + said;
  return metal::SysError(status, "QEMU did not start: " + why);
}

SysResult<void> QemuProcess::start(const QemuLaunch& launch) {
  const auto deadline = Clock::now() + launch.timeout;
  if (launch.ram_size == 0 || launch.ram_size % (std::size_t{1} << 20) != 0)
    return sys_fail(Status::kInvalidArgument, "QEMU: the RAM size must be a multiple of 1 MiB");
  auto binary = find_qemu(launch.binary, launch.package);
  if (!binary) return Unexpected<metal::SysError>(std::move(binary).error());

  // --- The private runtime directory: sockets and the console. ---
  std::string base = launch.runtime_dir;
  if (base.empty()) {
    std::error_code ec;
    base = std::filesystem::temp_directory_path(ec).string();  // $TMPDIR or /tmp
    if (ec || base.size() + std::strlen("/amp-qemu-XXXXXX/doorbell.sock") > kMaxSocketPath) base = "/tmp";
  }
  std::string dir = base + "/amp-qemu-XXXXXX";
  if (dir.size() + std::strlen("/doorbell.sock") > kMaxSocketPath)
    return sys_fail(Status::kInvalidArgument,
                    "QEMU: the runtime directory's path is too long for a socket: " + base);
  if (::mkdtemp(dir.data()) == nullptr) return sys_fail("QEMU: creating a runtime directory in " + base);
  {
    std::lock_guard lock(files_);
    dir_ = dir;
  }
  const std::string qmp_path = dir_ + "/qmp.sock";
  const std::string doorbell_path = dir_ + "/doorbell.sock";
  console_path_ = dir_ + "/console.sock";

  // --- Guest RAM: memory of ours, mapped here and by QEMU. ---
  // By default an anonymous memfd that QEMU opens through /proc/<our pid>/fd/N (we keep it open while QEMU
  // lives): it never has a name, so nothing can be left behind however this process ends. With ram_dir, a
  // file there, unlinked once QEMU has it open.
  metal::UniqueFd ram_fd;
  std::string ram_mem_path;
  if (launch.ram_dir.empty()) {
    ram_fd = metal::UniqueFd(::memfd_create("amp-qemu-ram", MFD_CLOEXEC));
    if (!ram_fd) return sys_fail("QEMU: memfd_create for the guest's RAM");
    ram_mem_path = "/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(ram_fd.get());
  } else {
    std::string ram = launch.ram_dir + "/amp-qemu-XXXXXX";
    ram_fd = metal::UniqueFd(::mkostemp(ram.data(), O_CLOEXEC));
    if (!ram_fd) return sys_fail("QEMU: creating the RAM file in " + launch.ram_dir);
    ram_path_ = ram;
    ram_mem_path = ram;
  }
  if (::ftruncate(ram_fd.get(), static_cast<off_t>(launch.ram_size)) != 0)
    return sys_fail("QEMU: sizing the guest's RAM (" + ram_mem_path + ")");
  auto mapped = metal::shm::map_fd(std::move(ram_fd), launch.ram_size, launch.ram_base);
  if (!mapped) return Unexpected<metal::SysError>(std::move(mapped).error());
  ram_ = std::move(*mapped);
  if (launch.ram_dir.empty())  // the descriptor now belongs to the mapping: name that one
    ram_mem_path = "/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(ram_.fd());

  // --- The doorbell and the console: we listen, QEMU connects (no byte is lost before we are there). ---
  auto listened = metal::UnixListener::listen(doorbell_path, 1);
  if (!listened) return Unexpected<metal::SysError>(std::move(listened).error());
  std::optional<metal::UnixListener> listener(std::move(*listened));
  auto console_listened = metal::UnixListener::listen(console_path_, 1);
  if (!console_listened) return Unexpected<metal::SysError>(std::move(console_listened).error());
  std::optional<metal::UnixListener> console_listener(std::move(*console_listened));

  // --- QEMU's output: an anonymous file, read back for messages. ---
  output_ = metal::UniqueFd(::memfd_create("amp-qemu-output", MFD_CLOEXEC));
  if (!output_) return sys_fail("QEMU: memfd_create for its output");

  argv_ = {*binary, "-M", launch.machine, "-cpu", launch.cpu, "-m",
           std::to_string(launch.ram_size >> 20) + "M", "-object",
           "memory-backend-file,id=amp-ram,size=" + std::to_string(launch.ram_size) +
               ",mem-path=" + qemu_escape(ram_mem_path) + ",share=on",
           "-machine", "memory-backend=amp-ram", "-nic", "none", "-display", "none", "-monitor", "none", "-S",
           "-no-reboot", "-qmp", "unix:" + qemu_escape(qmp_path) + ",server=on,wait=off",
           // Semihosting for the firmware's exit only: target=gdb keeps every other call (SYS_SYSTEM runs
           // a shell command, SYS_OPEN opens a file) away from this machine, since without a debugger
           // attached they do nothing. The sandbox is a second wall: no exec, no privileges, no
           // obsolete or resource-control system calls.
           "-semihosting-config", "enable=on,target=gdb", "-sandbox",
           "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
           // The console into a socket we read into a bounded tail: a guest that writes without end
           // costs a little CPU, never memory or disk.
           "-chardev", "socket,id=amp-con,path=" + qemu_escape(console_path_), "-serial", "chardev:amp-con",
           "-chardev", "socket,id=amp-db,path=" + qemu_escape(doorbell_path), "-serial", "chardev:amp-db"};
  if (launch.entry) {
    argv_.push_back("-device");
    argv_.push_back("loader,addr=" + hex(*launch.entry) + ",cpu-num=0");
  }
  argv_.insert(argv_.end(), launch.extra_args.begin(), launch.extra_args.end());

  std::vector<char*> argv;
  for (std::string& a : argv_) argv.push_back(a.data());
  argv.push_back(nullptr);
  Spawner::Job job;
  job.path = argv_[0].c_str();
  job.argv = argv.data();
  job.envp = environ;
  job.out_fd = output_.get();
  Spawner::instance().run(job);
  if (job.pid < 0) {
    return sys_fail(Status::kIoError, "QEMU: starting " + argv_[0] + ": " + std::strerror(job.error) +
                                          " (Debian: apt-get install " + launch.package + ")");
  }
  pid_ = job.pid;
  pidfd_ = metal::UniqueFd(pidfd_open(pid_));
  if (!pidfd_) {
    const int err = errno;
    ::kill(pid_, SIGKILL);
    (void)reap();
    return sys_fail("QEMU: pidfd_open", err);
  }
  AMP_LOG_DEBUG("rproc qemu: started pid %d: %s", static_cast<int>(pid_), command_line().c_str());

  // --- Wait for QEMU to connect the console and the doorbell (it does while it builds its character
  // devices). ---
  std::optional<metal::UnixSocket> console;
  while (listener || console_listener) {
    pollfd p[3] = {{pidfd_.get(), POLLIN, 0},
                   {listener ? listener->fd() : -1, POLLIN, 0},
                   {console_listener ? console_listener->fd() : -1, POLLIN, 0}};
    const int n = ::poll(p, 3, remaining_ms(deadline));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_fail("QEMU: poll");
    if ((p[0].revents & POLLIN) != 0)
      return Unexpected<metal::SysError>(failed(Status::kIoError, "it ended"));
    if (n == 0) {
      return Unexpected<metal::SysError>(failed(
          Status::kTimeout, std::string("it did not connect to its ") + (listener ? "doorbell" : "console") +
                                " socket within " + std::to_string(launch.timeout.count()) + " ms"));
    }
    for (std::optional<metal::UnixListener>* l : {&listener, &console_listener}) {
      if (!*l) continue;
      auto accepted = (*l)->accept(std::chrono::milliseconds(0));
      if (!accepted) {
        if (accepted.error().status != Status::kTimeout)
          return Unexpected<metal::SysError>(std::move(accepted).error());
        continue;
      }
      if (l == &listener) {
        doorbell_ = std::move(*accepted);
      } else {
        console.emplace(std::move(*accepted));
      }
      l->reset();  // closes it and removes its file
    }
  }
  start_console_reader(std::move(*console));
  if (const Status st = doorbell_.set_nonblocking(true); !ok(st))
    return sys_fail(st, "QEMU: making the doorbell socket non-blocking");

  // --- QMP: the machine is built when it answers. ---
  auto qmp = QmpClient::connect(qmp_path, deadline, launch.timeout, pidfd_.get());
  if (!qmp) {
    metal::SysError e = std::move(qmp).error();
    if (e.status == Status::kClosed) return Unexpected<metal::SysError>(failed(Status::kIoError, "it ended"));
    return Unexpected<metal::SysError>(failed(e.status, e.message));
  }
  qmp_.emplace(std::move(*qmp));
  if (!ram_path_.empty()) ::unlink(ram_path_.c_str());  // QEMU has it: nothing to leave behind from here on
  ram_path_.clear();
  ::unlink(qmp_path.c_str());
  {
    // Every socket file has gone (each listener removed its own once QEMU connected): so can the directory.
    std::lock_guard lock(files_);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    dir_.clear();
  }
  auto status = qmp_->status(std::chrono::milliseconds(std::max(remaining_ms(deadline), 1)));
  if (!status) return Unexpected<metal::SysError>(failed(status.error().status, status.error().message));
  if (*status != "prelaunch") {
    return Unexpected<metal::SysError>(
        failed(Status::kIoError, "its machine is '" + *status + "', not waiting to start (prelaunch)"));
  }
  ready_mark_.store(size_of(output_.get()), std::memory_order_release);
  AMP_LOG_INFO("rproc qemu: QEMU %s (pid %d) is ready, paused", qmp_->version().c_str(),
               static_cast<int>(pid_));
  return {};
}

std::string QemuProcess::command_line() const {
  std::string s;
  for (const std::string& a : argv_) s += (s.empty() ? "" : " ") + a;
  return s;
}

std::string QemuProcess::stop(std::chrono::milliseconds timeout) {
  if (pid_ <= 0 || ended()) {
    remove_files();
    return how_;
  }
  auto ended_within = [this](std::chrono::milliseconds t) {
    pollfd p{pidfd_.get(), POLLIN, 0};
    const auto deadline = Clock::now() + t;
    for (;;) {
      const int n = ::poll(&p, 1, remaining_ms(deadline));
      if (n < 0 && errno == EINTR) continue;
      return n > 0;
    }
  };
  if (qmp_) {
    // Its answer may come, or the socket may close first: either is fine.
    (void)qmp_->execute("quit", std::min(timeout, std::chrono::milliseconds(1000)));
  }
  if (!ended_within(timeout)) {
    AMP_LOG_WARNING("rproc qemu: QEMU (pid %d) did not quit within %lld ms; killing it",
                    static_cast<int>(pid_), static_cast<long long>(timeout.count()));
    kill();
  }
  return reap();
}

void QemuProcess::kill() noexcept {
  // Not reaped yet, so the pid (a zombie's at worst) is still QEMU's.
  if (pid_ <= 0 || ended()) return;
  ::kill(-pid_, SIGKILL);
  ::kill(pid_, SIGKILL);
}

std::string QemuProcess::reap() {
  if (pid_ <= 0) return how_;
  if (!ended()) {
    // Whatever it left in its group goes too (none, normally); the group lives while QEMU is a zombie.
    ::kill(-pid_, SIGKILL);
    int status = 0;
    pid_t r;
    do {
      r = ::waitpid(pid_, &status, 0);
    } while (r < 0 && errno == EINTR);
    wait_status_ = status;
    how_ = r == pid_ ? describe_wait_status(status) : "could not be waited for";
    reaped_.store(true, std::memory_order_release);
    AMP_LOG_INFO("rproc qemu: QEMU (pid %d) %s", static_cast<int>(pid_), how_.c_str());
  }
  qmp_.reset();
  remove_files();
  return how_;
}

void QemuProcess::remove_files() {
  if (!ram_path_.empty()) {
    ::unlink(ram_path_.c_str());
    ram_path_.clear();
  }
  std::lock_guard lock(files_);
  if (dir_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
  if (ec) AMP_LOG_WARNING("rproc qemu: removing %s: %s", dir_.c_str(), ec.message().c_str());
  dir_.clear();
}

std::string QemuProcess::output(std::size_t max) const {
  return tail_of(output_.get(), max);
}

std::string QemuProcess::output_since_ready(std::size_t max) const {
  return tail_of(output_.get(), max, ready_mark_.load(std::memory_order_acquire));
}

std::string QemuProcess::console(std::size_t max) const {
  std::lock_guard lock(console_mutex_);
  return console_tail_.size() > max ? console_tail_.substr(console_tail_.size() - max) : console_tail_;
}

void QemuProcess::start_console_reader(metal::UnixSocket socket) {
  console_socket_.emplace(std::move(socket));
  const int fd = console_socket_->fd();
  console_reader_ = std::thread([this, fd] {
    // Until QEMU closes its end (it ended) or the destructor shuts ours down. Only the last
    // kConsoleTail bytes are kept.
    char buf[4096];
    for (;;) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      std::lock_guard lock(console_mutex_);
      console_tail_.append(buf, static_cast<std::size_t>(n));
      if (console_tail_.size() > 2 * kConsoleTail)
        console_tail_.erase(0, console_tail_.size() - kConsoleTail);
    }
  });
}

QemuProcess::~QemuProcess() {
  if (pid_ > 0 && !ended()) {
    kill();
    (void)reap();
  }
  if (console_socket_) ::shutdown(console_socket_->fd(), SHUT_RDWR);
  if (console_reader_.joinable()) console_reader_.join();
  remove_files();
}

}  // namespace amp::rproc
