// SPDX-License-Identifier: BSD-3-Clause
// `ampctl run FIRMWARE --vhost-user SOCKET`: the services a remote announces to ampctl, served to a virtual
// machine's kernel over vhost-user (rpmsg::VhostUserServer). For each service the remote announces, a
// relay: an endpoint on the host's rpmsg device bound to the remote's, and an endpoint of the same name on
// the VM's device, announced to the VM's kernel (so a service named rpmsg-raw becomes /dev/rpmsgN there).
// What the VM sends goes to the remote; what the remote sends back goes to whoever in the VM last wrote.
// Remote links and VM sessions come and go independently; a relay lives while its service does (until the
// remote withdraws it, announces it again or its link goes down), and its VM end while a VM session does.
//
// Thread-safety: remote_service() and remote_gone() are called on the remote's device thread (its name
// service handler and link-down), the VM's callbacks on the server's thread. Changes of the relays are
// serialised by one mutex; a forward holds a shared_mutex shared while it uses the other side's endpoint,
// and a change takes it exclusively only to mark that side closed, never while it destroys an endpoint
// (a destroy waits for the endpoint's running callback, which may be waiting for that lock).
#pragma once

#include <list>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>

#include "amp/rpmsg/device.hpp"
#include "amp/rpmsg/linux/vhost_user_server.hpp"

namespace ampctl {

class VhostUserBridge {
 public:
  /// Listens at `socket` (dies with the reason when it cannot). `json`: events as JSON lines on stdout.
  VhostUserBridge(const std::string& socket, bool json);
  ~VhostUserBridge();
  VhostUserBridge(const VhostUserBridge&) = delete;
  VhostUserBridge& operator=(const VhostUserBridge&) = delete;

  /// The remote announced `name` at `addr` on `host` (the host's rpmsg device, driver role).
  void remote_service(amp::rpmsg::Device& host, std::string_view name, std::uint32_t addr);
  /// The remote's link went down (its device stopped): its services go, in the VM too.
  void remote_gone();
  /// Stops serving the VM (the destructor does it too).
  void stop();

 private:
  struct Relay;
  void vm_ready(amp::rpmsg::Device& vm);
  void vm_gone();
  void open_vm_end(Relay& r);  // changes_ held, vm_ set
  void close_relay(Relay& r);  // changes_ held: both ends closed, the VM's withdrawn
  void event(const char* kind, const std::string& name, const std::string& line);

  bool json_;
  std::mutex changes_;   // relays_, vm_, creating and destroying endpoints
  std::shared_mutex m_;  // the relays' open flags: shared by a forward, exclusive to close
  std::list<Relay> relays_;
  amp::rpmsg::Device* vm_ = nullptr;  // the VM's device while a session runs
  std::unique_ptr<amp::rpmsg::VhostUserServer> server_;
};

}  // namespace ampctl
