// SPDX-License-Identifier: BSD-3-Clause
// VIRTIO_RPMSG_F_BUFSZ: the device's declaration of its buffer sizes in the vdev's config space (wire.hpp),
// its bytes, its checks, and rpmsg::Device and LiteDevice negotiating it in both roles.
#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <vector>

#include "amp/rpmsg/lite_device.hpp"
#include "amp/rproc/resource_table.hpp"
#include "loopback_fixture.hpp"

namespace amp::rpmsg {
namespace {

using testing::bytes_of;

constexpr std::uint32_t kNs = 1U << kFeatureNs;
constexpr std::uint32_t kBufSz = 1U << kFeatureBufferSizes;
constexpr std::uint32_t kHeader = static_cast<std::uint32_t>(kHeaderSize);

std::array<std::byte, kBufferSizesConfigSize> declaration(std::uint32_t tx, std::uint32_t rx) {
  std::array<std::byte, kBufferSizesConfigSize> out{};
  encode_buffer_sizes(BufferSizes{tx, rx}, out);
  return out;
}

std::vector<std::byte> bytes(std::initializer_list<int> v) {
  std::vector<std::byte> out;
  for (int b : v) out.push_back(static_cast<std::byte>(b));
  return out;
}

TEST(BufferSizes, TheDeclarationsBytesAreLinuxsVirtioRpmsgConfig) {
  // u8 version 1; le16 size 11; le32 txbuf_size; le32 rxbuf_size; packed.
  const auto d = declaration(0x1000, 0x10000);
  EXPECT_EQ(std::vector<std::byte>(d.begin(), d.end()),
            bytes({0x01, 0x0B, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00}));
  EXPECT_EQ(kFeatureBufferSizes, 1U);
  auto back = decode_buffer_sizes(d);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->tx, 0x1000U);
  EXPECT_EQ(back->rx, 0x10000U);
}

TEST(BufferSizes, BytesThatAreNoDeclarationAreNotFoundAndBadSizesAreMalformed) {
  const auto good = declaration(512, 4096);
  EXPECT_EQ(decode_buffer_sizes(std::span(good).first(10)).error(), Status::kNotFound) << "too short";
  auto version = good;
  version[0] = std::byte{2};
  EXPECT_EQ(decode_buffer_sizes(version).error(), Status::kNotFound) << "another version";
  auto size = good;
  size[1] = std::byte{13};  // v5 of the series had 13 bytes
  EXPECT_EQ(decode_buffer_sizes(size).error(), Status::kNotFound) << "another size field";
  // NuttX's config (bit 1 is its name-service acknowledgement there): le32 h2r_buf_size, le32 r2h_buf_size
  // from offset 0, then cpu names, 64 bytes.
  std::vector<std::byte> nuttx(64);
  const std::uint32_t h2r = 512;
  const std::uint32_t r2h = 512;
  std::memcpy(nuttx.data(), &h2r, 4);
  std::memcpy(nuttx.data() + 4, &r2h, 4);
  EXPECT_EQ(decode_buffer_sizes(nuttx).error(), Status::kNotFound);
  for (const std::uint32_t bad : {0U, 8U, 16U, 17U, 1001U, 65552U, 0xFFFFFFF8U}) {
    EXPECT_EQ(decode_buffer_sizes(declaration(bad, 512)).error(), Status::kMalformed) << bad;
    EXPECT_EQ(decode_buffer_sizes(declaration(512, bad)).error(), Status::kMalformed) << bad;
  }
  for (const std::uint32_t fine : {24U, 512U, 4096U, 65536U, 65544U}) {
    EXPECT_TRUE(decode_buffer_sizes(declaration(fine, fine))) << fine;
  }
  // Longer config spaces are fine: the declaration is their first 11 bytes.
  std::vector<std::byte> longer(32);
  std::memcpy(longer.data(), good.data(), good.size());
  EXPECT_TRUE(decode_buffer_sizes(longer));
}

TEST(BufferSizes, TheTableBuilderWritesTheDeclarationAsTheVdevsConfig) {
  std::array<std::byte, 256> out{};
  rproc::TableBuilder b(out);
  const std::array<virtio::QueueInfo, 2> rings{virtio::QueueInfo{metal::kAnyAddress, 16, 64, 0},
                                               virtio::QueueInfo{metal::kAnyAddress, 16, 64, 0}};
  const auto d = declaration(4096, 2048);
  ASSERT_EQ(b.add_vdev({kVirtioIdRpmsg, 0, kNs | kBufSz, kBufferSizesConfigSize, rings, d}), Status::kOk);
  auto size = b.finish();
  ASSERT_TRUE(size);
  // header 16 + one offset 4, then the entry: type 4, the vdev's 24 bytes, two vrings of 20, the config.
  constexpr std::size_t kConfigAt = 16 + 4 + 4 + 24 + 2 * 20;
  ASSERT_GE(*size, kConfigAt + kBufferSizesConfigSize);
  EXPECT_EQ(std::memcmp(out.data() + kConfigAt, d.data(), d.size()), 0);
  // More bytes than the config space holds are refused.
  rproc::TableBuilder too_many(out);
  EXPECT_EQ(too_many.add_vdev({kVirtioIdRpmsg, 0, kNs | kBufSz, 4, rings, d}), Status::kInvalidArgument);
}

class BufferSizesLoopback : public testing::Loopback {
 protected:
  /// The fixture's layout with a config space of `config_len` bytes starting with `config`.
  void layout_with(std::uint32_t dfeatures, std::span<const std::byte> config, std::uint32_t config_len,
                   std::uint32_t ring_num = 256) {
    mem_ = std::make_unique<Block>();
    shm_ = metal::IoRegion(std::span<std::byte>(mem_->bytes, testing::kShmSize), 0);
    const std::array<virtio::QueueInfo, 2> rings{virtio::QueueInfo{testing::kRing0, 0x1000, ring_num, 1},
                                                 virtio::QueueInfo{testing::kRing1, 0x1000, ring_num, 2}};
    vdev_ = *shm_.subregion(testing::kVdevOffset, virtio::RscVdev::body_size(2, config_len));
    ASSERT_EQ(virtio::RscVdev::write(vdev_, {kVirtioIdRpmsg, 0, dfeatures, config_len, rings, config}),
              Status::kOk);
    driver_transport_ = *virtio::RscVdevTransport::open(vdev_);
    device_transport_ = *virtio::RscVdevTransport::open(vdev_);
  }
  void declare(std::uint32_t tx, std::uint32_t rx) {
    const auto d = declaration(tx, rx);
    layout_with(kNs | kBufSz, d, kBufferSizesConfigSize);
  }

