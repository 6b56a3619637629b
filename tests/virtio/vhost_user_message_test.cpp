// SPDX-License-Identifier: BSD-3-Clause
// vhost-user messages as a front end sends them (byte layouts of QEMU's vhost-user.rst and UML's
// virtio_uml), and what a hostile one may send instead: each refused with the line that says why.
#include "amp/virtio/linux/vhost_user_message.hpp"
#include "le_bytes.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <vector>

namespace amp::virtio::vhost_user {
namespace {

/// Little-endian bytes, built field by field.
using Bytes = amp::testing::LeBytes;

std::span<const std::byte, kHeaderSize> header_bytes(const Bytes& b) {
  return std::span<const std::byte, kHeaderSize>(b.v.data(), kHeaderSize);
}

Header header_of(Request r, std::size_t size) {
  return Header{static_cast<std::uint32_t>(r), kVersion, static_cast<std::uint32_t>(size)};
}

/// A region as UML sends its one: guest address == user address, the file mapped from offset 0.
Bytes& region(Bytes& b, std::uint64_t guest, std::uint64_t size, std::uint64_t user, std::uint64_t offset) {
  return b.u64(guest).u64(size).u64(user).u64(offset);
}

TEST(VhostUserHeader, ParsesARequestWithItsFlags) {
  Bytes b;
  b.u32(5).u32(kVersion | kFlagNeedReply).u32(40);
  auto h = parse_header(header_bytes(b));
  ASSERT_TRUE(h) << h.error().message;
  EXPECT_EQ(h->request, 5U);
  EXPECT_EQ(h->flags & kFlagNeedReply, kFlagNeedReply);
  EXPECT_EQ(h->size, 40U);
}

TEST(VhostUserHeader, RefusesAnotherVersionAReplyAndAnOversizedPayload) {
  Bytes v2;
  v2.u32(1).u32(2).u32(0);
  auto h = parse_header(header_bytes(v2));
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().status, Status::kNotSupported);
  EXPECT_EQ(h.error().message, "GET_FEATURES: protocol version 2, not 1");

  Bytes reply;
  reply.u32(1).u32(kVersion | kFlagReply).u32(8);
  h = parse_header(header_bytes(reply));
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().message, "GET_FEATURES: a reply where a request was due");

  Bytes huge;
  huge.u32(5).u32(kVersion).u32(0xFFFF'FFFF);
  h = parse_header(header_bytes(huge));
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().status, Status::kTooLarge);
  EXPECT_EQ(h.error().message, "SET_MEM_TABLE: 4294967295 bytes of payload (at most 264)");

  Bytes unknown;
  unknown.u32(99).u32(kVersion).u32(kMaxPayload + 1);
  h = parse_header(header_bytes(unknown));
  ASSERT_FALSE(h);
  EXPECT_EQ(h.error().message, "request 99: 265 bytes of payload (at most 264)");
}

TEST(VhostUserHeader, AReplyHeaderIsVersionOneWithTheReplyFlag) {
  const auto out = reply_header(static_cast<std::uint32_t>(Request::kGetFeatures), 8);
  Bytes want;
  want.u32(1).u32(kVersion | kFlagReply).u32(8);
  EXPECT_EQ(std::vector<std::byte>(out.begin(), out.end()), want.v);
}

TEST(VhostUserPayload, FixedSizePayloadsMustHaveTheirSize) {
  Bytes b;
  b.u64(0x1'4000'0001ULL);
  auto f = parse_u64(header_of(Request::kSetFeatures, 8), b.v);
  ASSERT_TRUE(f);
  EXPECT_EQ(*f, 0x1'4000'0001ULL);
  auto short_one = parse_u64(header_of(Request::kSetFeatures, 4), std::span(b.v).first(4));
  ASSERT_FALSE(short_one);
  EXPECT_EQ(short_one.error().status, Status::kMalformed);
  EXPECT_EQ(short_one.error().message, "SET_FEATURES: 4 bytes of payload, not 8");

  Bytes s;
  s.u32(1).u32(256);
  auto st = parse_vring_state(header_of(Request::kSetVringNum, 8), s.v);
  ASSERT_TRUE(st);
  EXPECT_EQ(st->index, 1U);
  EXPECT_EQ(st->num, 256U);
  EXPECT_FALSE(parse_vring_state(header_of(Request::kSetVringNum, 12), Bytes().u32(1).u32(2).u32(3).v));
}

