// SPDX-License-Identifier: BSD-3-Clause
#include "amp/metal/linux/event_loop.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <future>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "amp/metal/linux/event_fd.hpp"
#include "amp/metal/log.hpp"

namespace amp::metal {
namespace {

using namespace std::chrono_literals;

std::unique_ptr<EventLoop> make_loop() {
  auto loop = EventLoop::create();
  if (!loop) ADD_FAILURE() << loop.error().what();
  return loop ? std::move(*loop) : nullptr;
}

EventFd make_event_fd() {
  auto e = EventFd::create();
  if (!e) ADD_FAILURE() << e.error().what();
  return std::move(*e);
}

/// Polls until `done()` or a generous deadline (a failing test fails instead of hanging).
template <class Pred>
bool poll_until(EventLoop& loop, Pred done) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    auto r = loop.poll(100ms);
    if (!r) {
      ADD_FAILURE() << r.error().what();
      return false;
    }
  }
  return true;
}

struct SocketPair {
  UniqueFd a, b;
};
SocketPair socket_pair(int type) {
  int sv[2] = {-1, -1};
  EXPECT_EQ(::socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv), 0);
  return {UniqueFd(sv[0]), UniqueFd(sv[1])};
}

/// Waits (up to a generous timeout) for `n` bytes on `fd`; nullopt when they don't come.
std::optional<std::vector<std::uint8_t>> read_bytes(int fd, std::size_t n, int timeout_ms = 5000) {
  std::vector<std::uint8_t> buf(n);
  std::size_t got = 0;
  while (got < n) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) != 1) return std::nullopt;
    const ssize_t r = ::read(fd, buf.data() + got, n - got);
    if (r <= 0) return std::nullopt;
    got += static_cast<std::size_t>(r);
  }
  return buf;
}

std::optional<std::uint32_t> read_u32(int fd, int timeout_ms = 5000) {
  auto b = read_bytes(fd, 4, timeout_ms);
  if (!b) return std::nullopt;
  std::uint32_t v = 0;
  std::memcpy(&v, b->data(), 4);
  return v;
}

void write_u32(int fd, std::uint32_t v) {
  ASSERT_EQ(::write(fd, &v, sizeof v), 4);
}

bool readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1;
}

/// Collects log messages while alive.
class LogCapture {
 public:
  LogCapture() { set_log_sink(&sink_); }
  ~LogCapture() { set_log_sink(nullptr); }
  std::string all() {
    std::lock_guard<std::mutex> lk(m_);
    return text_;
  }

 private:
  void add(std::string_view s) {
    std::lock_guard<std::mutex> lk(m_);
    text_ += s;
    text_ += '\n';
  }
  struct Fn {
    LogCapture* self;
    void operator()(LogLevel, std::string_view s) const { self->add(s); }
  };
  std::mutex m_;
  std::string text_;
  FunctionLogSink<Fn> sink_{Fn{this}};
};

// ---- dispatch of each kind of source ----

TEST(EventLoop, EventFdSourceDeliversTheConsumedCount) {
  auto loop = make_loop();
  ASSERT_TRUE(loop);
  EventFd e = make_event_fd();
  std::vector<std::uint64_t> got;
  auto id = loop->add_event_fd(e, [&](std::uint64_t n) { got.push_back(n); });
  ASSERT_TRUE(id) << id.error().what();

  ASSERT_EQ(e.signal(3), Status::kOk);
  auto r = loop->poll(5000ms);
  ASSERT_TRUE(r) << r.error().what();
  EXPECT_EQ(*r, 1);
  EXPECT_EQ(got, std::vector<std::uint64_t>{3});
  // The loop consumed the counter: nothing is pending any more.
  EXPECT_EQ(e.consume().value(), 0U);
  EXPECT_EQ(loop->poll(0ms).value(), 0);
  EXPECT_EQ(got.size(), 1U);
}

