// SPDX-License-Identifier: BSD-3-Clause
#include "amp/rproc/linux/sysfs.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "amp/metal/linux/device.hpp"
#include "amp/metal/linux/unique_fd.hpp"
#include "amp/metal/log.hpp"

namespace amp::rproc {

using metal::sys_fail;
using metal::SysError;
using metal::SysResult;

namespace {

std::filesystem::path class_dir(const SysfsRoots& roots) {
  return roots.sys / "class" / "remoteproc";
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

SysResult<std::string> read_file(const std::filesystem::path& p) {
  auto text = metal::read_sysfs_file(p);
  if (!text) return Unexpected<metal::SysError>(std::move(text).error());
  return trimmed(std::move(*text));
}

}  // namespace

SysResult<State> parse_kernel_state(std::string_view text) {
  static constexpr std::pair<std::string_view, State> kStates[] = {
      {"offline", State::kOffline},   {"running", State::kRunning},   {"crashed", State::kCrashed},
      {"attached", State::kAttached}, {"detached", State::kDetached},
  };
  for (const auto& [name, state] : kStates) {
    if (text == name) return state;
  }
  return sys_fail(Status::kNotSupported,
                  "remoteproc state '" + std::string(text) + "' is not one amp handles");
}

std::vector<std::string> SysfsRemoteproc::list(const SysfsRoots& roots) {
  std::vector<std::pair<unsigned long, std::string>> found;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(class_dir(roots), ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("remoteproc", 0) != 0 || n.size() == 10) continue;
    const std::string digits = n.substr(10);
    if (digits.size() > 9 ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      continue;
    }
    found.emplace_back(std::stoul(digits), n);
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(std::move(f.second));
  return out;
}

SysResult<void> SysfsRemoteproc::available(const SysfsRoots& roots) {
  std::error_code ec;
  if (!std::filesystem::is_directory(class_dir(roots), ec)) {
    return sys_fail(Status::kNotFound, "no remote processors: " + class_dir(roots).string() +
                                           " does not exist (is a remoteproc driver loaded?)");
  }
  return {};
}

SysResult<SysfsRemoteproc> SysfsRemoteproc::open(std::string_view node_or_name, const SysfsRoots& roots) {
  if (auto a = available(roots); !a) return Unexpected<SysError>(a.error());
  SysfsRemoteproc r;
  r.firmware_dir_ = roots.firmware_dir;
  const std::vector<std::string> nodes = list(roots);
  for (const std::string& n : nodes) {
    const auto p = class_dir(roots) / n;
    auto name = read_file(p / "name");
    if (n == node_or_name || (name && *name == node_or_name)) {
      r.node_ = n;
      r.path_ = p;
      return r;
    }
  }
  std::string known;
  for (const std::string& n : nodes) known += (known.empty() ? "" : ", ") + n;
  return sys_fail(Status::kNotFound, "remote processor '" + std::string(node_or_name) + "' not found in " +
                                         class_dir(roots).string() +
                                         (known.empty() ? " (none there)" : " (there: " + known + ")"));
}

SysResult<std::string> SysfsRemoteproc::read_attr(std::string_view attr) const {
  return read_file(path_ / attr);
}

SysResult<void> SysfsRemoteproc::write_attr(std::string_view attr, std::string_view value) const {
  return metal::write_sysfs_attr(path_ / attr, value);
}

SysResult<std::string> SysfsRemoteproc::name() const {
  return read_attr("name");
}

SysResult<State> SysfsRemoteproc::state() const {
  auto s = read_attr("state");
  if (!s) return Unexpected<SysError>(s.error());
  return parse_kernel_state(*s);
}

SysResult<std::string> SysfsRemoteproc::firmware() const {
  return read_attr("firmware");
}

SysResult<void> SysfsRemoteproc::set_firmware(std::string_view file_name) const {
  if (file_name.empty() || file_name.find('\n') != std::string_view::npos) {
    return sys_fail(Status::kInvalidArgument, "bad firmware file name '" + std::string(file_name) + "'");
  }
  return write_attr("firmware", file_name);
}

SysResult<void> SysfsRemoteproc::install_firmware(std::string_view file_name,
                                                  std::span<const std::byte> image) const {
  if (file_name.empty() || file_name.find('/') != std::string_view::npos) {
    return sys_fail(Status::kInvalidArgument,
                    "firmware file name '" + std::string(file_name) + "' must be a plain name");
  }
  const auto target = firmware_dir_ / std::string(file_name);
  const auto partial = firmware_dir_ / (std::string(file_name) + ".part");
  // Write aside and rename, so the kernel never reads a half-written image.
  {
    metal::UniqueFd fd(::open(partial.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd) return sys_fail("create " + partial.string());
    std::size_t done = 0;
    while (done < image.size()) {
      const ssize_t n = ::write(fd.get(), image.data() + done, image.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        auto err = sys_fail("write " + partial.string());
        ::unlink(partial.c_str());
        return err;
      }
      done += static_cast<std::size_t>(n);
    }
  }
  if (::rename(partial.c_str(), target.c_str()) != 0) {
    auto err = sys_fail("rename " + partial.string() + " to " + target.string());
    ::unlink(partial.c_str());
    return err;
  }
  return set_firmware(file_name);
}

SysResult<void> SysfsRemoteproc::start() const {
  return write_attr("state", "start");
}
SysResult<void> SysfsRemoteproc::stop() const {
  return write_attr("state", "stop");
}
SysResult<void> SysfsRemoteproc::detach() const {
  return write_attr("state", "detach");
}
SysResult<void> SysfsRemoteproc::set_recovery(bool enabled) const {
  return write_attr("recovery", enabled ? "enabled" : "disabled");
}

Status SysfsDriver::report(const SysResult<void>& r) noexcept {
  if (r) {
    last_error_.clear();
    return Status::kOk;
  }
  last_error_ = r.error().message;
  AMP_LOG_ERROR("rproc (sysfs %s): %s", rproc_.node().c_str(), last_error_.c_str());
  return r.error().status;
}

Status SysfsDriver::load(std::span<const std::byte> firmware) noexcept {
  try {
    return report(rproc_.install_firmware("amp-" + rproc_.node() + ".elf", firmware));
  } catch (const std::exception& e) {  // allocation failures in paths and strings: keep the noexcept contract
    last_error_ = e.what();
    return Status::kNoMemory;
  }
}

Status SysfsDriver::start() noexcept {
  return report(rproc_.start());
}
Status SysfsDriver::stop() noexcept {
  return report(rproc_.stop());
}
Status SysfsDriver::detach() noexcept {
  return report(rproc_.detach());
}

Status SysfsDriver::attach() noexcept {
  auto s = rproc_.state();
  if (!s) return report(Unexpected<SysError>(s.error()));
  // The kernel attaches by itself to a remote a bootloader started; a detached one is re-attached by "start".
  if (*s == State::kAttached || *s == State::kRunning) return Status::kOk;
  if (*s == State::kDetached) return report(rproc_.start());
  last_error_ = std::string("remote processor is ") + to_string(*s) + ", not running: nothing to attach to";
  return Status::kBusy;
}

}  // namespace amp::rproc
