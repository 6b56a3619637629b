// SPDX-License-Identifier: BSD-3-Clause
// QmpClient against a scripted QMP server (a thread of the test on a UNIX socket): what QEMU may send that
// is wrong (not JSON, too long, too deep, refusals, a hang-up) gives a clear error and never a hang; strings
// are decoded; arguments are quoted.
#include "amp/rproc/linux/qemu_qmp.hpp"

#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>

#include "amp/metal/linux/unix_socket.hpp"

namespace amp::rproc {
namespace {

using namespace std::chrono_literals;

/// A QMP server that greets, accepts qmp_capabilities, then answers each command with `answer(command
/// line, id)`: the lines to send back ("" sends nothing; "CLOSE" hangs up).
class ScriptedQmp {
 public:
  using Answer = std::function<std::string(const std::string& line, const std::string& id)>;

  explicit ScriptedQmp(Answer answer) : answer_(std::move(answer)) {
    std::string dir = (std::filesystem::temp_directory_path() / "amp-qmp-test-XXXXXX").string();
    EXPECT_NE(::mkdtemp(dir.data()), nullptr);
    dir_ = dir;
    path_ = dir_ + "/qmp.sock";
    auto listener = metal::UnixListener::listen(path_);
    EXPECT_TRUE(listener);
    thread_ = std::thread([this, l = std::move(*listener)]() mutable { serve(l); });
  }
  ~ScriptedQmp() {
    if (thread_.joinable()) thread_.join();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  void serve(metal::UnixListener& listener) {
    auto s = listener.accept(5s);
    if (!s) return;
    auto send = [&](const std::string& text) { return ok(s->send_all(std::as_bytes(std::span(text)))); };
    send(
        "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 1, \"minor\": 2, \"major\": 7}}, \"capabilities\": "
        "[]}}\r\n");
    std::string buffer;
    for (;;) {
      char chunk[512];
      auto n = s->receive(std::as_writable_bytes(std::span(chunk)));
      if (!n || *n == 0) return;
      buffer.append(chunk, *n);
      for (auto nl = buffer.find('\n'); nl != std::string::npos; nl = buffer.find('\n')) {
        const std::string line = buffer.substr(0, nl);
        buffer.erase(0, nl + 1);
        const auto at = line.find("\"id\": ");
        const std::string id =
            at == std::string::npos ? "" : line.substr(at + 6, line.find('}', at) - at - 6);
        std::string reply = line.find("qmp_capabilities") != std::string::npos
                                ? "{\"return\": {}, \"id\": " + id + "}\r\n"
                                : answer_(line, id);
        if (reply == "CLOSE") return;
        if (!reply.empty() && !send(reply)) return;
      }
    }
  }

  Answer answer_;
  std::string dir_;
  std::string path_;
  std::thread thread_;
};

TEST(QmpClient, ConnectsAndDecodesStrings) {
  ScriptedQmp server([](const std::string&, const std::string& id) {
    return "{\"event\": \"STOP\"}\n{\"return\": {\"status\": \"r\\u00e9\\\"x\\\\\\ud83d\\ude00\", "
           "\"running\": false}, "
           "\"id\": " +
           id + "}\n";
  });
  auto qmp = QmpClient::connect(server.path(), 2s);
  ASSERT_TRUE(qmp) << qmp.error().message;
  EXPECT_EQ(qmp->version(), "7.2.1");
  auto status = qmp->status(1s);
  ASSERT_TRUE(status) << status.error().message;
  EXPECT_EQ(*status, "r\xC3\xA9\"x\\\xF0\x9F\x98\x80");
  EXPECT_EQ(qmp->take_events(), std::vector<std::string>{"STOP"});
}

TEST(QmpClient, RefusalsAreErrorsWithQemusWords) {
  ScriptedQmp server([](const std::string&, const std::string& id) {
    return "{\"error\": {\"class\": \"GenericError\", \"desc\": \"cannot do that\"}, \"id\": " + id + "}\n";
  });
  auto qmp = QmpClient::connect(server.path(), 2s);
  ASSERT_TRUE(qmp) << qmp.error().message;
  auto r = qmp->execute("cont", 1s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, Status::kIoError);
  EXPECT_EQ(r.error().message, "QMP cont: GenericError: cannot do that");
}

TEST(QmpClient, WhatIsNotJsonIsMalformed) {
  for (const std::string bad : {"not json", "{\"return\": {}, \"id\": 2", "{\"return\": {}} trailing",
                                "{\"return\": \"\x01\"}", "[1, 2]"}) {
    SCOPED_TRACE(bad);
    ScriptedQmp server([&](const std::string&, const std::string&) { return bad + "\n"; });
    auto qmp = QmpClient::connect(server.path(), 2s);
    ASSERT_TRUE(qmp) << qmp.error().message;
    auto r = qmp->execute("stop", 1s);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().status, Status::kMalformed) << r.error().message;
    EXPECT_NE(r.error().message.find("QMP stop: QEMU sent what is not a JSON object"), std::string::npos)
        << r.error().message;
  }
}

TEST(QmpClient, TooDeepOrTooLongIsMalformed) {
  {
    ScriptedQmp server([](const std::string&, const std::string& id) {
      return "{\"return\": " + std::string(40, '[') + std::string(40, ']') + ", \"id\": " + id + "}\n";
    });
    auto qmp = QmpClient::connect(server.path(), 2s);
    ASSERT_TRUE(qmp);
    auto r = qmp->execute("stop", 1s);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().status, Status::kMalformed);
  }
  {
    ScriptedQmp server([](const std::string&, const std::string&) {
      return "{\"return\": \"" + std::string(QmpClient::kMaxLine + 10, 'x');  // and no end of line
    });
    auto qmp = QmpClient::connect(server.path(), 2s);
    ASSERT_TRUE(qmp);
    auto r = qmp->execute("stop", 2s);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().status, Status::kMalformed);
    EXPECT_NE(r.error().message.find("longer than 65536 bytes"), std::string::npos) << r.error().message;
  }
}