TEST(EventLoop, PollTimesOutWithNothingReady) {
  auto loop = make_loop();
  ASSERT_TRUE(loop);
  EventFd e = make_event_fd();
  bool called = false;
  ASSERT_TRUE(loop->add_event_fd(e, [&](std::uint64_t) { called = true; }));
  auto r = loop->poll(10ms);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, 0);
  EXPECT_FALSE(called);
}

TEST(EventLoop, FdSourceGetsReventsUntilRemoved) {
  auto loop = make_loop();
  ASSERT_TRUE(loop);
  auto sp = socket_pair(SOCK_STREAM);
  std::string received;
  std::vector<std::uint32_t> revents;
  std::optional<SourceId> self;
  Status self_remove = Status::kInternal;
  auto id = loop->add_fd(sp.a.get(), EPOLLIN, [&](std::uint32_t ev) {
    revents.push_back(ev);
    char buf[16];
    const ssize_t n = ::read(sp.a.get(), buf, sizeof buf);
    if (n > 0) {
      received.append(buf, static_cast<std::size_t>(n));
    } else {
      self_remove = loop->remove(*self);  // end of stream: stop watching
    }
  });
  ASSERT_TRUE(id) << id.error().what();
  self = *id;

  ASSERT_EQ(::write(sp.b.get(), "hi", 2), 2);
  ASSERT_TRUE(poll_until(*loop, [&] { return received == "hi"; }));
  ASSERT_FALSE(revents.empty());
  EXPECT_NE(revents[0] & EPOLLIN, 0U);

  sp.b.reset();  // peer closes: EPOLLIN|EPOLLHUP, read() returns 0
  ASSERT_TRUE(poll_until(*loop, [&] { return self_remove == Status::kOk; }));
  EXPECT_NE(revents.back() & (EPOLLHUP | EPOLLRDHUP | EPOLLIN), 0U);
  const std::size_t calls = revents.size();
  EXPECT_EQ(loop->poll(0ms).value(), 0);  // removed: the still-readable socket is not dispatched
  EXPECT_EQ(revents.size(), calls);
  EXPECT_EQ(loop->remove(*id), Status::kNotFound);
}

TEST(EventLoop, OneShotTimerFiresOnce) {
  auto loop = make_loop();
  ASSERT_TRUE(loop);
  std::uint64_t total = 0;
  int calls = 0;
  auto id = loop->add_timer(1ms, 0ns, [&](std::uint64_t n) {
    total += n;
    ++calls;
  });
  ASSERT_TRUE(id) << id.error().what();
  ASSERT_TRUE(poll_until(*loop, [&] { return calls == 1; }));
  EXPECT_EQ(total, 1U);
  EXPECT_EQ(loop->poll(20ms).value(), 0);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(loop->remove(*id), Status::kOk);
}

TEST(EventLoop, PeriodicTimerKeepsFiring) {
  auto loop = make_loop();
  ASSERT_TRUE(loop);
  std::uint64_t total = 0;
  auto id = loop->add_timer(0ns, 1ms, [&](std::uint64_t n) {
    EXPECT_GE(n, 1U);
    total += n;
  });
  ASSERT_TRUE(id) << id.error().what();
  ASSERT_TRUE(poll_until(*loop, [&] { return total >= 5; }));
  EXPECT_EQ(loop->remove(*id), Status::kOk);
  EXPECT_EQ(loop->poll(20ms).value(), 0);
}

TEST(EventLoop, TimerRejectsNegativeTimes) {
  auto loop = make_loop();
  ASSERT_TRUE(loop);
  auto id = loop->add_timer(-1ms, 0ns, [](std::uint64_t) {});
  ASSERT_FALSE(id);
  EXPECT_EQ(id.error().status, Status::kInvalidArgument);
}

