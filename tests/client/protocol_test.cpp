// SPDX-License-Identifier: BSD-3-Clause
#include "amp/client/protocol.hpp"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

namespace amp::client::protocol {
namespace {

std::vector<std::byte> bytes(std::initializer_list<int> v) {
  std::vector<std::byte> out;
  for (const int b : v) out.push_back(static_cast<std::byte>(b));
  return out;
}
void append_name(std::vector<std::byte>& out, std::string_view name) {
  for (std::size_t i = 0; i < rpmsg::kNameSize; ++i) {
    out.push_back(i < name.size() ? static_cast<std::byte>(name[i]) : std::byte{0});
  }
}
std::vector<std::byte> encoded(const Message& m) {
  std::array<std::byte, kMaxMessage> buf{};
  auto n = encode(m, buf);
  EXPECT_TRUE(n.has_value());
  return {buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n.value_or(0))};
}
Name name(std::string_view s) {
  return *Name::from(s);
}

TEST(ClientProtocol, GoldenBytesOfEachMessage) {
  // header: magic "AM" (0x4D41 little-endian), version 1, type, id 0x01020304
  const auto head = [](int type) { return bytes({0x41, 0x4D, 0x01, type, 0x04, 0x03, 0x02, 0x01}); };
  Message hello{.type = Type::kHello, .id = 0x01020304, .min_version = 1, .max_version = 2};
  auto want = head(1);
  for (const int b : {1, 0, 0, 0, 2, 0, 0, 0}) want.push_back(std::byte(b));
  EXPECT_EQ(encoded(hello), want);

  Message list{.type = Type::kList, .id = 0x01020304, .remote = kAllRemotes};
  want = head(2);
  for (const int b : {0xFF, 0xFF, 0xFF, 0xFF}) want.push_back(std::byte(b));
  EXPECT_EQ(encoded(list), want);

  Message wait{
      .type = Type::kWait, .id = 0x01020304, .remote = 1, .timeout_ms = 5000, .name = name("amp-echo")};
  want = head(3);
  for (const int b : {1, 0, 0, 0, 0x88, 0x13, 0, 0}) want.push_back(std::byte(b));
  append_name(want, "amp-echo");
  EXPECT_EQ(encoded(wait), want);

  Message open{.type = Type::kOpen,
               .id = 0x01020304,
               .remote = 2,
               .local = rpmsg::kAddrAny,
               .dst = 0x400,
               .name = name("rpmsg-raw")};
  want = head(4);
  for (const int b : {2, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 4, 0, 0})
    want.push_back(std::byte(b));
  append_name(want, "rpmsg-raw");
  EXPECT_EQ(encoded(open), want);

  Message create{.type = Type::kCreate, .id = 0x01020304, .remote = 0, .local = 0x1234, .name = name("svc")};
  want = head(5);
  for (const int b : {0, 0, 0, 0, 0x34, 0x12, 0, 0}) want.push_back(std::byte(b));
  append_name(want, "svc");
  EXPECT_EQ(encoded(create), want);

  Message reply{.type = Type::kReply,
                .id = 0x01020304,
                .local = 0x401,
                .dst = 0x400,
                .status = Status::kTooLarge,
                .value = 496};
  want = head(0x80);
  for (const int b : {static_cast<int>(Status::kTooLarge), 0, 0, 0, 0xF0, 1, 0, 0, 1, 4, 0, 0, 0, 4, 0, 0})
    want.push_back(std::byte(b));
  EXPECT_EQ(encoded(reply), want);

  Message service{
      .type = Type::kService, .id = 0x01020304, .remote = 3, .dst = 0x405, .name = name("amp-matrix")};
  want = head(0x81);
  for (const int b : {3, 0, 0, 0, 5, 4, 0, 0}) want.push_back(std::byte(b));
  append_name(want, "amp-matrix");
  EXPECT_EQ(encoded(service), want);
  EXPECT_EQ(want.size(), kHeaderSize + body_size(Type::kService));

  Message remote{.type = Type::kRemote, .id = 0x01020304, .remote = 1, .state = 2, .name = name("r5f-0")};
  want = head(0x82);
  for (const int b : {1, 0, 0, 0, 2, 0, 0, 0}) want.push_back(std::byte(b));
  append_name(want, "r5f-0");
  EXPECT_EQ(encoded(remote), want);
}

TEST(ClientProtocol, EveryMessageDecodesToWhatWasEncoded) {
  const std::vector<Message> all = {
      {.type = Type::kHello, .id = 1, .min_version = 1, .max_version = 1},
      {.type = Type::kList, .id = 2, .remote = 7},
      {.type = Type::kWait, .id = 3, .remote = 1, .timeout_ms = 10, .name = name("a")},
      {.type = Type::kOpen, .id = 4, .remote = 1, .local = 5, .dst = rpmsg::kAddrAny, .name = name("b")},
      {.type = Type::kOpen, .id = 5, .remote = 1, .dst = 0x400},  // by address
      {.type = Type::kCreate, .id = 6, .remote = 0, .name = name(std::string(31, 'n'))},
      {.type = Type::kReply, .id = 7, .local = 1, .dst = 2, .status = Status::kInternal, .value = 9},
      {.type = Type::kService, .id = 8, .remote = 2, .dst = 0x400, .name = name("c")},
      {.type = Type::kRemote, .id = 9, .remote = 4, .state = 4, .name = name("m4")},
  };
  for (const Message& m : all) {
    const auto wire = encoded(m);
    const auto back = decode(wire);
    ASSERT_TRUE(back.has_value()) << static_cast<int>(m.type);
    EXPECT_EQ(back->type, m.type);
    EXPECT_EQ(back->id, m.id);
    EXPECT_EQ(back->remote, m.remote);
    EXPECT_EQ(back->local, m.local);
    EXPECT_EQ(back->dst, m.dst);
    EXPECT_EQ(back->timeout_ms, m.timeout_ms);
    EXPECT_EQ(back->state, m.state);
    EXPECT_EQ(back->name.view(), m.name.view());
    EXPECT_EQ(back->status, m.status);
    EXPECT_EQ(back->value, m.value);
    EXPECT_EQ(encoded(*back), wire) << "the same bytes again";
  }
}

TEST(ClientProtocol, AnythingElseIsMalformed) {
  const Message good{.type = Type::kWait, .id = 1, .remote = 0, .timeout_ms = 1, .name = name("svc")};
  const auto wire = encoded(good);
  ASSERT_TRUE(decode(wire));
  const auto refused = [](std::vector<std::byte> p, const char* why) {
    const auto r = decode(p);
    ASSERT_FALSE(r.has_value()) << why;
    EXPECT_EQ(r.error(), Status::kMalformed) << why;
  };
  refused({}, "empty");
  refused({wire.begin(), wire.begin() + 7}, "a short header");
  refused({wire.begin(), wire.end() - 1}, "one byte short");
  auto longer = wire;
  longer.push_back(std::byte{0});
  refused(longer, "one byte too many");
  auto p = wire;
  p[0] = std::byte{0x42};
  refused(p, "magic");
  p = wire;
  p[2] = std::byte{2};
  refused(p, "a version this code does not speak");
  p = wire;
  p[3] = std::byte{0x7F};
  refused(p, "an unknown type");
  p = wire;
  for (std::size_t i = kHeaderSize + 8; i < p.size(); ++i) p[i] = std::byte{'x'};
  refused(p, "a name without its NUL");
  p = wire;
  p[kHeaderSize + 8] = std::byte{0};
  refused(p, "an empty name where one is needed");
  // kOpen: flags must be 0, and without a name it needs an address.
  Message open{.type = Type::kOpen, .id = 1, .remote = 0, .dst = 0x400};
  ASSERT_TRUE(decode(encoded(open)));
  open.flags = 1;
  refused(encoded(open), "flags");
  open.flags = 0;
  open.dst = rpmsg::kAddrAny;
  refused(encoded(open), "no name, no address");
  // kHello: a range upside down; kReply: a status amp does not know.
  refused(encoded({.type = Type::kHello, .min_version = 3, .max_version = 2}), "versions upside down");
  auto reply = encoded({.type = Type::kReply});
  reply[kHeaderSize] = std::byte{0x7F};
  refused(reply, "status");
}

TEST(ClientProtocol, NamesAreCheckedWhenMadeAndBuffersWhenWritten) {
  EXPECT_TRUE(Name::from(std::string(31, 'x')).has_value());
  EXPECT_EQ(Name::from(std::string(32, 'x')).error(), Status::kInvalidArgument);
  EXPECT_EQ(Name::from(std::string("a\0b", 3)).error(), Status::kInvalidArgument);
  EXPECT_TRUE(Name::from("").has_value());
  std::array<std::byte, kMaxMessage> buf{};
  EXPECT_EQ(encode({.type = Type::kOpen, .dst = 1}, std::span(buf).first(kMaxMessage - 1)).error(),
            Status::kTooLarge);
  EXPECT_EQ(encode({.type = static_cast<Type>(9)}, buf).error(), Status::kInvalidArgument);
  EXPECT_EQ(kMaxMessage, kHeaderSize + body_size(Type::kOpen));
}

}  // namespace
}  // namespace amp::client::protocol
