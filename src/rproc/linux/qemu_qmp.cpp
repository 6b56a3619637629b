// SPDX-License-Identifier: BSD-3-Clause
#include "amp/rproc/linux/qemu_qmp.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <thread>
#include <utility>

namespace amp::rproc {

using metal::sys_fail;
using metal::SysResult;
using Clock = std::chrono::steady_clock;

namespace {

/// A parsed JSON value: its kind, the value of a string, and for containers their members or items. Every
/// value also keeps where its text is in the message, so that a part of it can be handed on as JSON text.
struct Json {
  enum class Kind : std::uint8_t { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  std::string string;  // a string's value
  // An object's members, keys[i] naming values[i] (two vectors: a pair would need Json complete).
  std::vector<std::string> keys;
  std::vector<Json> values;
  std::vector<Json> items;
  std::size_t begin = 0;  // the value's text in the message
  std::size_t end = 0;

  const Json* get(std::string_view key) const {
    if (kind != Kind::kObject) return nullptr;
    for (std::size_t i = 0; i < keys.size(); ++i)
      if (keys[i] == key) return &values[i];
    return nullptr;
  }
  /// The member `key` if it is a string, else "".
  std::string text_of(std::string_view key) const {
    const Json* v = get(key);
    return v != nullptr && v->kind == Kind::kString ? v->string : std::string();
  }
};

/// A recursive-descent reader of one JSON text, strict (RFC 8259), nesting at most kMaxDepth deep.
class JsonReader {
 public:
  explicit JsonReader(std::string_view text) : s_(text) {}

  std::optional<Json> read() {
    Json v;
    if (!value(v, 0)) return std::nullopt;
    space();
    if (pos_ != s_.size()) return std::nullopt;  // something after the value
    return v;
  }

 private:
  static constexpr int kMaxDepth = 32;

  void space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }
  bool take(char c) {
    space();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }
  static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  bool hex4(std::uint32_t& out) {
    if (s_.size() - pos_ < 4) return false;
    out = 0;
    for (int i = 0; i < 4; ++i) {
      const int d = hex_digit(s_[pos_++]);
      if (d < 0) return false;
      out = out * 16 + static_cast<std::uint32_t>(d);
    }
    return true;
  }
  static void utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  bool string(std::string& out) {
    if (pos_ >= s_.size() || s_[pos_] != '"') return false;
    ++pos_;
    while (pos_ < s_.size()) {
      const char c = s_[pos_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return false;  // control characters must be escaped
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= s_.size()) return false;
      const char e = s_[pos_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out += e;
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          std::uint32_t cp = 0;
          if (!hex4(cp)) return false;
          if (cp >= 0xD800 && cp < 0xDC00 && s_.substr(pos_, 2) == "\\u") {  // a surrogate pair
            const std::size_t at = pos_;
            pos_ += 2;
            std::uint32_t low = 0;
            if (hex4(low) && low >= 0xDC00 && low < 0xE000) {
              cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            } else {
              pos_ = at;  // a lone high surrogate: kept as it is
            }
          }
          utf8(out, cp);
          break;
        }
        default:
          return false;
      }
    }
    return false;  // unterminated
  }
  bool number() {
    const std::size_t start = pos_;
    if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
    auto digits = [&] {
      const std::size_t from = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
      return pos_ > from;
    };
    if (!digits()) return false;
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      if (!digits()) return false;
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (!digits()) return false;
    }
    return pos_ > start;
  }
  bool value(Json& v, int depth) {
    if (depth > kMaxDepth) return false;
    space();
    if (pos_ >= s_.size()) return false;
    v.begin = pos_;
    const char c = s_[pos_];
    bool good = false;
    if (c == '{') {
      ++pos_;
      v.kind = Json::Kind::kObject;
      good = take('}');
      while (!good) {
        space();
        std::string key;
        Json member;
        if (!string(key) || !take(':') || !value(member, depth + 1)) return false;
        v.keys.push_back(std::move(key));
        v.values.push_back(std::move(member));
        if (take('}')) {
          good = true;
        } else if (!take(',')) {
          return false;
        }
      }
    } else if (c == '[') {
      ++pos_;
      v.kind = Json::Kind::kArray;
      good = take(']');
      while (!good) {
        Json item;
        if (!value(item, depth + 1)) return false;
        v.items.push_back(std::move(item));
        if (take(']')) {
          good = true;
        } else if (!take(',')) {
          return false;
        }
      }
    } else if (c == '"') {
      v.kind = Json::Kind::kString;
      good = string(v.string);
    } else if (c == 't' || c == 'f') {
      v.kind = Json::Kind::kBool;
      good = literal(c == 't' ? "true" : "false");
    } else if (c == 'n') {
      good = literal("null");
    } else {
      v.kind = Json::Kind::kNumber;
      good = number();
    }
    v.end = pos_;
    return good;
  }