TEST(EventLoop, PostRunsOnTheLoopThreadInOrder) {
  auto loop = make_loop();
  ASSERT_TRUE(loop);
  std::vector<int> order;
  std::vector<std::thread::id> threads;
  std::thread poster([&] {
    for (int i = 1; i <= 3; ++i) {
      ASSERT_TRUE(loop->post([&, i] {
        order.push_back(i);
        threads.push_back(std::this_thread::get_id());
      }));
    }
  });
  poster.join();
  ASSERT_TRUE(poll_until(*loop, [&] { return order.size() == 3; }));
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
  for (const auto& t : threads) EXPECT_EQ(t, std::this_thread::get_id());
}

TEST(EventLoop, PostCanBeCancelledUntilItRuns) {
  auto loop = make_loop();
  ASSERT_TRUE(loop);
  bool cancelled_ran = false;
  bool kept_ran = false;
  auto cancelled = loop->post([&] { cancelled_ran = true; });
  auto kept = loop->post([&] { kept_ran = true; });
  ASSERT_TRUE(cancelled && kept);
  EXPECT_EQ(loop->remove(*cancelled), Status::kOk);
  ASSERT_TRUE(poll_until(*loop, [&] { return kept_ran; }));
  EXPECT_FALSE(cancelled_ran);
  EXPECT_EQ(loop->remove(*kept), Status::kNotFound);  // ran: gone
}

TEST(EventLoop, DisabledPostWaitsForEnable) {
  auto loop = make_loop();
  ASSERT_TRUE(loop);
  int runs = 0;
  auto id = loop->post([&] { ++runs; });
  ASSERT_TRUE(id);
  EXPECT_EQ(loop->disable(*id), Status::kOk);
  EXPECT_EQ(loop->poll(0ms).value(), 0);
  EXPECT_EQ(runs, 0);
  EXPECT_EQ(loop->enable(*id), Status::kOk);
  ASSERT_TRUE(poll_until(*loop, [&] { return runs == 1; }));
  EXPECT_EQ(loop->poll(0ms).value(), 0);
  EXPECT_EQ(runs, 1);
}

// ---- UIO protocol, with a socketpair standing in for /dev/uioN ----

TEST(EventLoop, UioDeliversCountAndReArms) {
  auto loop = make_loop();
  ASSERT_TRUE(loop);
  auto sp = socket_pair(SOCK_SEQPACKET);  // a = the device fd, b = "the kernel"
  std::vector<std::uint32_t> irqs;
  auto id = loop->add_uio(sp.a.get(), [&](std::uint32_t n) {
    irqs.push_back(n);
    // The loop re-arms after the handler, not before.
    EXPECT_FALSE(readable(sp.b.get()));
  });
  ASSERT_TRUE(id) << id.error().what();

  write_u32(sp.b.get(), 7);
  ASSERT_EQ(loop->poll(5000ms).value(), 1);
  EXPECT_EQ(irqs, std::vector<std::uint32_t>{7});
  EXPECT_EQ(read_u32(sp.b.get()), 1U);  // re-enabled

  write_u32(sp.b.get(), 8);
  ASSERT_EQ(loop->poll(5000ms).value(), 1);
  EXPECT_EQ(irqs, (std::vector<std::uint32_t>{7, 8}));
  EXPECT_EQ(read_u32(sp.b.get()), 1U);
  EXPECT_FALSE(readable(sp.b.get()));  // exactly one 4-byte write per interrupt
}