  /// A driver with `count` buffers each way (so that big ones fit the fixture's 256 KiB pool).
  DeviceConfig driver_config(std::uint32_t count) {
    DeviceConfig c = config(Role::kDriver);
    c.rx_buffers = count;
    c.tx_buffers = count;
    return c;
  }

  /// Every payload size from 1 to `mtu` sent by `from` to an echo endpoint on the other side and back,
  /// byte for byte; then `mtu + 1` is refused as too large. `pump` runs both sides.
  /// Under a sanitizer, which checks every byte a copy touches, sizes above 4096 go in steps of 61 (and the
  /// last 64 sizes each): 2 x 2 GB of copies for 64-KiB buffers take minutes there; the plain build sends
  /// all.
  static constexpr std::uint32_t kStrideAbove4k =
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
      61;
#else
      1;
#endif

  template <class Pump>
  void echo_every_size(Endpoint& from, std::uint32_t mtu, Pump pump_both) {
    std::vector<std::byte> pattern(mtu + 1);
    for (std::size_t i = 0; i < pattern.size(); ++i)
      pattern[i] = static_cast<std::byte>((i * 131 + 7) & 0xFF);
    for (std::uint32_t n = 1; n <= mtu; n += (n < 4096 || n + 64 > mtu) ? 1 : kStrideAbove4k) {
      expected_ = n;
      echoed_ = false;
      ASSERT_EQ(from.send(std::span(pattern).first(n)), Status::kOk) << n;
      pump_both();
      ASSERT_TRUE(echoed_) << "no echo of " << n << " bytes";
    }
    EXPECT_EQ(from.send(std::span(pattern).first(mtu + 1)), Status::kTooLarge);
    pattern_ = {};
  }
  /// The receive callback of the sending endpoint: the echo must be the pattern's first expected_ bytes.
  Endpoint::ReceiveFn check_echo() {
    return [this](Endpoint&, const Message& m) {
      if (pattern_.size() < m.payload.size()) {
        pattern_.resize(m.payload.size() + 1);
        for (std::size_t i = 0; i < pattern_.size(); ++i) {
          pattern_[i] = static_cast<std::byte>((i * 131 + 7) & 0xFF);
        }
      }
      ASSERT_EQ(m.payload.size(), expected_);
      ASSERT_EQ(std::memcmp(m.payload.data(), pattern_.data(), expected_), 0) << expected_ << " bytes";
      echoed_ = true;
    };
  }

