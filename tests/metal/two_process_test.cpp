// SPDX-License-Identifier: BSD-3-Clause
// Two processes share one memfd, mapped at different virtual addresses, exchange data addressed only by
// device address, and signal each other through their event loops with eventfds passed over a UNIX socket.
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "amp/metal/linux/event_fd.hpp"
#include "amp/metal/linux/event_loop.hpp"
#include "amp/metal/linux/shared_memory.hpp"
#include "amp/metal/linux/unix_socket.hpp"

namespace amp::metal {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t kShmSize = 64 * 1024;
constexpr DeviceAddress kShmDa = 0x7000'0000;  // the "physical" address both sides use on the wire
// Mailboxes: {le64 device address, le32 length, le32 sequence} for each direction.
constexpr std::size_t kToChild = 0;
constexpr std::size_t kToParent = 16;
constexpr std::size_t kParentData = 0x1000;  // where the parent writes its messages
constexpr std::size_t kChildData = 0x8000;   // where the child writes its replies
constexpr int kRounds = 200;

/// Posts a message in a mailbox: the payload first, then the mailbox with a release on the sequence.
void post(const IoRegion& r, std::size_t mailbox, std::size_t data_off, std::string_view text,
          std::uint32_t seq) {
  ASSERT_EQ(r.write(data_off, std::as_bytes(std::span(text))), Status::kOk);
  ASSERT_EQ(r.store<std::uint64_t>(mailbox, *r.device_address_of(data_off), std::memory_order_relaxed),
            Status::kOk);
  ASSERT_EQ(
      r.store<std::uint32_t>(mailbox + 8, static_cast<std::uint32_t>(text.size()), std::memory_order_relaxed),
      Status::kOk);
  ASSERT_EQ(r.store<std::uint32_t>(mailbox + 12, seq, std::memory_order_release), Status::kOk);
}

/// Reads a mailbox: the sequence with acquire, then the device address, translated and bounds-checked.
Result<std::string> fetch(const IoRegion& r, std::size_t mailbox, std::uint32_t expected_seq) {
  auto seq = r.load<std::uint32_t>(mailbox + 12, std::memory_order_acquire);
  if (!seq || *seq != expected_seq) return fail(Status::kWouldBlock);
  const std::uint64_t da = *r.load<std::uint64_t>(mailbox, std::memory_order_relaxed);
  const std::uint32_t len = *r.load<std::uint32_t>(mailbox + 8, std::memory_order_relaxed);
  auto off = r.offset_of(da, len);
  if (!off) return fail(off.error());
  std::string s(len, '\0');
  if (r.read(*off, std::as_writable_bytes(std::span(s))) != Status::kOk) return fail(Status::kInternal);
  return s;
}

/// The child: returns its exit code (0 = all good).
int child_main(UnixSocket sock) {
  // Occupy some address space first, so that the shared memory lands elsewhere than in the parent.
  void* placeholder = mmap(nullptr, kShmSize, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (placeholder == MAP_FAILED) return 10;
  std::array<std::byte, 1> tag{};
  std::vector<UniqueFd> fds;
  if (sock.receive_exact(tag, &fds) != Status::kOk || fds.size() != 3) return 11;
  auto shm = shm::map_fd(std::move(fds[0]), kShmSize, kShmDa);
  auto to_child = EventFd::adopt(std::move(fds[1]));
  auto to_parent = EventFd::adopt(std::move(fds[2]));
  if (!shm || !to_child || !to_parent) return 12;
  const IoRegion r = shm->region();
  // Tell the parent where we mapped it.
  const auto base = reinterpret_cast<std::uint64_t>(shm->bytes().data());
  if (sock.send_all(std::as_bytes(std::span(&base, 1))) != Status::kOk) return 13;

  auto loop = EventLoop::create();
  if (!loop) return 14;
  std::uint32_t seq = 0;
  int failures = 0;
  auto id = (*loop)->add_event_fd(*to_child, [&](std::uint64_t) {
    for (;;) {
      auto msg = fetch(r, kToChild, seq + 1);
      if (!msg) {
        if (msg.error() != Status::kWouldBlock) ++failures;
        return;
      }
      ++seq;
      if (*msg == "quit") {
        (*loop)->stop();
        return;
      }
      std::string reply = *msg;
      std::transform(reply.begin(), reply.end(), reply.begin(),
                     [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
      reply += " #" + std::to_string(seq);
      post(r, kToParent, kChildData, reply, seq);
      if (to_parent->signal() != Status::kOk) ++failures;
    }
  });
  if (!id) return 15;
  if ((*loop)->run() != Status::kOk) return 16;
  return failures == 0 && seq == kRounds + 1 ? 0 : 17;
}

TEST(TwoProcesses, ShareMemoryByDeviceAddressAndSignalThroughEventLoops) {
  auto socks = UnixSocket::pair();
  ASSERT_TRUE(socks);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    socks->first = UnixSocket(UniqueFd());
    _exit(child_main(std::move(socks->second)));
  }
  socks->second = UnixSocket(UniqueFd());
  UnixSocket& sock = socks->first;

  auto shm = shm::create_memfd("amp-two-process", kShmSize, kShmDa);
  ASSERT_TRUE(shm) << shm.error().message;
  auto to_child = EventFd::create();
  auto to_parent = EventFd::create();
  ASSERT_TRUE(to_child && to_parent);
  const std::array<int, 3> fds{shm->fd(), to_child->fd(), to_parent->fd()};
  const std::array<std::byte, 1> tag{std::byte{'F'}};
  ASSERT_EQ(sock.send_all(tag, fds), Status::kOk);
  std::uint64_t child_base = 0;
  ASSERT_EQ(sock.receive_exact(std::as_writable_bytes(std::span(&child_base, 1))), Status::kOk);
  EXPECT_NE(child_base, reinterpret_cast<std::uint64_t>(shm->bytes().data()))
      << "the two processes should map the memory at different addresses";

  const IoRegion r = shm->region();
  auto loop = EventLoop::create();
  ASSERT_TRUE(loop);
  std::uint32_t got = 0;
  std::vector<std::string> replies;
  auto id = (*loop)->add_event_fd(*to_parent, [&](std::uint64_t) {
    while (auto reply = fetch(r, kToParent, got + 1)) {
      ++got;
      replies.push_back(*reply);
    }
  });
  ASSERT_TRUE(id);
  for (std::uint32_t i = 1; i <= kRounds; ++i) {
    post(r, kToChild, kParentData, "message " + std::to_string(i), i);
    ASSERT_EQ(to_child->signal(), Status::kOk);
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (got < i && std::chrono::steady_clock::now() < deadline) ASSERT_TRUE((*loop)->poll(100ms));
    ASSERT_EQ(got, i) << "no reply to message " << i;
    EXPECT_EQ(replies.back(), "MESSAGE " + std::to_string(i) + " #" + std::to_string(i));
  }
  post(r, kToChild, kParentData, "quit", kRounds + 1);
  ASSERT_EQ(to_child->signal(), Status::kOk);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace amp::metal