  std::string_view s_;
  std::size_t pos_ = 0;
};

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 1'000'000'000));
}

/// Whether `fd` (a pidfd) is readable within `ms`; false for fd -1 (after sleeping `ms`).
bool readable_within(int fd, int ms) {
  if (fd < 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return false;
  }
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, ms) > 0;
}

std::string clip(std::string_view text) {
  constexpr std::size_t kMax = 200;
  return text.size() <= kMax ? std::string(text) : std::string(text.substr(0, kMax)) + "...";
}

}  // namespace

std::string qmp_quote(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\u00";
      out += kHex[u >> 4];
      out += kHex[u & 0xF];
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

SysResult<QmpClient> QmpClient::connect(const std::string& path, std::chrono::milliseconds timeout,
                                        int alive_fd) {
  return connect(path, Clock::now() + timeout, timeout, alive_fd);
}

SysResult<QmpClient> QmpClient::connect(const std::string& path, Clock::time_point deadline,
                                        std::chrono::milliseconds timeout, int alive_fd) {
  std::optional<metal::UnixSocket> socket;
  std::string last_error;
  for (;;) {
    auto s = metal::UnixSocket::connect(path);
    if (s) {
      socket.emplace(std::move(*s));
      break;
    }
    last_error = s.error().message;
    if (s.error().status != Status::kNotFound && s.error().sys_errno != ECONNREFUSED)
      return sys_fail(s.error().status, "QEMU's QMP socket: " + last_error);
    if (readable_within(alive_fd, std::min(5, remaining_ms(deadline))))
      return sys_fail(Status::kClosed, "QEMU ended before its QMP socket " + path + " answered");
    if (Clock::now() >= deadline) {
      return sys_fail(Status::kTimeout, "QEMU's QMP socket " + path + " did not appear within " +
                                            std::to_string(timeout.count()) + " ms (" + last_error + ")");
    }
  }
  if (const Status st = socket->set_nonblocking(true); !ok(st))
    return sys_fail(st, "QEMU's QMP socket: making it non-blocking");
  QmpClient client(std::move(*socket));
  // The greeting: {"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, ...}, ...}}
  auto greeting = client.read_line(deadline);
  if (!greeting) {
    if (greeting.error().status == Status::kTimeout) {
      return sys_fail(Status::kTimeout, "QEMU's QMP socket " + path + " did not answer within " +
                                            std::to_string(timeout.count()) + " ms (no greeting)");
    }
    return sys_fail(greeting.error().status, "QEMU's QMP greeting: " + greeting.error().message);
  }
  auto parsed = JsonReader(*greeting).read();
  const Json* qmp = parsed ? parsed->get("QMP") : nullptr;
  if (qmp == nullptr)
    return sys_fail(Status::kMalformed, "QEMU's QMP socket " + path + " greeted with " + clip(*greeting));
  if (const Json* version = qmp->get("version"); version != nullptr) {
    if (const Json* q = version->get("qemu"); q != nullptr) {
      auto part = [&](const char* key) {
        const Json* v = q->get(key);
        return v != nullptr && v->kind == Json::Kind::kNumber ? greeting->substr(v->begin, v->end - v->begin)
                                                              : std::string("?");
      };
      client.version_ = part("major") + "." + part("minor") + "." + part("micro");
    }
  }
  const auto left = std::chrono::milliseconds(remaining_ms(deadline));
  if (auto caps = client.execute("qmp_capabilities", left); !caps) {
    if (caps.error().status == Status::kTimeout) {
      return sys_fail(Status::kTimeout, "QEMU's QMP socket " + path + " did not answer within " +
                                            std::to_string(timeout.count()) + " ms (qmp_capabilities)");
    }
    return Unexpected<metal::SysError>(std::move(caps).error());
  }
  return client;
}

SysResult<std::string> QmpClient::read_line(Clock::time_point deadline) {
  for (;;) {
    const std::size_t nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty()) continue;
      return line;
    }
    if (buffer_.size() > kMaxLine)
      return sys_fail(Status::kMalformed, "a QMP message longer than " + std::to_string(kMaxLine) + " bytes");
    pollfd p{socket_.fd(), POLLIN, 0};
    const int n = ::poll(&p, 1, remaining_ms(deadline));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_fail("poll on the QMP socket");
    if (n == 0) return sys_fail(Status::kTimeout, "no answer from QEMU");
    char chunk[4096];
    const ssize_t got = ::recv(socket_.fd(), chunk, sizeof chunk, MSG_DONTWAIT);
    if (got < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (got < 0 && errno == ECONNRESET) return sys_fail(Status::kClosed, "QEMU closed its QMP socket");
    if (got < 0) return sys_fail("reading the QMP socket");
    if (got == 0) return sys_fail(Status::kClosed, "QEMU closed its QMP socket");
    buffer_.append(chunk, static_cast<std::size_t>(got));
  }
}

