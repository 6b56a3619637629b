// SPDX-License-Identifier: BSD-3-Clause
#include "amp/metal/linux/fault_guard.hpp"

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <csignal>
#include <string>

#include "amp/metal/linux/event_fd.hpp"
#include "amp/metal/linux/shared_memory.hpp"

namespace amp::metal {
namespace {

std::string shm_name(const char* what) {
  return std::string("amp-test-fg-") + what + "-" + std::to_string(::getpid());
}

TEST(FaultGuard, AShrunkenPosixShmReadsZerosInsteadOfCrashing) {
  const std::string name = shm_name("posix");
  auto shm = shm::open_posix(name, 0x4000, OpenMode::kCreate);
  ASSERT_TRUE(shm) << shm.error().message;
  (void)shm::unlink_posix(name);
  EXPECT_TRUE(shm->guarded());
  auto alarm = EventFd::create();
  ASSERT_TRUE(alarm);
  shm->notify_when_lost(alarm->fd());
  volatile auto* bytes = reinterpret_cast<volatile std::uint8_t*>(shm->bytes().data());
  bytes[0x3000] = 0x5a;
  ASSERT_EQ(bytes[0x3000], 0x5a);
  EXPECT_FALSE(shm->lost());
  // The peer cuts the object to nothing: the next access would be SIGBUS.
  ASSERT_EQ(::ftruncate(shm->fd(), 0), 0);
  EXPECT_EQ(bytes[0x3000], 0) << "the mapping is zeros now";
  bytes[0x10] = 1;  // and writable, privately
  EXPECT_EQ(bytes[0x10], 1);
  EXPECT_TRUE(shm->lost());
  auto n = alarm->consume();
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 1U) << "the owner was told";
}

TEST(FaultGuard, ASealedMemfdNeedsNoGuard) {
  auto m = shm::create_memfd("amp-test-sealed", 0x4000);
  ASSERT_TRUE(m);
  EXPECT_FALSE(m->guarded());
}

TEST(FaultGuard, AFaultOutsideEveryWatchedMappingStillKillsAsBefore) {
  // In a child: a file mapping nobody watches, truncated, then touched: the fault goes to the handler
  // that was there before ours (the default action: death by SIGBUS).
  const std::string name = shm_name("unwatched");
  auto watched = shm::open_posix(name, 0x4000, OpenMode::kCreate);  // installs the handler
  ASSERT_TRUE(watched);
  (void)shm::unlink_posix(name);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    FILE* f = std::tmpfile();
    if (f == nullptr || ::ftruncate(::fileno(f), 0x4000) != 0) ::_exit(10);
    void* p = ::mmap(nullptr, 0x4000, PROT_READ | PROT_WRITE, MAP_SHARED, ::fileno(f), 0);
    if (p == MAP_FAILED || ::ftruncate(::fileno(f), 0) != 0) ::_exit(11);
    volatile auto* b = static_cast<volatile std::uint8_t*>(p);
    b[0x1000] = 1;  // SIGBUS
    ::_exit(12);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
#if defined(__SANITIZE_THREAD__)
  // ThreadSanitizer runs the handlers itself: the fault taken again after ours passes it on is a "nested
  // bug", and it exits with its exit code.
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 66);
#else
  ASSERT_TRUE(WIFSIGNALED(status)) << "exit status " << WEXITSTATUS(status);
#if defined(__SANITIZE_ADDRESS__)
  // The handler there before ours is AddressSanitizer's: it reports the fault and aborts.
  EXPECT_EQ(WTERMSIG(status), SIGABRT);
#else
  EXPECT_EQ(WTERMSIG(status), SIGBUS);
#endif
#endif
}

TEST(FaultGuard, AGuardStopsWatchingWhenTheMemoryGoes) {
  std::vector<SharedMemory> many;
  for (int round = 0; round < 3; ++round) {
    // More mappings over the rounds than there are slots: each round's are released first.
    for (std::size_t i = 0; i < kMaxFaultGuards / 2; ++i) {
      const std::string name = shm_name(("many" + std::to_string(i)).c_str());
      auto m = shm::open_posix(name, 0x1000, OpenMode::kCreate);
      ASSERT_TRUE(m) << m.error().message;
      (void)shm::unlink_posix(name);
      ASSERT_TRUE(m->guarded());
      many.push_back(std::move(*m));
    }
    many.clear();
  }
}

}  // namespace
}  // namespace amp::metal