TEST(EventLoop, UioDisableMasksAndEnableUnmasks) {
  auto loop = make_loop();
  ASSERT_TRUE(loop);
  auto sp = socket_pair(SOCK_SEQPACKET);
  std::vector<std::uint32_t> irqs;
  auto id = loop->add_uio(sp.a.get(), [&](std::uint32_t n) { irqs.push_back(n); });
  ASSERT_TRUE(id);

  ASSERT_EQ(loop->disable(*id), Status::kOk);
  EXPECT_EQ(read_u32(sp.b.get()), 0U);  // masked at the device
  ASSERT_EQ(loop->disable(*id), Status::kOk);
  EXPECT_FALSE(readable(sp.b.get()));  // already disabled: no second write

  write_u32(sp.b.get(), 3);  // an interrupt count arrives while disabled
  EXPECT_EQ(loop->poll(0ms).value(), 0);
  EXPECT_TRUE(irqs.empty());

  ASSERT_EQ(loop->enable(*id), Status::kOk);
  EXPECT_EQ(read_u32(sp.b.get()), 1U);  // unmasked
  ASSERT_EQ(loop->poll(5000ms).value(), 1);
  EXPECT_EQ(irqs, std::vector<std::uint32_t>{3});
  EXPECT_EQ(read_u32(sp.b.get()), 1U);  // re-armed after the handler
}

TEST(EventLoop, UioHandlerDisablingItselfIsNotReArmed) {
  auto loop = make_loop();
  ASSERT_TRUE(loop);
  auto sp = socket_pair(SOCK_SEQPACKET);
  std::optional<SourceId> self;
  Status st = Status::kInternal;
  auto id = loop->add_uio(sp.a.get(), [&](std::uint32_t) { st = loop->disable(*self); });
  ASSERT_TRUE(id);
  self = *id;
  write_u32(sp.b.get(), 1);
  ASSERT_EQ(loop->poll(5000ms).value(), 1);
  EXPECT_EQ(st, Status::kOk);
  EXPECT_EQ(read_u32(sp.b.get()), 0U);  // the mask from disable()...
  EXPECT_FALSE(readable(sp.b.get()));   // ...and no re-arm after it
}

TEST(EventLoop, UioShortReadIsReportedAndDisablesTheSource) {
  LogCapture log;
  auto loop = make_loop();
  ASSERT_TRUE(loop);
  auto sp = socket_pair(SOCK_STREAM);
  int calls = 0;
  auto id = loop->add_uio(sp.a.get(), [&](std::uint32_t) { ++calls; });
  ASSERT_TRUE(id);

  const std::uint16_t half = 1;
  ASSERT_EQ(::write(sp.b.get(), &half, sizeof half), 2);
  auto r = loop->poll(5000ms);
  ASSERT_TRUE(r) << r.error().what();
  EXPECT_EQ(*r, 0);
  EXPECT_EQ(calls, 0);
  EXPECT_NE(log.all().find("short read of 2 bytes"), std::string::npos) << log.all();
  EXPECT_FALSE(readable(sp.b.get()));  // not re-armed

  write_u32(sp.b.get(), 5);  // the source is disabled: nothing dispatched any more
  EXPECT_EQ(loop->poll(0ms).value(), 0);
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(loop->remove(*id), Status::kOk);  // still registered, just disabled
}

TEST(EventLoop, UioEndOfFileIsReportedAndDisablesTheSource) {
  LogCapture log;
  auto loop = make_loop();
  ASSERT_TRUE(loop);
  auto sp = socket_pair(SOCK_SEQPACKET);
  int calls = 0;
  ASSERT_TRUE(loop->add_uio(sp.a.get(), [&](std::uint32_t) { ++calls; }));
  sp.b.reset();
  ASSERT_EQ(loop->poll(5000ms).value(), 0);
  EXPECT_NE(log.all().find("end of file"), std::string::npos) << log.all();
  // Disabled, so the permanently readable end of file does not spin the loop.
  EXPECT_EQ(loop->poll(0ms).value(), 0);
  EXPECT_EQ(calls, 0);
}

// ---- enable/disable/remove ----

