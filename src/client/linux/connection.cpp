// SPDX-License-Identifier: BSD-3-Clause
#include "amp/client/linux/connection.hpp"

#include <poll.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>

namespace amp::client {

std::string default_socket_path() {
  if (const char* d = std::getenv("RUNTIME_DIRECTORY"); d != nullptr && *d != '\0') {
    std::string dir(d);
    if (const auto colon = dir.find(':'); colon != std::string::npos) dir.resize(colon);
    return dir + "/ampd.sock";
  }
  if (::geteuid() == 0) return "/run/ampd.sock";
  if (const char* x = std::getenv("XDG_RUNTIME_DIR"); x != nullptr && *x != '\0') {
    return std::string(x) + "/ampd.sock";
  }
  return "/tmp/ampd-" + std::to_string(::geteuid()) + ".sock";
}

using metal::sys_fail;
using metal::SysResult;
using Clock = std::chrono::steady_clock;
namespace proto = protocol;

namespace {

std::string describe(proto::Type t) {
  switch (t) {
    case proto::Type::kHello:
      return "hello";
    case proto::Type::kList:
      return "list";
    case proto::Type::kWait:
      return "wait";
    case proto::Type::kOpen:
      return "open";
    case proto::Type::kCreate:
      return "create";
    case proto::Type::kReply:
      return "reply";
    case proto::Type::kService:
      return "service";
    case proto::Type::kRemote:
      return "remote";
  }
  return "type " + std::to_string(static_cast<unsigned>(t));
}

// Waits for `events` on `fd` until `deadline`: kTimeout when it passes first.
Status wait_for_events(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return Status::kTimeout;
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 60'000)));
    if (n > 0) return Status::kOk;
    if (n < 0 && errno != EINTR) return metal::status_from_errno(errno);
  }
}

}  // namespace

SysResult<Connection> Connection::connect(const std::string& path, std::chrono::milliseconds timeout) {
  auto s = metal::UnixSocket::connect(path, timeout, metal::SocketKind::kSeqPacket);
  if (!s) return sys_fail(s.error().status, "ampd at " + path + ": " + s.error().message);
  if (const Status st = s->set_nonblocking(true); !ok(st)) return sys_fail(st, "ampd at " + path);
  Connection c(std::move(*s));
  proto::Message hello{
      .type = proto::Type::kHello, .min_version = proto::kVersion, .max_version = proto::kVersion};
  auto a = c.call(hello, timeout, {}, 0);
  if (!a) return sys_fail(a.error().status, "ampd at " + path + ": " + a.error().message);
  if (!ok(a->reply.status)) {
    return sys_fail(a->reply.status, "ampd at " + path + " speaks no version of " +
                                         std::to_string(proto::kVersion) + ": " + to_string(a->reply.status));
  }
  if (a->reply.value != proto::kVersion) {
    return sys_fail(Status::kMalformed, "ampd at " + path + " answered hello with version " +
                                            std::to_string(a->reply.value) + ", not one it was offered");
  }
  c.version_ = a->reply.value;
  return c;
}

Unexpected<metal::SysError> Connection::out_of_step(std::string what) {
  broken_ = true;
  return sys_fail(Status::kMalformed, "ampd " + what);
}

SysResult<Connection::Answer> Connection::call(proto::Message request, std::chrono::milliseconds timeout,
                                               std::initializer_list<proto::Type> entries, std::size_t fds) {
  if (broken_)
    return sys_fail(Status::kBroken, "the connection to ampd is out of step since an earlier error");
  const auto deadline = Clock::now() + timeout;
  request.id = next_id_++;
  std::array<std::byte, proto::kMaxMessage> buf{};
  auto n = proto::encode(request, buf);
  if (!n) return sys_fail(n.error(), "encoding a " + describe(request.type) + " request");
  for (;;) {
    auto sent = socket_.send(std::span(buf).first(*n));
    if (sent) break;
    if (sent.error().status != Status::kWouldBlock)
      return sys_fail(sent.error().status, sent.error().message);
    if (const Status st = wait_for_events(socket_.fd(), POLLOUT, deadline); !ok(st)) {
      broken_ = st == Status::kTimeout;  // the request may still go out and be answered
      return sys_fail(st, "ampd did not take a " + describe(request.type) + " request within " +
                              std::to_string(timeout.count()) + " ms");
    }
  }
  Answer answer;
  for (;;) {
    if (const Status st = wait_for_events(socket_.fd(), POLLIN, deadline); !ok(st)) {
      broken_ = true;  // its answer may still come, and would be taken for the next request's
      return sys_fail(st, "ampd did not answer a " + describe(request.type) + " request within " +
                              std::to_string(timeout.count()) + " ms");
    }
    std::vector<metal::UniqueFd> got;
    auto r = socket_.receive(buf, &got, fds);
    if (!r) {
      if (r.error().status == Status::kWouldBlock) continue;
      broken_ = true;
      return sys_fail(r.error().status, "ampd's answer: " + r.error().message);
    }
    if (*r == 0) {
      broken_ = true;
      return sys_fail(Status::kClosed, "ampd closed the connection");
    }
    auto m = proto::decode(std::span(buf).first(*r));
    if (!m) return out_of_step("sent a packet of " + std::to_string(*r) + " bytes that is not a message");
    if (m->type != proto::Type::kReply) {
      bool expected = false;
      for (const proto::Type t : entries) expected = expected || t == m->type;
      if (!expected || m->id != request.id || !got.empty()) {
        return out_of_step("sent a " + describe(m->type) + " (id " + std::to_string(m->id) +
                           ") in answer to a " + describe(request.type) + " (id " +
                           std::to_string(request.id) + ")");
      }
      answer.entries.push_back(*m);
      continue;
    }
    if (m->id != request.id) {
      return out_of_step("answered id " + std::to_string(m->id) + " to a " + describe(request.type) +
                         " of id " + std::to_string(request.id));
    }
    const std::size_t want = ok(m->status) ? fds : 0;
    if (got.size() != want) {
      return out_of_step("answered a " + describe(request.type) + " with " + std::to_string(got.size()) +
                         " descriptors, not " + std::to_string(want));
    }
    answer.reply = *m;
    answer.fds = std::move(got);
    return answer;
  }
}