TEST(VhostUserPayload, VringAddrIsDescUsedAvailLogInThatOrder) {
  Bytes b;
  b.u32(0).u32(0).u64(0x1000).u64(0x3000).u64(0x2000).u64(~0ULL);
  auto a = parse_vring_addr(header_of(Request::kSetVringAddr, 40), b.v);
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_EQ(a->desc, 0x1000U);
  EXPECT_EQ(a->used, 0x3000U);
  EXPECT_EQ(a->avail, 0x2000U);
  EXPECT_EQ(a->log, ~0ULL);
  auto cut = parse_vring_addr(header_of(Request::kSetVringAddr, 39), std::span(b.v).first(39));
  ASSERT_FALSE(cut);
  EXPECT_EQ(cut.error().message, "SET_VRING_ADDR: 39 bytes of payload, not 40");
}

TEST(VhostUserMemoryTable, TakesUmlsOneRegionWithItsDescriptor) {
  Bytes b;
  b.u32(1).u32(0);
  region(b, 0x6000'0000, 0x800'0000, 0x6000'0000, 0);
  auto t = parse_memory_table(header_of(Request::kSetMemTable, b.v.size()), b.v, 1);
  ASSERT_TRUE(t) << t.error().message;
  ASSERT_EQ(t->view().size(), 1U);
  EXPECT_EQ(t->regions[0].guest_addr, 0x6000'0000U);
  EXPECT_EQ(t->regions[0].size, 0x800'0000U);
  // A payload padded to the front end's array size is fine: only the declared regions are read.
  Bytes padded = b;
  region(padded, 0, 0, 0, 0);
  EXPECT_TRUE(parse_memory_table(header_of(Request::kSetMemTable, padded.v.size()), padded.v, 1));
}

TEST(VhostUserMemoryTable, RefusesWhatALyingFrontEndSends) {
  const auto parse = [](const Bytes& b, std::size_t fds) {
    return parse_memory_table(header_of(Request::kSetMemTable, b.v.size()), b.v, fds);
  };
  const auto message = [&](const Bytes& b, std::size_t fds) {
    auto t = parse(b, fds);
    return t ? std::string("accepted") : t.error().message;
  };
  Bytes none;
  none.u32(0).u32(0);
  EXPECT_EQ(message(none, 0), "SET_MEM_TABLE: 0 regions (1 to 8)");
  Bytes nine;
  nine.u32(9).u32(0);
  EXPECT_EQ(message(nine, 9), "SET_MEM_TABLE: 9 regions (1 to 8)");
  Bytes claims_two;
  claims_two.u32(2).u32(0);
  region(claims_two, 0, 0x1000, 0x1000, 0);
  EXPECT_EQ(message(claims_two, 2), "SET_MEM_TABLE: 40 bytes of payload, not 72");
  Bytes one;
  one.u32(1).u32(0);
  region(one, 0, 0x1000, 0x1000, 0);
  EXPECT_EQ(message(one, 0), "SET_MEM_TABLE: 0 descriptors attached, not 1");
  EXPECT_EQ(message(one, 2), "SET_MEM_TABLE: 2 descriptors attached, not 1");
  Bytes empty;
  empty.u32(1).u32(0);
  region(empty, 0, 0, 0x1000, 0);
  EXPECT_EQ(message(empty, 1), "SET_MEM_TABLE: region 0 is empty");
  Bytes wrapping;
  wrapping.u32(1).u32(0);
  region(wrapping, 0, 0x2000, std::numeric_limits<std::uint64_t>::max() - 0xFFF, 0);
  auto w = parse(wrapping, 1);
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().status, Status::kOverflow);
  Bytes wrapping_offset;
  wrapping_offset.u32(1).u32(0);
  region(wrapping_offset, 0, 0x2000, 0x1000, ~0ULL);
  EXPECT_FALSE(parse(wrapping_offset, 1));
  Bytes overlapping;
  overlapping.u32(2).u32(0);
  region(overlapping, 0, 0x2000, 0x10000, 0);
  region(overlapping, 0x1000, 0x2000, 0x20000, 0);
  EXPECT_EQ(message(overlapping, 2), "SET_MEM_TABLE: region 1 overlaps region 0");
  Bytes user_overlap;
  user_overlap.u32(2).u32(0);
  region(user_overlap, 0, 0x1000, 0x10000, 0);
  region(user_overlap, 0x1000, 0x1000, 0x10800, 0);
  EXPECT_EQ(message(user_overlap, 2), "SET_MEM_TABLE: region 1 overlaps region 0");
}

TEST(VhostUserVringFd, IndexNoFdAndTheDescriptorCountAgree) {
  auto fd = parse_vring_fd(header_of(Request::kSetVringKick, 8), Bytes().u64(1).v, 1);
  ASSERT_TRUE(fd) << fd.error().message;
  EXPECT_EQ(fd->index, 1U);
  EXPECT_TRUE(fd->has_fd);
  auto nofd = parse_vring_fd(header_of(Request::kSetVringCall, 8), Bytes().u64(kVringNoFd).v, 0);
  ASSERT_TRUE(nofd);
  EXPECT_FALSE(nofd->has_fd);
  auto missing = parse_vring_fd(header_of(Request::kSetVringKick, 8), Bytes().u64(0).v, 0);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message, "SET_VRING_KICK: 0 descriptors attached, not 1");
  auto extra = parse_vring_fd(header_of(Request::kSetVringCall, 8), Bytes().u64(kVringNoFd).v, 1);
  ASSERT_FALSE(extra);
  EXPECT_EQ(extra.error().message, "SET_VRING_CALL: 1 descriptors attached, not 0");
  auto bits = parse_vring_fd(header_of(Request::kSetVringErr, 8), Bytes().u64(0x10000).v, 1);
  ASSERT_FALSE(bits);
  EXPECT_EQ(bits.error().message, "SET_VRING_ERR: unknown bits in 0x10000");
}

TEST(VhostUserAddresses, ARangeTranslatesOnlyWhollyInsideOneRegion) {
  Bytes b;
  b.u32(2).u32(0);
  region(b, 0x0, 0x10000, 0x7000'0000, 0);
  region(b, 0x10000, 0x10000, 0x9000'0000, 0);
  auto t = parse_memory_table(header_of(Request::kSetMemTable, b.v.size()), b.v, 2);
  ASSERT_TRUE(t) << t.error().message;
  auto g = guest_address(*t, 0x7000'1000, 0x1000);
  ASSERT_TRUE(g) << g.error().message;
  EXPECT_EQ(*g, 0x1000U);
  g = guest_address(*t, 0x9000'0000, 0x10000);
  ASSERT_TRUE(g);
  EXPECT_EQ(*g, 0x10000U);
  // Across a region's end, outside every region, or wrapping around: refused.
  EXPECT_FALSE(guest_address(*t, 0x7000'F000, 0x2000));
  auto out = guest_address(*t, 0x1000, 16);
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().status, Status::kOutOfRange);
  EXPECT_EQ(out.error().message, "0x1000 (+16 bytes) lies in no region of the memory table");
  EXPECT_FALSE(guest_address(*t, 0x7000'1000, ~0ULL));
}

TEST(VhostUserNames, KnownRequestsByNameOthersByNumber) {
  EXPECT_EQ(to_string(static_cast<std::uint32_t>(Request::kSetSlaveReqFd)), "SET_SLAVE_REQ_FD");
  EXPECT_EQ(to_string(35), "request 35");
}

}  // namespace
}  // namespace amp::virtio::vhost_user
