// SPDX-License-Identifier: BSD-3-Clause
#include "vhost_user_bridge.hpp"

#include <atomic>
#include <cstdio>
#include <mutex>

#include "cli.hpp"
#include "text.hpp"

namespace ampctl {

using amp::Status;
using amp::rpmsg::Device;
using amp::rpmsg::Endpoint;
using amp::rpmsg::Message;

namespace {
constexpr std::uint64_t kForwardTimeoutNs = 1'000'000'000;
}

struct VhostUserBridge::Relay {
  std::string name;
  Endpoint to_remote;                                        // on the host's device
  Endpoint to_vm;                                            // on the VM's device, while a session runs
  bool remote_open = false;                                  // guarded by m_: to_remote may be used
  bool vm_open = false;                                      // guarded by m_: to_vm may be used
  std::atomic<std::uint32_t> vm_peer{amp::rpmsg::kAddrAny};  // who in the VM wrote last
  bool withdrawn = false;                                    // guarded by changes_: the remote withdrew it
};

VhostUserBridge::VhostUserBridge(const std::string& socket, bool json) : json_(json) {
  amp::rpmsg::VhostUserServerConfig cfg;
  cfg.socket_path = socket;
  amp::rpmsg::VhostUserServer::Callbacks cb;
  cb.on_ready = [this](Device& vm) { vm_ready(vm); };
  cb.on_gone = [this](Device&) { vm_gone(); };
  cb.on_disconnected = [this](const std::string& why) {
    if (!why.empty()) event("vm-dropped", why, "the VM's front end was dropped: " + why);
  };
  auto server = amp::rpmsg::VhostUserServer::listen(cfg, std::move(cb));
  if (!server) die(server.error().message);
  server_ = std::move(*server);
  event("vm-listening", socket,
        "serving the remote's services to a VM: vhost-user virtio-rpmsg at " + socket);
}

VhostUserBridge::~VhostUserBridge() {
  stop();
}

void VhostUserBridge::stop() {
  if (server_) server_->stop();  // ends a VM session: vm_gone() runs
}

void VhostUserBridge::event(const char* kind, const std::string& name, const std::string& line) {
  if (json_) {
    Json j;
    j["event"] = kind;
    j["name"] = json_bytes(name);
    print_json(j);
  } else {
    std::fprintf(stderr, "ampctl run: %s\n", printable(line).c_str());
  }
}

void VhostUserBridge::open_vm_end(Relay& r) {
  const Status s = vm_->create_endpoint(r.to_vm, r.name, amp::rpmsg::kAddrAny, amp::rpmsg::kAddrAny,
                                        [this, &r](Endpoint&, const Message& m) {
                                          r.vm_peer.store(m.src, std::memory_order_relaxed);
                                          std::shared_lock lock(m_);
                                          if (r.remote_open)
                                            (void)r.to_remote.send(m.payload, kForwardTimeoutNs);
                                        });
  if (!ok(s)) {
    event("vm-error", r.name, "announcing '" + r.name + "' to the VM: " + amp::to_string(s));
    return;
  }
  {
    std::unique_lock lock(m_);
    r.vm_open = true;
  }
  event("vm-service", r.name, "'" + r.name + "' announced to the VM");
}

void VhostUserBridge::close_relay(Relay& r) {
  {
    std::unique_lock lock(m_);
    r.remote_open = r.vm_open = false;
  }
  r.to_vm.destroy();  // withdrawn from the VM
  r.withdrawn = true;
}

void VhostUserBridge::remote_service(Device& host, std::string_view name, std::uint32_t addr) {
  std::lock_guard changing(changes_);
  // A service announced again (at another address: the remote moved it) replaces the old relay, and a
  // withdrawn one is forgotten, so the VM sees each name once and the list does not grow.
  for (auto it = relays_.begin(); it != relays_.end();) {
    if (it->name == name || it->withdrawn) {
      if (!it->withdrawn) close_relay(*it);
      it = relays_.erase(it);
    } else {
      ++it;
    }
  }
  Relay& r = relays_.emplace_back();
  r.name = std::string(name);
  // Bound to the remote's endpoint and named like it (so that its withdrawal unbinds it), not announced:
  // the remote learns this address from the first message.
  const Status s = host.create_endpoint(
      r.to_remote, r.name, amp::rpmsg::kAddrAny, addr,
      [this, &r](Endpoint&, const Message& m) {
        std::shared_lock lock(m_);
        const std::uint32_t peer = r.vm_peer.load(std::memory_order_relaxed);
        if (r.vm_open && peer != amp::rpmsg::kAddrAny)
          (void)r.to_vm.send_to(peer, m.payload, kForwardTimeoutNs);
      },
      [this, &r, &host](Endpoint&) {
        if (!host.running()) return;  // the link goes down: remote_gone() closes everything
        // The remote withdrew the service (on the host's thread, in its name-service handling).
        std::lock_guard changing_now(changes_);
        close_relay(r);
        event("vm-withdrawn", r.name, "'" + r.name + "' withdrawn by the remote, and from the VM");
      });
  if (!ok(s)) {
    relays_.pop_back();
    event("vm-error", std::string(name), "relaying '" + std::string(name) + "': " + amp::to_string(s));
    return;
  }
  {
    std::unique_lock lock(m_);
    r.remote_open = true;
  }
  if (vm_ != nullptr) open_vm_end(r);
}

void VhostUserBridge::remote_gone() {
  std::lock_guard changing(changes_);
  {
    std::unique_lock lock(m_);
    for (Relay& r : relays_) r.remote_open = r.vm_open = false;
  }
  relays_.clear();  // the endpoints go: withdrawn from the VM, and the host's device is stopped already
}

void VhostUserBridge::vm_ready(Device& vm) {
  std::lock_guard changing(changes_);
  vm_ = &vm;
  for (Relay& r : relays_) {
    if (!r.withdrawn) open_vm_end(r);
  }
}

void VhostUserBridge::vm_gone() {
  std::lock_guard changing(changes_);
  {
    std::unique_lock lock(m_);
    for (Relay& r : relays_) r.vm_open = false;
  }
  for (Relay& r : relays_) {
    r.to_vm.destroy();
    r.vm_peer.store(amp::rpmsg::kAddrAny, std::memory_order_relaxed);
  }
  vm_ = nullptr;
}

}  // namespace ampctl