TEST(EventLoop, DisableStopsAndEnableResumesDispatch) {
  auto loop = make_loop();
  ASSERT_TRUE(loop);
  EventFd e = make_event_fd();
  std::uint64_t total = 0;
  auto id = loop->add_event_fd(e, [&](std::uint64_t n) { total += n; });
  ASSERT_TRUE(id);

  ASSERT_EQ(loop->disable(*id), Status::kOk);
  ASSERT_EQ(e.signal(2), Status::kOk);
  EXPECT_EQ(loop->poll(0ms).value(), 0);
  EXPECT_EQ(total, 0U);

  ASSERT_EQ(loop->enable(*id), Status::kOk);
  ASSERT_EQ(loop->enable(*id), Status::kOk);  // idempotent
  ASSERT_EQ(loop->poll(5000ms).value(), 1);
  EXPECT_EQ(total, 2U);  // what arrived while disabled is delivered on enable
}

TEST(EventLoop, UnknownIdsAreNotFoundAndIdsAreNeverReused) {
  auto loop = make_loop();
  ASSERT_TRUE(loop);
  EXPECT_EQ(loop->remove(SourceId{12345}), Status::kNotFound);
  EXPECT_EQ(loop->enable(SourceId{12345}), Status::kNotFound);
  EXPECT_EQ(loop->disable(SourceId{12345}), Status::kNotFound);

  EventFd e = make_event_fd();
  auto first = loop->add_event_fd(e, [](std::uint64_t) {});
  ASSERT_TRUE(first);
  ASSERT_EQ(loop->remove(*first), Status::kOk);
  auto second = loop->add_event_fd(e, [](std::uint64_t) {});
  ASSERT_TRUE(second);
  EXPECT_NE(*first, *second);
  EXPECT_EQ(loop->remove(*first), Status::kNotFound);
  EXPECT_EQ(loop->disable(*first), Status::kNotFound);
}

TEST(EventLoop, AddRejectsBadArguments) {
  auto loop = make_loop();
  ASSERT_TRUE(loop);
  EventFd e = make_event_fd();
  auto neg = loop->add_fd(-1, EPOLLIN, [](std::uint32_t) {});
  ASSERT_FALSE(neg);
  EXPECT_EQ(neg.error().status, Status::kInvalidArgument);
  auto empty = loop->add_event_fd(e, nullptr);
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().status, Status::kInvalidArgument);
  auto et = loop->add_fd(e.fd(), EPOLLIN | EPOLLET, [](std::uint32_t) {});
  ASSERT_FALSE(et);
  EXPECT_EQ(et.error().status, Status::kInvalidArgument);

  ASSERT_TRUE(loop->add_event_fd(e, [](std::uint64_t) {}));
  auto twice = loop->add_fd(e.fd(), EPOLLIN, [](std::uint32_t) {});
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().status, Status::kAlreadyExists);
  EXPECT_NE(twice.error().what().find("already a source"), std::string::npos) << twice.error().what();

  const int file = ::open("/proc/self/exe", O_RDONLY | O_CLOEXEC);  // regular files cannot be polled
  ASSERT_GE(file, 0);
  UniqueFd owner(file);
  auto regular = loop->add_fd(file, EPOLLIN, [](std::uint32_t) {});
  ASSERT_FALSE(regular);
  EXPECT_EQ(regular.error().status, Status::kPermissionDenied);
  EXPECT_NE(regular.error().what().find("cannot be polled"), std::string::npos) << regular.error().what();
}

enum class StopWith { kRemove, kDisable };

class EventLoopStopWhileRunning : public ::testing::TestWithParam<StopWith> {};

