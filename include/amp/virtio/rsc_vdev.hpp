// SPDX-License-Identifier: BSD-3-Clause
// The resource-table transport: a remoteproc resource table's `vdev` entry (type 3) in shared memory holds
// the device id, notify id, device and driver features, status, the vrings and the config space.
//
//   fw_rsc_vdev (after the entry's le32 type):
//     0 id  4 notifyid  8 dfeatures  12 gfeatures  16 config_len  20 status(u8)  21 num_of_vrings(u8)
//     22 reserved[2]  24 vring[num_of_vrings] {da, align, num, notifyid, pa} (5 x le32)  then config bytes
//
// Thread-safety: see Transport (RscVdev likewise: one thread at a time). The entry is shared with the peer:
// counts and lengths that bound later accesses (num_of_vrings, config_len) are read once, at creation, and
// checked against the region.
#pragma once

#include "amp/virtio/transport.hpp"

namespace amp::virtio {

inline constexpr std::uint32_t kRscVdev = 3;  ///< Resource-table entry type of a vdev.
inline constexpr std::size_t kVdevHeaderSize = 24;
inline constexpr std::size_t kVdevVringSize = 20;
/// A vring `da` of this value asks the host to allocate the ring.
inline constexpr std::uint32_t kRscAddrAny = 0xFFFFFFFF;

/// Offsets within a vdev entry body (after the le32 type).
namespace vdev {
inline constexpr std::size_t kId = 0;
inline constexpr std::size_t kNotifyId = 4;
inline constexpr std::size_t kDeviceFeatures = 8;
inline constexpr std::size_t kDriverFeatures = 12;
inline constexpr std::size_t kConfigLen = 16;
inline constexpr std::size_t kStatus = 20;
inline constexpr std::size_t kNumVrings = 21;
inline constexpr std::size_t kVrings = 24;
inline constexpr std::size_t kVringDa = 0;
inline constexpr std::size_t kVringAlign = 4;
inline constexpr std::size_t kVringNum = 8;
inline constexpr std::size_t kVringNotifyId = 12;
inline constexpr std::size_t kVringPa = 16;
}  // namespace vdev

/// The vdev entry itself, with no virtual functions: what a remote that reads its own resource table links
/// (rpmsg::LiteDevice takes one). RscVdevTransport puts it behind the Transport interface.
class RscVdev {
 public:
  RscVdev() = default;

  /// Over `body`, the vdev entry without its type word (it may extend to the end of the table; only what
  /// the entry declares is used). kMalformed when the declared vrings and config do not fit.
  [[nodiscard]] static Result<RscVdev> open(const metal::IoRegion& body) noexcept;

  /// Writes a fresh vdev entry body into `body` (for the side that lays out the table).
  struct Spec {
    std::uint32_t id = 0;
    std::uint32_t notify_id = 0;
    std::uint32_t device_features = 0;
    std::uint32_t config_len = 0;
    std::span<const QueueInfo> vrings{};
    /// The config space's first bytes (the rest of config_len is zeroed); at most config_len of them.
    std::span<const std::byte> config{};
  };
  [[nodiscard]] static Status write(const metal::IoRegion& body, const Spec& spec) noexcept;
  /// Bytes a vdev body with `vrings` rings and `config_len` bytes of config takes.
  static constexpr std::size_t body_size(std::size_t vrings, std::size_t config_len) noexcept {
    return kVdevHeaderSize + kVdevVringSize * vrings + config_len;
  }

  std::uint32_t device_id() const noexcept;
  std::uint32_t notify_id() const noexcept;
  std::uint8_t status() const noexcept;
  void set_status(std::uint8_t status) noexcept;
  std::uint64_t device_features() const noexcept;
  std::uint64_t driver_features() const noexcept;
  void set_driver_features(std::uint64_t features) noexcept;
  std::uint32_t queue_count() const noexcept { return num_vrings_; }
  [[nodiscard]] Result<QueueInfo> queue(std::uint32_t index) const noexcept;
  [[nodiscard]] Status set_queue_address(std::uint32_t index, metal::DeviceAddress da) noexcept;
  [[nodiscard]] Status read_config(std::size_t offset, std::span<std::byte> out) const noexcept;
  [[nodiscard]] Status write_config(std::size_t offset, std::span<const std::byte> in) noexcept;

 private:
  metal::IoRegion body_{};
  std::uint32_t num_vrings_ = 0;
  std::uint32_t config_len_ = 0;
};

/// An RscVdev behind the Transport interface, for rpmsg::Device and the host's side.
class RscVdevTransport final : public Transport, public RscVdev {
 public:
  RscVdevTransport() = default;
  explicit RscVdevTransport(const RscVdev& vdev) noexcept : RscVdev(vdev) {}

  /// As RscVdev::open.
  [[nodiscard]] static Result<RscVdevTransport> open(const metal::IoRegion& body) noexcept {
    auto v = RscVdev::open(body);
    if (!v) return fail(v.error());
    return RscVdevTransport(*v);
  }

  std::uint32_t device_id() const noexcept override { return RscVdev::device_id(); }
  std::uint8_t status() const noexcept override { return RscVdev::status(); }
  void set_status(std::uint8_t status) noexcept override { RscVdev::set_status(status); }
  std::uint64_t device_features() const noexcept override { return RscVdev::device_features(); }
  std::uint64_t driver_features() const noexcept override { return RscVdev::driver_features(); }
  void set_driver_features(std::uint64_t features) noexcept override {
    RscVdev::set_driver_features(features);
  }
  std::uint32_t queue_count() const noexcept override { return RscVdev::queue_count(); }
  [[nodiscard]] Result<QueueInfo> queue(std::uint32_t index) const noexcept override {
    return RscVdev::queue(index);
  }
  [[nodiscard]] Status set_queue_address(std::uint32_t index, metal::DeviceAddress da) noexcept override {
    return RscVdev::set_queue_address(index, da);
  }
  [[nodiscard]] Status read_config(std::size_t offset, std::span<std::byte> out) const noexcept override {
    return RscVdev::read_config(offset, out);
  }
  [[nodiscard]] Status write_config(std::size_t offset, std::span<const std::byte> in) noexcept override {
    return RscVdev::write_config(offset, in);
  }
};

/// The resource table's header: le32 ver (1); le32 num; le32 reserved[2]; le32 offset[num].
inline constexpr std::size_t kRscTableHeaderSize = 16;
inline constexpr std::uint32_t kRscTableVersion = 1;

/// Finds the `index`-th vdev entry of the resource table in `table` and returns its body (after the type
/// word), up to the next entry or the table's end. Every count and offset is checked against `table`:
/// kMalformed for a bad version, a count or offset outside the table, or a misaligned entry; kNotFound when
/// there are fewer vdevs.
[[nodiscard]] Result<metal::IoRegion> find_vdev(const metal::IoRegion& table,
                                                std::uint32_t index = 0) noexcept;

/// Writes a resource table holding exactly one vdev entry (what a two-process link needs): header, one
/// offset, then the entry. Returns the vdev body region. The table takes
/// kRscTableHeaderSize + 4 + 4 + RscVdev::body_size(...) bytes.
[[nodiscard]] Result<metal::IoRegion> write_single_vdev_table(const metal::IoRegion& table,
                                                              const RscVdev::Spec& spec) noexcept;

}  // namespace amp::virtio
