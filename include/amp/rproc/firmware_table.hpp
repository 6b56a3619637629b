// SPDX-License-Identifier: BSD-3-Clause
// A resource table a firmware defines at compile time and places in its `.resource_table` section: one
// rpmsg vdev with two vrings, the table every rpmsg firmware for Linux (or amp) carries. Byte for byte what
// Linux's remoteproc and OpenAMP expect (see resource_table.hpp); all fields are little-endian words.
//
//   AMP_RPROC_RESOURCE_TABLE const amp::rproc::RpmsgFirmwareTable amp_resource_table =
//       amp::rproc::rpmsg_firmware_table();
//
// vring da defaults to kRscAddrAny: the host places the vrings (amp and Linux both do); a firmware whose
// vrings must sit at fixed addresses passes them. The host writes the vrings' addresses and notify ids back
// into the copy of the table it shares with the remote; a firmware reads that copy, not this constant.
//
// Thread-safety: plain constant data.
#pragma once

#include <cstddef>
#include <cstdint>

#include "amp/rpmsg/wire.hpp"
#include "amp/rproc/resource_table.hpp"

/// Puts a definition into the `.resource_table` section (kept even when unreferenced).
#define AMP_RPROC_RESOURCE_TABLE __attribute__((used, section(".resource_table"), aligned(8)))

namespace amp::rproc {

/// struct fw_rsc_vdev_vring.
struct FwRscVring {
  std::uint32_t da;
  std::uint32_t align;
  std::uint32_t num;
  std::uint32_t notify_id;
  std::uint32_t pa;
};

/// struct fw_rsc_vdev with its type word and two vrings, no config space.
struct FwRscVdev2 {
  std::uint32_t type;
  std::uint32_t id;
  std::uint32_t notify_id;
  std::uint32_t dfeatures;
  std::uint32_t gfeatures;
  std::uint32_t config_len;
  std::uint8_t status;
  std::uint8_t num_of_vrings;
  std::uint8_t reserved[2];
  FwRscVring vring[2];
};

/// A table with one entry: the rpmsg vdev. vring[0] is the remote's TX (the host's RX), vring[1] its RX.
struct RpmsgFirmwareTable {
  std::uint32_t ver;
  std::uint32_t num;
  std::uint32_t reserved[2];
  std::uint32_t offset[1];
  std::uint32_t pad;  // keeps the vdev 8-byte aligned, as OpenAMP's tables do
  FwRscVdev2 vdev;
};

// The same layout rsc_vdev.hpp reads (offsets in the body, after the type word).
static_assert(offsetof(FwRscVdev2, status) - 4 == virtio::vdev::kStatus);
static_assert(offsetof(FwRscVdev2, num_of_vrings) - 4 == virtio::vdev::kNumVrings);
static_assert(offsetof(FwRscVdev2, vring) - 4 == virtio::vdev::kVrings);
static_assert(offsetof(FwRscVring, notify_id) == virtio::vdev::kVringNotifyId);
static_assert(sizeof(FwRscVring) == 20);
static_assert(sizeof(FwRscVdev2) == kRscVdevMinSize + 2 * sizeof(FwRscVring));
static_assert(offsetof(RpmsgFirmwareTable, vdev) == 24);
static_assert(sizeof(RpmsgFirmwareTable) == 24 + sizeof(FwRscVdev2));

struct RpmsgFirmwareTableSpec {
  std::uint32_t vring_num = 256;  ///< Entries per vring (a power of two).
  std::uint32_t vring_align = 0x1000;
  std::uint32_t tx_da = kRscAddrAny;  ///< vring 0
  std::uint32_t rx_da = kRscAddrAny;  ///< vring 1
  /// Offered features: the name service by default. Add 1 << virtio::kFeatureEventIdx to offer EVENT_IDX.
  std::uint32_t features = 1U << rpmsg::kFeatureNs;
};

constexpr RpmsgFirmwareTable rpmsg_firmware_table(const RpmsgFirmwareTableSpec& spec = {}) noexcept {
  RpmsgFirmwareTable t{};
  t.ver = 1;
  t.num = 1;
  t.offset[0] = offsetof(RpmsgFirmwareTable, vdev);
  t.vdev.type = kRscVdev;
  t.vdev.id = rpmsg::kVirtioIdRpmsg;
  t.vdev.dfeatures = spec.features;
  t.vdev.num_of_vrings = 2;
  t.vdev.vring[0] = {spec.tx_da, spec.vring_align, spec.vring_num, 0, 0};
  t.vdev.vring[1] = {spec.rx_da, spec.vring_align, spec.vring_num, 0, 0};
  return t;
}

/// struct fw_rsc_vdev with two vrings and, as its config space, the buffer-size declaration of
/// VIRTIO_RPMSG_F_BUFSZ (rpmsg/wire.hpp: config_len 11, one byte of padding after it).
struct FwRscVdev2Sizes {
  FwRscVdev2 vdev;
  std::uint8_t config[12];
};

/// RpmsgFirmwareTable for a firmware that declares its buffer sizes.
struct RpmsgSizedFirmwareTable {
  std::uint32_t ver;
  std::uint32_t num;
  std::uint32_t reserved[2];
  std::uint32_t offset[1];
  std::uint32_t pad;
  FwRscVdev2Sizes vdev;
};
static_assert(offsetof(RpmsgSizedFirmwareTable, vdev) == 24);
static_assert(offsetof(FwRscVdev2Sizes, config) == sizeof(FwRscVdev2));
static_assert(sizeof(RpmsgSizedFirmwareTable) == 24 + sizeof(FwRscVdev2) + 12);

/// The table of a firmware whose rpmsg buffers are `sizes` (from its side: it sends in `sizes.tx`-byte
/// buffers, receives in `sizes.rx`-byte ones, headers included; each rpmsg::valid_buffer_size()): the vdev
/// offers VIRTIO_RPMSG_F_BUFSZ on top of spec.features and declares them in its config space. A host that
/// acknowledges the bit (Linux since the series wire.hpp cites, amp) carves its buffers to them; one that
/// does not uses 512 bytes, which the firmware then gets.
constexpr RpmsgSizedFirmwareTable rpmsg_firmware_table(const RpmsgFirmwareTableSpec& spec,
                                                       const rpmsg::BufferSizes& sizes) noexcept {
  const RpmsgFirmwareTable plain = rpmsg_firmware_table(spec);
  RpmsgSizedFirmwareTable t{};
  t.ver = plain.ver;
  t.num = plain.num;
  t.offset[0] = plain.offset[0];
  t.vdev.vdev = plain.vdev;
  t.vdev.vdev.dfeatures |= 1U << rpmsg::kFeatureBufferSizes;
  t.vdev.vdev.config_len = rpmsg::kBufferSizesConfigSize;
  // The declaration's bytes, little-endian (encode_buffer_sizes, which a constant cannot call).
  t.vdev.config[0] = rpmsg::kBufferSizesVersion;
  t.vdev.config[1] = static_cast<std::uint8_t>(rpmsg::kBufferSizesConfigSize);
  for (unsigned i = 0; i < 4; ++i) {
    t.vdev.config[3 + i] = static_cast<std::uint8_t>(sizes.tx >> (8 * i));
    t.vdev.config[7 + i] = static_cast<std::uint8_t>(sizes.rx >> (8 * i));
  }
  return t;
}

}  // namespace amp::rproc