// remove()/disable() from another thread must wait for the running handler and then keep it from running.
TEST_P(EventLoopStopWhileRunning, WaitsForTheRunningHandler) {
  auto loop = make_loop();
  ASSERT_TRUE(loop);
  EventFd e = make_event_fd();
  std::latch entered(1);
  std::latch release(1);
  std::atomic<int> calls{0};
  std::atomic<bool> handler_done{false};
  std::atomic<bool> stop_returned{false};
  std::atomic<bool> stop_returned_while_running{false};
  auto id = loop->add_event_fd(e, [&](std::uint64_t) {
    ++calls;
    entered.count_down();
    release.wait();
    // Still inside the handler: the stopper must not have returned yet.
    if (stop_returned.load()) stop_returned_while_running.store(true);
    handler_done.store(true);
  });
  ASSERT_TRUE(id);
  ASSERT_EQ(loop->start_thread(), Status::kOk);
  ASSERT_EQ(e.signal(), Status::kOk);
  entered.wait();

  Status stop_status = Status::kInternal;
  bool done_when_returned = false;
  std::thread stopper([&] {
    stop_status = GetParam() == StopWith::kRemove ? loop->remove(*id) : loop->disable(*id);
    done_when_returned = handler_done.load();
    stop_returned.store(true);
  });
  // Give the stopper time to reach its wait. The checks below do not depend on this sleep: they hold for
  // any interleaving if remove()/disable() wait as they must; it only makes a broken one likely to show.
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(stop_returned.load());
  release.count_down();
  stopper.join();
  EXPECT_EQ(stop_status, Status::kOk);
  EXPECT_TRUE(done_when_returned);
  EXPECT_FALSE(stop_returned_while_running.load());

  // It never runs again: signal, then let a later post prove the loop went past the signal.
  ASSERT_EQ(e.signal(), Status::kOk);
  std::promise<void> marker;
  ASSERT_TRUE(loop->post([&] { marker.set_value(); }));
  ASSERT_EQ(marker.get_future().wait_for(10s), std::future_status::ready);
  EXPECT_EQ(calls.load(), 1);
  loop->stop();
  loop->join();
}

std::string stop_with_name(const ::testing::TestParamInfo<StopWith>& p) {
  return p.param == StopWith::kRemove ? "Remove" : "Disable";
}

INSTANTIATE_TEST_SUITE_P(RemoveAndDisable, EventLoopStopWhileRunning,
                         ::testing::Values(StopWith::kRemove, StopWith::kDisable), stop_with_name);

TEST(EventLoop, HandlerCanRemoveAndDisableItself) {
  auto loop = make_loop();
  ASSERT_TRUE(loop);
  EventFd a = make_event_fd();
  EventFd b = make_event_fd();
  std::optional<SourceId> id_a, id_b;
  int calls_a = 0, calls_b = 0;
  Status remove_a = Status::kInternal, disable_b = Status::kInternal;
  auto ra = loop->add_event_fd(a, [&](std::uint64_t) {
    ++calls_a;
    remove_a = loop->remove(*id_a);  // must not deadlock waiting for itself
  });
  auto rb = loop->add_event_fd(b, [&](std::uint64_t) {
    ++calls_b;
    disable_b = loop->disable(*id_b);
  });
  ASSERT_TRUE(ra && rb);
  id_a = *ra;
  id_b = *rb;
  ASSERT_EQ(a.signal(), Status::kOk);
  ASSERT_EQ(b.signal(), Status::kOk);
  ASSERT_TRUE(poll_until(*loop, [&] { return calls_a == 1 && calls_b == 1; }));
  EXPECT_EQ(remove_a, Status::kOk);
  EXPECT_EQ(disable_b, Status::kOk);

  ASSERT_EQ(a.signal(), Status::kOk);
  ASSERT_EQ(b.signal(), Status::kOk);
  EXPECT_EQ(loop->poll(0ms).value(), 0);
  EXPECT_EQ(calls_a, 1);
  EXPECT_EQ(calls_b, 1);
  EXPECT_EQ(loop->remove(*id_a), Status::kNotFound);
  EXPECT_EQ(loop->enable(*id_b), Status::kOk);
  ASSERT_EQ(loop->poll(5000ms).value(), 1);
  EXPECT_EQ(calls_b, 2);
}