TEST(QmpClient, SilenceTimesOutAndAHangUpIsClosed) {
  {
    ScriptedQmp server([](const std::string&, const std::string&) { return std::string(); });
    auto qmp = QmpClient::connect(server.path(), 2s);
    ASSERT_TRUE(qmp);
    const auto t0 = std::chrono::steady_clock::now();
    auto r = qmp->execute("query-status", 200ms);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().status, Status::kTimeout);
    EXPECT_EQ(r.error().message, "QMP query-status: no answer from QEMU within 200 ms");
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  }
  {
    ScriptedQmp server([](const std::string&, const std::string&) { return std::string("CLOSE"); });
    auto qmp = QmpClient::connect(server.path(), 2s);
    ASSERT_TRUE(qmp);
    auto r = qmp->execute("quit", 1s);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().status, Status::kClosed) << r.error().message;
  }
}

TEST(QmpClient, NoServerTimesOutNamingTheSocket) {
  const auto t0 = std::chrono::steady_clock::now();
  auto qmp = QmpClient::connect("/nonexistent/amp-qmp.sock", 100ms);
  ASSERT_FALSE(qmp);
  EXPECT_EQ(qmp.error().status, Status::kTimeout);
  EXPECT_NE(
      qmp.error().message.find("QEMU's QMP socket /nonexistent/amp-qmp.sock did not appear within 100 ms"),
      std::string::npos)
      << qmp.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
}

TEST(QmpClient, ArgumentsAreQuoted) {
  EXPECT_EQ(qmp_quote("plain"), "\"plain\"");
  EXPECT_EQ(qmp_quote("a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\u000a\\u0001\"");
}

}  // namespace
}  // namespace amp::rproc
