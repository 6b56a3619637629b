// SPDX-License-Identifier: BSD-3-Clause
#include "amp/virtio/rsc_vdev.hpp"

namespace amp::virtio {

Result<RscVdev> RscVdev::open(const metal::IoRegion& body) noexcept {
  auto num = body.load<std::uint8_t>(vdev::kNumVrings, std::memory_order_acquire);
  auto config_len = body.load<std::uint32_t>(vdev::kConfigLen, std::memory_order_relaxed);
  if (!num || !config_len) return fail(Status::kMalformed);
  const std::uint8_t vrings = *num;
  const std::uint32_t config = *config_len;
  const std::uint64_t needed = kVdevHeaderSize + std::uint64_t{kVdevVringSize} * vrings + config;
  if (needed > body.size()) return fail(Status::kMalformed);
  RscVdev t;
  t.body_ = *body.subregion(0, static_cast<std::size_t>(needed));
  t.num_vrings_ = vrings;
  t.config_len_ = config;
  return t;
}

Status RscVdev::write(const metal::IoRegion& body, const Spec& spec) noexcept {
  if (spec.vrings.size() > 255 || spec.config.size() > spec.config_len) return Status::kInvalidArgument;
  const std::size_t size = body_size(spec.vrings.size(), spec.config_len);
  AMP_RETURN_IF_ERROR(body.fill(0, std::byte{0}, size));
  AMP_RETURN_IF_ERROR(body.store<std::uint32_t>(vdev::kId, spec.id, std::memory_order_relaxed));
  AMP_RETURN_IF_ERROR(body.store<std::uint32_t>(vdev::kNotifyId, spec.notify_id, std::memory_order_relaxed));
  AMP_RETURN_IF_ERROR(
      body.store<std::uint32_t>(vdev::kDeviceFeatures, spec.device_features, std::memory_order_relaxed));
  AMP_RETURN_IF_ERROR(
      body.store<std::uint32_t>(vdev::kConfigLen, spec.config_len, std::memory_order_relaxed));
  for (std::size_t i = 0; i < spec.vrings.size(); ++i) {
    const QueueInfo& q = spec.vrings[i];
    if (q.da > 0xFFFFFFFFU) return Status::kOutOfRange;  // the table holds 32-bit device addresses
    const std::size_t v = vdev::kVrings + kVdevVringSize * i;
    AMP_RETURN_IF_ERROR(body.store<std::uint32_t>(v + vdev::kVringDa, static_cast<std::uint32_t>(q.da),
                                                  std::memory_order_relaxed));
    AMP_RETURN_IF_ERROR(body.store<std::uint32_t>(v + vdev::kVringAlign, q.align, std::memory_order_relaxed));
    AMP_RETURN_IF_ERROR(body.store<std::uint32_t>(v + vdev::kVringNum, q.num, std::memory_order_relaxed));
    AMP_RETURN_IF_ERROR(
        body.store<std::uint32_t>(v + vdev::kVringNotifyId, q.notify_id, std::memory_order_relaxed));
  }
  if (!spec.config.empty()) {
    AMP_RETURN_IF_ERROR(body.write(kVdevHeaderSize + kVdevVringSize * spec.vrings.size(), spec.config));
  }
  // Publish the ring count last, so a reader that sees it sees the rest.
  return body.store<std::uint8_t>(vdev::kNumVrings, static_cast<std::uint8_t>(spec.vrings.size()),
                                  std::memory_order_release);
}

std::uint32_t RscVdev::device_id() const noexcept {
  return body_.load<std::uint32_t>(vdev::kId, std::memory_order_relaxed).value_or(0);
}

std::uint32_t RscVdev::notify_id() const noexcept {
  return body_.load<std::uint32_t>(vdev::kNotifyId, std::memory_order_relaxed).value_or(0);
}

std::uint8_t RscVdev::status() const noexcept {
  return body_.load<std::uint8_t>(vdev::kStatus, std::memory_order_acquire).value_or(0);
}

void RscVdev::set_status(std::uint8_t status) noexcept {
  (void)body_.store<std::uint8_t>(vdev::kStatus, status, std::memory_order_release);
}

std::uint64_t RscVdev::device_features() const noexcept {
  return body_.load<std::uint32_t>(vdev::kDeviceFeatures, std::memory_order_relaxed).value_or(0);
}

std::uint64_t RscVdev::driver_features() const noexcept {
  return body_.load<std::uint32_t>(vdev::kDriverFeatures, std::memory_order_acquire).value_or(0);
}

void RscVdev::set_driver_features(std::uint64_t features) noexcept {
  (void)body_.store<std::uint32_t>(vdev::kDriverFeatures, static_cast<std::uint32_t>(features),
                                   std::memory_order_release);
}

Result<QueueInfo> RscVdev::queue(std::uint32_t index) const noexcept {
  if (index >= num_vrings_) return fail(Status::kNotFound);
  const std::size_t v = vdev::kVrings + kVdevVringSize * index;
  auto da = body_.load<std::uint32_t>(v + vdev::kVringDa, std::memory_order_acquire);
  auto align = body_.load<std::uint32_t>(v + vdev::kVringAlign, std::memory_order_relaxed);
  auto num = body_.load<std::uint32_t>(v + vdev::kVringNum, std::memory_order_relaxed);
  auto notify = body_.load<std::uint32_t>(v + vdev::kVringNotifyId, std::memory_order_relaxed);
  if (!da || !align || !num || !notify) return fail(Status::kMalformed);
  const std::uint32_t addr = *da;
  return QueueInfo{addr == kRscAddrAny ? metal::kAnyAddress : metal::DeviceAddress{addr}, *align, *num,
                   *notify};
}

Status RscVdev::set_queue_address(std::uint32_t index, metal::DeviceAddress da) noexcept {
  if (index >= num_vrings_) return Status::kNotFound;
  if (da >= kRscAddrAny) return Status::kOutOfRange;
  const std::size_t v = vdev::kVrings + kVdevVringSize * index;
  return body_.store<std::uint32_t>(v + vdev::kVringDa, static_cast<std::uint32_t>(da),
                                    std::memory_order_release);
}

Status RscVdev::read_config(std::size_t offset, std::span<std::byte> out) const noexcept {
  if (offset > config_len_ || out.size() > config_len_ - offset) return Status::kOutOfRange;
  return body_.read(kVdevHeaderSize + kVdevVringSize * num_vrings_ + offset, out);
}

Status RscVdev::write_config(std::size_t offset, std::span<const std::byte> in) noexcept {
  if (offset > config_len_ || in.size() > config_len_ - offset) return Status::kOutOfRange;
  return body_.write(kVdevHeaderSize + kVdevVringSize * num_vrings_ + offset, in);
}

Result<metal::IoRegion> find_vdev(const metal::IoRegion& table, std::uint32_t index) noexcept {
  auto ver = table.load<std::uint32_t>(0, std::memory_order_acquire);
  auto num = table.load<std::uint32_t>(4, std::memory_order_relaxed);
  if (!ver || !num || *ver != kRscTableVersion) return fail(Status::kMalformed);
  const std::uint32_t entries = *num;
  const std::uint64_t offsets_end = kRscTableHeaderSize + 4ULL * entries;
  if (offsets_end > table.size()) return fail(Status::kMalformed);
  std::uint32_t seen = 0;
  for (std::uint32_t i = 0; i < entries; ++i) {
    const std::uint32_t off =
        *table.load<std::uint32_t>(kRscTableHeaderSize + 4 * std::size_t{i}, std::memory_order_relaxed);
    if (off < offsets_end || off % 4 != 0 || std::uint64_t{off} + 4 > table.size())
      return fail(Status::kMalformed);
    const std::uint32_t type = *table.load<std::uint32_t>(off, std::memory_order_relaxed);
    if (type != kRscVdev) continue;
    if (seen++ != index) continue;
    return table.subregion(off + 4, table.size() - off - 4);
  }
  return fail(Status::kNotFound);
}

Result<metal::IoRegion> write_single_vdev_table(const metal::IoRegion& table,
                                                const RscVdev::Spec& spec) noexcept {
  constexpr std::size_t kEntry = kRscTableHeaderSize + 4;
  const std::size_t body = RscVdev::body_size(spec.vrings.size(), spec.config_len);
  auto region = table.subregion(kEntry + 4, body);
  if (!region) return region;
  if (const Status s = table.fill(0, std::byte{0}, kEntry + 4 + body); !ok(s)) return fail(s);
  (void)table.store<std::uint32_t>(4, 1, std::memory_order_relaxed);
  (void)table.store<std::uint32_t>(kRscTableHeaderSize, kEntry, std::memory_order_relaxed);
  (void)table.store<std::uint32_t>(kEntry, kRscVdev, std::memory_order_relaxed);
  if (const Status s = RscVdev::write(*region, spec); !ok(s)) return fail(s);
  // The version last: a reader that sees a valid table sees all of it.
  (void)table.store<std::uint32_t>(0, kRscTableVersion, std::memory_order_release);
  return region;
}

}  // namespace amp::virtio