TEST(EventLoop, HandlersManageOtherSources) {
  auto loop = make_loop();
  ASSERT_TRUE(loop);
  EventFd trigger = make_event_fd();
  EventFd victim = make_event_fd();
  EventFd paused = make_event_fd();
  EventFd added = make_event_fd();
  int victim_calls = 0, paused_calls = 0, added_calls = 0, posted_calls = 0;
  auto victim_id = loop->add_event_fd(victim, [&](std::uint64_t) { ++victim_calls; });
  auto paused_id = loop->add_event_fd(paused, [&](std::uint64_t) { ++paused_calls; });
  ASSERT_TRUE(victim_id && paused_id);
  std::vector<Status> results;
  bool added_ok = false;
  ASSERT_TRUE(loop->add_event_fd(trigger, [&](std::uint64_t) {
    // Make both ready, then remove one and disable the other from this handler, on the loop thread.
    results.push_back(victim.signal());
    results.push_back(paused.signal());
    results.push_back(loop->remove(*victim_id));
    results.push_back(loop->disable(*paused_id));
    results.push_back(added.signal());
    added_ok = loop->add_event_fd(added, [&](std::uint64_t) { ++added_calls; }).has_value();
    results.push_back(loop->post([&] { ++posted_calls; }) ? Status::kOk : Status::kInternal);
  }));
  ASSERT_EQ(trigger.signal(), Status::kOk);
  ASSERT_TRUE(poll_until(*loop, [&] { return added_calls == 1 && posted_calls == 1; }));
  EXPECT_EQ(results, std::vector<Status>(results.size(), Status::kOk));
  EXPECT_EQ(results.size(), 6U);
  EXPECT_TRUE(added_ok);
  EXPECT_EQ(loop->poll(0ms).value(), 0);
  EXPECT_EQ(victim_calls, 0);
  EXPECT_EQ(paused_calls, 0);
}

TEST(EventLoop, RemoveDestroysTheHandlerBeforeReturning) {
  auto loop = make_loop();
  ASSERT_TRUE(loop);
  EventFd e = make_event_fd();
  auto token = std::make_shared<int>(1);
  std::weak_ptr<int> watch = token;
  auto id = loop->add_event_fd(e, [token](std::uint64_t) {});
  token.reset();
  ASSERT_TRUE(id);
  EXPECT_FALSE(watch.expired());
  ASSERT_EQ(loop->remove(*id), Status::kOk);
  EXPECT_TRUE(watch.expired());
}

TEST(EventLoop, NestedPollIsRefused) {
  auto loop = make_loop();
  ASSERT_TRUE(loop);
  std::optional<Status> nested;
  ASSERT_TRUE(loop->post([&] {
    auto r = loop->poll(0ms);
    nested = r ? Status::kOk : r.error().status;
  }));
  ASSERT_TRUE(poll_until(*loop, [&] { return nested.has_value(); }));
  EXPECT_EQ(*nested, Status::kBusy);
}

// ---- driving the loop ----

TEST(EventLoop, FdIntegratesWithAnOuterEpoll) {
  auto loop = make_loop();
  ASSERT_TRUE(loop);
  EventFd e = make_event_fd();
  std::uint64_t got = 0;
  ASSERT_TRUE(loop->add_event_fd(e, [&](std::uint64_t n) { got += n; }));

  UniqueFd outer(::epoll_create1(EPOLL_CLOEXEC));
  ASSERT_TRUE(outer);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 42;
  ASSERT_EQ(::epoll_ctl(outer.get(), EPOLL_CTL_ADD, loop->fd(), &ev), 0);

  epoll_event out{};
  EXPECT_EQ(::epoll_wait(outer.get(), &out, 1, 0), 0);  // idle: not readable
  ASSERT_EQ(e.signal(4), Status::kOk);
  ASSERT_EQ(::epoll_wait(outer.get(), &out, 1, 5000), 1);
  EXPECT_EQ(out.data.u64, 42U);
  EXPECT_EQ(loop->poll(0ms).value(), 1);
  EXPECT_EQ(got, 4U);
  EXPECT_EQ(::epoll_wait(outer.get(), &out, 1, 0), 0);  // drained
}

