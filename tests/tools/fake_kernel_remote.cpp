// SPDX-License-Identifier: BSD-3-Clause
// For the `ampctl run --driver sysfs` test: the kernel's remoteproc and the remote core, faked. Watches a
// fake /sys/class/remoteproc/<node>/state; on "start" it does the part of loading that matters here (copies
// the firmware's .resource_table to its address in the fake UIO memory file), reports "running", and runs the
// remote: rpmsg in the virtio device role over the file, polling its rings, serving "amp-echo". On "stop" it
// exits 0; after 30 s of either waiting it gives up (exit 1).
//   fake_kernel_remote SYS_DIR FIRMWARE_DIR NODE MEMORY_FILE BASE SIZE
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "amp/metal/linux/shared_memory.hpp"
#include "amp/rpmsg/device.hpp"
#include "amp/rproc/elf.hpp"
#include "amp/virtio/rsc_vdev.hpp"

namespace {

using namespace std::chrono_literals;

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

bool wait_state(const std::string& state_file, const std::string& want) {
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (read_text(state_file) != want) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

int fail(const std::string& what) {
  std::fprintf(stderr, "fake_kernel_remote: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 7) return fail("usage: SYS_DIR FIRMWARE_DIR NODE MEMORY_FILE BASE SIZE");
  const std::string rproc = std::string(argv[1]) + "/class/remoteproc/" + argv[3];
  const std::string firmware_dir = argv[2];
  const std::uint64_t base = std::strtoull(argv[5], nullptr, 0);
  const std::size_t size = std::strtoull(argv[6], nullptr, 0);
  if (!wait_state(rproc + "/state", "start")) return fail("nobody started the remote");

  // "Load": the resource table goes where the ELF says.
  const std::string fw_path = firmware_dir + "/" + read_text(rproc + "/firmware");
  std::ifstream fw_in(fw_path, std::ios::binary);
  const std::vector<char> chars((std::istreambuf_iterator<char>(fw_in)), std::istreambuf_iterator<char>());
  const auto fw = std::as_bytes(std::span(chars));
  auto image = amp::rproc::ElfImage::parse(fw);
  if (!image) return fail(fw_path + ": " + amp::rproc::to_string(image.error()));
  auto rsc = image->resource_table();
  if (!rsc) return fail(fw_path + ": no resource table");
  auto mem = amp::metal::shm::open_file(argv[4], size, 0, amp::metal::OpenMode::kOpen, base);
  if (!mem) return fail(mem.error().message);
  auto at = mem->region().offset_of(rsc->da, rsc->data.size());
  if (!at || !ok(mem->region().write(*at, rsc->data))) return fail("the table is outside the memory");
  std::ofstream(rproc + "/state", std::ios::trunc) << "running\n";

  // The remote core.
  auto table = mem->region().subregion(*at, rsc->data.size());
  auto body = amp::virtio::find_vdev(*table);
  if (!body) return fail("no vdev");
  auto transport = amp::virtio::RscVdevTransport::open(*body);
  if (!transport) return fail("bad vdev");
  class NoKick final : public amp::rpmsg::Notifier {
    amp::Status notify(std::uint32_t) noexcept override { return amp::Status::kOk; }
  } no_kick;
  amp::rpmsg::DeviceConfig dc;
  dc.role = amp::rpmsg::Role::kDevice;
  dc.shm = mem->region();
  dc.transport = &*transport;
  dc.notifier = &no_kick;
  dc.notify_peer = false;  // the host polls
  dc.wait_mode = amp::rpmsg::WaitMode::kSpin;
  dc.start_timeout_ns = 30'000'000'000;
  auto storage = std::make_unique<amp::rpmsg::DeviceStorage<256>>();
  amp::rpmsg::Device dev;
  if (const amp::Status s = dev.start(dc, *storage); !ok(s))
    return fail(std::string("start: ") + amp::to_string(s));
  amp::rpmsg::Endpoint echo;
  if (!ok(dev.create_endpoint(echo, "amp-echo", amp::rpmsg::kAddrAny, amp::rpmsg::kAddrAny,
                              [](amp::rpmsg::Endpoint& ep, const amp::rpmsg::Message& m) {
                                (void)ep.send_to(m.src, m.payload, 1'000'000'000);
                              }))) {
    return fail("endpoint");
  }
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  std::uint64_t turn = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (dev.process() == amp::Status::kBroken) return fail("the host broke the rings");
    if (++turn % 256 == 0) {
      if (read_text(rproc + "/state") == "stop") {
        echo.destroy();
        dev.stop();
        return 0;
      }
      std::this_thread::sleep_for(20us);
    }
  }
  return fail("nobody stopped the remote");
}