SysResult<std::string> QmpClient::execute(std::string_view command, std::chrono::milliseconds timeout,
                                          std::string_view arguments) {
  const auto deadline = Clock::now() + timeout;
  const std::string name(command);
  const std::string id = std::to_string(next_id_++);
  std::string message = "{\"execute\": " + qmp_quote(command);
  if (!arguments.empty()) message += ", \"arguments\": " + std::string(arguments);
  message += ", \"id\": " + id + "}\n";
  for (std::size_t sent = 0; sent < message.size();) {
    const ssize_t n =
        ::send(socket_.fd(), message.data() + sent, message.size() - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{socket_.fd(), POLLOUT, 0};
      if (::poll(&p, 1, remaining_ms(deadline)) == 0)
        return sys_fail(Status::kTimeout, "QMP " + name + ": QEMU does not read its QMP socket");
      continue;
    }
    if (errno == EPIPE || errno == ECONNRESET)
      return sys_fail(Status::kClosed, "QMP " + name + ": QEMU is gone");
    return sys_fail("QMP " + name + ": writing the socket");
  }
  for (;;) {
    auto line = read_line(deadline);
    if (!line) {
      metal::SysError e = std::move(line).error();
      if (e.status == Status::kTimeout) {
        e.message = "QMP " + name + ": no answer from QEMU within " + std::to_string(timeout.count()) + " ms";
      } else {
        e.message = "QMP " + name + ": " + e.message;
      }
      return Unexpected<metal::SysError>(std::move(e));
    }
    auto parsed = JsonReader(*line).read();
    if (!parsed || parsed->kind != Json::Kind::kObject)
      return sys_fail(Status::kMalformed,
                      "QMP " + name + ": QEMU sent what is not a JSON object: " + clip(*line));
    if (const Json* event = parsed->get("event"); event != nullptr) {
      if (event->kind == Json::Kind::kString && events_.size() < 64) events_.push_back(event->string);
      continue;
    }
    const Json* got_id = parsed->get("id");
    if (got_id == nullptr || line->substr(got_id->begin, got_id->end - got_id->begin) != id)
      continue;  // the late answer to an earlier command, or no answer to ours
    if (const Json* ret = parsed->get("return"); ret != nullptr)
      return line->substr(ret->begin, ret->end - ret->begin);
    if (const Json* error = parsed->get("error"); error != nullptr) {
      return sys_fail(Status::kIoError,
                      "QMP " + name + ": " + error->text_of("class") + ": " + error->text_of("desc"));
    }
    return sys_fail(Status::kMalformed,
                    "QMP " + name + ": an answer without return or error: " + clip(*line));
  }
}

SysResult<std::string> QmpClient::status(std::chrono::milliseconds timeout) {
  auto ret = execute("query-status", timeout);
  if (!ret) return ret;
  auto parsed = JsonReader(*ret).read();
  const Json* s = parsed ? parsed->get("status") : nullptr;
  if (s == nullptr || s->kind != Json::Kind::kString)
    return sys_fail(Status::kMalformed, "QMP query-status: no status in " + clip(*ret));
  return s->string;
}

std::vector<std::string> QmpClient::take_events() {
  return std::exchange(events_, {});
}

}  // namespace amp::rproc