TEST(EventLoop, OwnThreadRunsUntilStopped) {
  auto loop = make_loop();
  ASSERT_TRUE(loop);
  ASSERT_EQ(loop->start_thread(), Status::kOk);
  EXPECT_EQ(loop->start_thread(), Status::kBusy);
  std::promise<std::thread::id> where;
  ASSERT_TRUE(loop->post([&] { where.set_value(std::this_thread::get_id()); }));
  auto f = where.get_future();
  ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
  EXPECT_NE(f.get(), std::this_thread::get_id());
  loop->stop();
  loop->join();  // returns: the thread ended

  // No thread any more: a post waits for someone to poll.
  bool ran = false;
  ASSERT_TRUE(loop->post([&] { ran = true; }));
  ASSERT_TRUE(poll_until(*loop, [&] { return ran; }));
  // And the thread can be started again.
  ASSERT_EQ(loop->start_thread(), Status::kOk);
  loop->stop();
  loop->join();
}

TEST(EventLoop, StopBeforeRunEndsTheRun) {
  auto loop = make_loop();
  ASSERT_TRUE(loop);
  loop->stop();
  EXPECT_EQ(loop->run(), Status::kOk);  // would block forever otherwise
}

TEST(EventLoop, DestructorStopsAndJoinsItsThread) {
  std::atomic<bool> ran{false};
  {
    auto loop = make_loop();
    ASSERT_TRUE(loop);
    ASSERT_EQ(loop->start_thread(), Status::kOk);
    std::promise<void> p;
    ASSERT_TRUE(loop->post([&] {
      ran = true;
      p.set_value();
    }));
    ASSERT_EQ(p.get_future().wait_for(10s), std::future_status::ready);
  }
  EXPECT_TRUE(ran.load());
}

TEST(EventLoop, ManyThreadsSignalAndPostConcurrently) {
  auto loop = make_loop();
  ASSERT_TRUE(loop);
  EventFd e = make_event_fd();
  constexpr int kThreads = 4;
  constexpr int kSignals = 2000;
  constexpr std::uint64_t kTotal = std::uint64_t{kThreads} * kSignals;
  std::uint64_t total = 0;  // loop thread only
  int posts = 0;            // loop thread only
  std::promise<void> all_in;
  bool reported = false;
  auto check = [&] {
    if (!reported && total == kTotal && posts == kThreads * 10) {
      reported = true;
      all_in.set_value();
    }
  };
  ASSERT_TRUE(loop->add_event_fd(e, [&](std::uint64_t n) {
    total += n;
    check();
  }));
  ASSERT_EQ(loop->start_thread(), Status::kOk);

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kSignals; ++i) {
        ASSERT_EQ(e.signal(), Status::kOk);
        if (i % 200 == 0) {
          ASSERT_TRUE(loop->post([&] {
            ++posts;
            check();
          }));
        }
      }
    });
  }
  // Meanwhile another thread churns sources of its own.
  std::thread churn([&] {
    for (int i = 0; i < 100; ++i) {
      EventFd own = make_event_fd();
      auto id = loop->add_event_fd(own, [](std::uint64_t) {});
      ASSERT_TRUE(id);
      ASSERT_EQ(own.signal(), Status::kOk);
      ASSERT_EQ(loop->disable(*id), Status::kOk);
      ASSERT_EQ(loop->enable(*id), Status::kOk);
      ASSERT_EQ(loop->remove(*id), Status::kOk);
    }
  });
  for (auto& t : threads) t.join();
  churn.join();
  ASSERT_EQ(all_in.get_future().wait_for(30s), std::future_status::ready);
  loop->stop();
  loop->join();
  EXPECT_EQ(total, kTotal);
  EXPECT_EQ(posts, kThreads * 10);
}

}  // namespace
}  // namespace amp::metal
