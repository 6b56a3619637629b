// SPDX-License-Identifier: BSD-3-Clause
// What the qemu end-to-end tests share: reading images, CPU time of a process, and Client, the host's side
// of the firmware's services on the current rpmsg device.
#pragma once

#include <sys/resource.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fstream>
#include <iterator>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "amp/rpmsg/device.hpp"

namespace amp::rproc::qemu_test {

using namespace std::chrono_literals;

inline std::vector<std::byte> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(bytes.size());
  std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

inline std::string text_of(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

inline std::chrono::microseconds cpu_of_self() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return std::chrono::seconds(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         std::chrono::microseconds(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

inline std::chrono::microseconds cpu_of_process(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return {};
  std::istringstream rest(stat.substr(close + 2));
  std::string field;
  long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoll(field);
    if (i == 15) stime = std::stoll(field);
  }
  return std::chrono::microseconds((utime + stime) * 1'000'000 / ::sysconf(_SC_CLK_TCK));
}

/// The host's side of the services, per rpmsg device: what the firmware announced, an endpoint per
/// service used, the replies. Rebuilt at every link-up; a link-down ends waits at once.
class Client {
 public:
  void up(rpmsg::Device& dev) {
    {
      std::lock_guard lock(m_);
      dev_ = &dev;
      down_ = false;
      services_.clear();
      ++ups_;
    }
    // Without m_: announcements that came before are replayed to the handler right here.
    dev.set_name_service_handler([this](rpmsg::Device&, std::string_view name, std::uint32_t addr) {
      std::lock_guard l(m_);
      services_[std::string(name)] = addr;
      cv_.notify_all();
    });
  }
  void down(rpmsg::Device&) {
    {
      std::lock_guard lock(m_);
      down_ = true;
      cv_.notify_all();
    }
    std::lock_guard using_link(using_);  // an exchange in progress ends first
    std::lock_guard lock(m_);
    endpoints_.clear();  // destroys them
    dev_ = nullptr;
    services_.clear();
    replies_.clear();
  }
  int ups() {
    std::lock_guard lock(m_);
    return ups_;
  }

  bool has_service(const std::string& name) {
    std::lock_guard lock(m_);
    return services_.count(name) != 0;
  }
  /// The service's address once announced on the current link.
  std::optional<std::uint32_t> wait_service(const std::string& name,
                                            std::chrono::milliseconds timeout = 10s) {
    std::unique_lock lock(m_);
    if (!cv_.wait_for(lock, timeout, [&] { return services_.count(name) != 0 || down_; }) || down_) return {};
    return services_[name];
  }

  /// Sends `payload` to `service` and waits for one reply.
  std::optional<std::vector<std::byte>> exchange(const std::string& service,
                                                 std::span<const std::byte> payload,
                                                 std::chrono::milliseconds timeout = 5s) {
    const auto addr = wait_service(service);
    if (!addr) return {};
    std::lock_guard using_link(using_);
    rpmsg::Endpoint* ep = nullptr;
    {
      std::lock_guard lock(m_);
      if (dev_ == nullptr || down_) return {};
      auto it = endpoints_.find(service);
      if (it == endpoints_.end()) {
        it = endpoints_.try_emplace(service).first;
        const Status s = dev_->create_endpoint(
            it->second, "", rpmsg::kAddrAny, *addr, [this](rpmsg::Endpoint&, const rpmsg::Message& msg) {
              std::lock_guard l(m_);
              replies_.emplace_back(msg.payload.begin(), msg.payload.end());
              cv_.notify_all();
            });
        if (!ok(s)) {
          endpoints_.erase(it);
          ADD_FAILURE() << "create_endpoint: " << to_string(s);
          return {};
        }
      }
      ep = &it->second;
      replies_.clear();
    }
    if (const Status s = ep->send(payload, 1'000'000'000); !ok(s)) return {};
    std::unique_lock lock(m_);
    if (!cv_.wait_for(lock, timeout, [&] { return !replies_.empty() || down_; }) || replies_.empty())
      return {};
    std::vector<std::byte> reply = std::move(replies_.front());
    replies_.pop_front();
    return reply;
  }
  std::uint32_t mtu() {
    std::lock_guard lock(m_);
    return dev_ != nullptr ? dev_->payload_size() : 0;
  }

 private:
  std::mutex using_;  // held while an exchange uses the link; link-down waits for it
  std::mutex m_;
  std::condition_variable cv_;
  rpmsg::Device* dev_ = nullptr;
  bool down_ = true;
  int ups_ = 0;
  std::map<std::string, std::uint32_t> services_;
  std::map<std::string, rpmsg::Endpoint> endpoints_;
  std::deque<std::vector<std::byte>> replies_;
};

}  // namespace amp::rproc::qemu_test