  std::uint32_t expected_ = 0;
  bool echoed_ = false;
  std::vector<std::byte> pattern_;
};

class BufferSizesBothRoles : public BufferSizesLoopback,
                             public ::testing::WithParamInterface<std::uint32_t> {};

TEST_P(BufferSizesBothRoles, TheDriverCarvesTheDeclaredSizesAndEverySizeToTheMtuEchoesBothWays) {
  const std::uint32_t size = GetParam();
  declare(size, size);
  ASSERT_EQ(driver_.start(driver_config(2), driver_storage_), Status::kOk);
  ASSERT_EQ(device_.start(config(Role::kDevice), device_storage_), Status::kOk);
  EXPECT_NE(device_transport_.driver_features() & kBufSz, 0U) << "the driver acknowledges the bit";
  EXPECT_EQ(driver_.payload_size(), size - kHeaderSize);
  EXPECT_EQ(device_.payload_size(), size - kHeaderSize);
  Endpoint echo_on_device;
  Endpoint echo_on_driver;
  Endpoint host;
  Endpoint remote;
  ASSERT_EQ(device_.create_endpoint(
                echo_on_device, "", 0x400, kAddrAny,
                [](Endpoint& ep, const Message& m) { ASSERT_EQ(ep.send(m.payload), Status::kOk); }),
            Status::kOk);
  ASSERT_EQ(driver_.create_endpoint(
                echo_on_driver, "", 0x401, kAddrAny,
                [](Endpoint& ep, const Message& m) { ASSERT_EQ(ep.send(m.payload), Status::kOk); }),
            Status::kOk);
  ASSERT_EQ(driver_.create_endpoint(host, "", 0x500, 0x400, check_echo()), Status::kOk);
  ASSERT_EQ(device_.create_endpoint(remote, "", 0x501, 0x401, check_echo()), Status::kOk);
  pump();
  echo_every_size(host, size - kHeader, [this] { pump(); });    // driver -> device -> driver
  echo_every_size(remote, size - kHeader, [this] { pump(); });  // device -> driver -> device
}

INSTANTIATE_TEST_SUITE_P(Sizes, BufferSizesBothRoles, ::testing::Values(512U, 4096U, 65536U));

TEST_F(BufferSizesLoopback, EachDirectionGetsItsOwnSize) {
  declare(4096, 1024);  // the device sends in 4 KiB buffers and receives in 1 KiB ones
  ASSERT_EQ(driver_.start(driver_config(8), driver_storage_), Status::kOk);
  ASSERT_EQ(device_.start(config(Role::kDevice), device_storage_), Status::kOk);
  EXPECT_NE(driver_.features() & kBufSz, 0U);
  EXPECT_NE(device_.features() & kBufSz, 0U);
  EXPECT_EQ(driver_.payload_size(), 1024U - kHeaderSize);
  EXPECT_EQ(device_.payload_size(), 4096U - kHeaderSize);
  std::size_t to_driver = 0;
  std::size_t to_device = 0;
  Endpoint on_driver;
  Endpoint on_device;
  ASSERT_EQ(driver_.create_endpoint(on_driver, "", 0x500, 0x501,
                                    [&](Endpoint&, const Message& m) { to_driver = m.payload.size(); }),
            Status::kOk);
  ASSERT_EQ(device_.create_endpoint(on_device, "", 0x501, 0x500,
                                    [&](Endpoint&, const Message& m) { to_device = m.payload.size(); }),
            Status::kOk);
  // A 4080-byte message fits only if the driver carved its receive buffers to the device's tx size.
  const std::vector<std::byte> big(4096 - kHeaderSize, std::byte{7});
  ASSERT_EQ(on_device.send(big), Status::kOk);
  pump();
  EXPECT_EQ(to_driver, big.size());
  ASSERT_EQ(on_driver.send(std::span(big).first(1024 - kHeaderSize)), Status::kOk);
  pump();
  EXPECT_EQ(to_device, 1024U - kHeaderSize);
  EXPECT_EQ(on_driver.send(std::span(big).first(1024 - kHeaderSize + 1)), Status::kTooLarge);
}

TEST_F(BufferSizesLoopback, ADeviceThatDeclaresNonsenseIsRefusedAndTheVdevMarkedFailed) {
  for (const auto& [tx, rx] :
       std::vector<std::pair<std::uint32_t, std::uint32_t>>{{0, 512}, {512, 16}, {500, 512}, {512, 70000}}) {
    declare(tx, rx);
    EXPECT_EQ(driver_.start(driver_config(2), driver_storage_), Status::kMalformed) << tx << "/" << rx;
    EXPECT_NE(device_transport_.status() & virtio::kStatusFailed, 0) << tx << "/" << rx;
    EXPECT_EQ(device_.start(config(Role::kDevice), device_storage_), Status::kClosed)
        << "the device sees FAILED";
  }
}

TEST_F(BufferSizesLoopback, ADeclarationThatChangedSinceTheHostSizedItsPoolIsRefused) {
  declare(4096, 2048);
  DeviceConfig c = driver_config(8);
  c.expected_buffer_sizes = {4096, 1024};  // what the host read earlier (rproc::plan_rpmsg)
  EXPECT_EQ(driver_.start(c, driver_storage_), Status::kMalformed);
  EXPECT_NE(device_transport_.status() & virtio::kStatusFailed, 0);
  c.expected_buffer_sizes = {4096, 2048};
  EXPECT_EQ(driver_.start(c, driver_storage_), Status::kOk) << "the same declaration is taken";
}

TEST_F(BufferSizesLoopback, DeclaredSizesThatDoNotFitThePoolAreRefused) {
  declare(65536, 65536);
  EXPECT_EQ(driver_.start(driver_config(4), driver_storage_), Status::kNoMemory) << "8 x 64 KiB > 256 KiB";
  EXPECT_NE(device_transport_.status() & virtio::kStatusFailed, 0) << "the device is told";
  EXPECT_EQ(device_.start(config(Role::kDevice), device_storage_), Status::kClosed);
}

TEST_F(BufferSizesLoopback, WithoutTheBitTheBuffersAre512BytesWhateverTheConfigSays) {
  const auto d = declaration(4096, 4096);
  layout_with(kNs, d, kBufferSizesConfigSize);  // a declaration, but the bit not offered
  ASSERT_EQ(driver_.start(config(Role::kDriver), driver_storage_), Status::kOk);
  ASSERT_EQ(device_.start(config(Role::kDevice), device_storage_), Status::kOk);
  EXPECT_EQ(device_transport_.driver_features() & kBufSz, 0U);
  EXPECT_EQ(driver_.payload_size(), 496U);
  EXPECT_EQ(device_.payload_size(), 496U);
}

TEST_F(BufferSizesLoopback, ADriverThatDeclinesTheBitKeepsItsOwnSizesAndTheDeviceFollows) {
  declare(4096, 4096);
  DeviceConfig c = config(Role::kDriver);
  c.accept_buffer_sizes = false;
  ASSERT_EQ(driver_.start(c, driver_storage_), Status::kOk);
  ASSERT_EQ(device_.start(config(Role::kDevice), device_storage_), Status::kOk);
  EXPECT_EQ(device_transport_.driver_features() & kBufSz, 0U);
  EXPECT_EQ(driver_.payload_size(), 496U);
  EXPECT_EQ(device_.payload_size(), 496U);
}

TEST_F(BufferSizesLoopback, BitOneWithAConfigThatIsNoDeclarationIsLeftUnacknowledged) {
  // A NuttX-style peer: bit 1 means something else there, and its config space is not the declaration.
  std::vector<std::byte> nuttx(64);
  const std::uint32_t h2r = 2048;
  std::memcpy(nuttx.data(), &h2r, 4);
  std::memcpy(nuttx.data() + 4, &h2r, 4);
  layout_with(kNs | kBufSz, nuttx, 64);
  ASSERT_EQ(driver_.start(config(Role::kDriver), driver_storage_), Status::kOk);
  EXPECT_EQ(device_transport_.driver_features(), kNs) << "bit 1 not acknowledged";
  EXPECT_EQ(driver_.payload_size(), 496U);
  // And a bit 1 with no config space at all.
  layout_with(kNs | kBufSz, {}, 0);
  Device driver;
  ASSERT_EQ(driver.start(config(Role::kDriver), driver_storage_), Status::kOk);
  EXPECT_EQ(device_transport_.driver_features(), kNs);
  EXPECT_EQ(driver.payload_size(), 496U);
}

TEST_F(BufferSizesLoopback, ADeviceWhoseDeclarationTheHostSpoiledAfterAgreeingRefusesToStart) {
  declare(4096, 4096);
  ASSERT_EQ(driver_.start(driver_config(8), driver_storage_), Status::kOk);
  // The config space is shared: a host that rewrites it after the negotiation.
  at(testing::kVdevOffset + virtio::RscVdev::body_size(2, 0))[0] = std::byte{7};
  EXPECT_EQ(device_.start(config(Role::kDevice), device_storage_), Status::kMalformed);
}

TEST_F(BufferSizesLoopback, LiteDeviceTakesTheDeclaredSizeForItsSends) {
  declare(4096, 2048);
  ASSERT_EQ(driver_.start(driver_config(8), driver_storage_), Status::kOk);
  LiteDevice lite;
  LiteStorage<256> storage{};
  LiteConfig lc;
  lc.shm = shm_;
  lc.vdev = &device_transport_;
  lc.notifier = &to_driver_;
  ASSERT_EQ(lite.start(lc, storage), Status::kOk);
  EXPECT_EQ(lite.payload_size(), 4096U - kHeaderSize);
  LiteEndpoint echo;
  ASSERT_EQ(lite.create_endpoint(
                echo, "", 0x400, kAddrAny,
                [](LiteEndpoint& ep, const LiteMessage& m) { ASSERT_EQ(ep.send(m.payload), Status::kOk); }),
            Status::kOk);
  Endpoint host;
  ASSERT_EQ(driver_.create_endpoint(host, "", 0x500, 0x400, check_echo()), Status::kOk);
  // The driver sends in 2 KiB buffers (the device's rx), the echo comes back in 4 KiB ones.
  EXPECT_EQ(driver_.payload_size(), 2048U - kHeaderSize);
  echo_every_size(host, 2048 - kHeader, [&] { pump(lite); });
  // And the LiteDevice's own MTU, which fits only the driver's 4-KiB receive buffers.
  expected_ = 4096 - kHeader;
  echoed_ = false;
  std::vector<std::byte> pattern(4096 - kHeader);
  for (std::size_t i = 0; i < pattern.size(); ++i) pattern[i] = static_cast<std::byte>((i * 131 + 7) & 0xFF);
  ASSERT_EQ(echo.send_to(0x500, pattern), Status::kOk);
  pump(lite);
  EXPECT_TRUE(echoed_);
  // A spoiled declaration: the LiteDevice refuses to start.
  lite.stop();
  at(testing::kVdevOffset + virtio::RscVdev::body_size(2, 0))[1] = std::byte{12};
  EXPECT_EQ(lite.start(lc, storage), Status::kMalformed);
}

}  // namespace
}  // namespace amp::rpmsg