SysResult<std::vector<Remote>> Connection::list(std::uint32_t remote, std::chrono::milliseconds timeout) {
  auto a = call({.type = proto::Type::kList, .remote = remote}, timeout,
                {proto::Type::kRemote, proto::Type::kService}, 0);
  if (!a) return Unexpected(std::move(a).error());
  if (!ok(a->reply.status))
    return sys_fail(a->reply.status, std::string("ampd: list: ") + to_string(a->reply.status));
  std::vector<Remote> out;
  for (const proto::Message& e : a->entries) {
    if (e.type == proto::Type::kRemote) {
      if (e.state > static_cast<std::uint32_t>(rproc::State::kDetached)) {
        return out_of_step("reported remote " + std::to_string(e.remote) + " in state " +
                           std::to_string(e.state));
      }
      out.push_back({e.remote, static_cast<rproc::State>(e.state), std::string(e.name.view()), {}});
      continue;
    }
    if (out.empty() || out.back().index != e.remote) {
      return out_of_step("listed a service of remote " + std::to_string(e.remote) +
                         " outside that remote's entry");
    }
    out.back().services.push_back({e.remote, e.dst, std::string(e.name.view())});
  }
  return out;
}

SysResult<Service> Connection::wait_for(std::uint32_t remote, std::string_view name,
                                        std::chrono::milliseconds timeout) {
  auto n = proto::Name::from(name);
  if (!n) return sys_fail(Status::kInvalidArgument, "a service name is 1 to 31 bytes without NUL");
  if (n->empty()) return sys_fail(Status::kInvalidArgument, "a service name is 1 to 31 bytes without NUL");
  const auto ms = static_cast<std::uint32_t>(std::min<long long>(timeout.count(), 0xFFFFFFFE));
  // ampd has `timeout` to see the announcement; its answer gets a second more to arrive.
  auto a = call({.type = proto::Type::kWait, .remote = remote, .timeout_ms = ms, .name = *n},
                timeout + std::chrono::seconds(1), {proto::Type::kService}, 0);
  if (!a) return Unexpected(std::move(a).error());
  if (!ok(a->reply.status)) {
    return sys_fail(a->reply.status, "ampd: waiting for '" + std::string(name) + "' on remote " +
                                         std::to_string(remote) + ": " + to_string(a->reply.status));
  }
  if (a->entries.size() != 1 || a->entries[0].name.view() != name || a->entries[0].remote != remote) {
    return out_of_step("answered a wait for '" + std::string(name) + "' with " +
                       std::to_string(a->entries.size()) + " services, not that one");
  }
  return Service{remote, a->entries[0].dst, std::string(name)};
}

SysResult<EndpointFd> Connection::endpoint(proto::Message request, std::chrono::milliseconds timeout) {
  auto a = call(request, timeout, {}, 1);
  if (!a) return Unexpected(std::move(a).error());
  if (!ok(a->reply.status)) {
    return sys_fail(a->reply.status, "ampd: " + describe(request.type) + " on remote " +
                                         std::to_string(request.remote) + ": " + to_string(a->reply.status));
  }
  if (a->reply.value == 0) return out_of_step("gave an endpoint whose MTU is 0");
  return EndpointFd{std::move(a->fds[0]), a->reply.local, a->reply.dst, a->reply.value};
}

SysResult<EndpointFd> Connection::open(std::uint32_t remote, std::string_view name,
                                       std::chrono::milliseconds timeout) {
  auto n = proto::Name::from(name);
  if (!n || n->empty())
    return sys_fail(Status::kInvalidArgument, "a service name is 1 to 31 bytes without NUL");
  return endpoint({.type = proto::Type::kOpen, .remote = remote, .name = *n}, timeout);
}

SysResult<EndpointFd> Connection::open_address(std::uint32_t remote, std::uint32_t dst, std::uint32_t local,
                                               std::chrono::milliseconds timeout) {
  if (dst == rpmsg::kAddrAny) return sys_fail(Status::kInvalidArgument, "open_address needs an address");
  return endpoint({.type = proto::Type::kOpen, .remote = remote, .local = local, .dst = dst}, timeout);
}

SysResult<EndpointFd> Connection::create(std::uint32_t remote, std::string_view name, std::uint32_t local,
                                         std::chrono::milliseconds timeout) {
  auto n = proto::Name::from(name);
  if (!n || n->empty())
    return sys_fail(Status::kInvalidArgument, "an endpoint's name is 1 to 31 bytes without NUL");
  return endpoint({.type = proto::Type::kCreate, .remote = remote, .local = local, .name = *n}, timeout);
}

}  // namespace amp::client
