#include "net/multistream.hpp"

#include <utility>

#include "core/varint.hpp"

namespace p2pmq::multistream {

Bytes encode_message(std::string_view text) {
  Bytes out;
  out.reserve(text.size() + 3);
  varint_append(out, text.size() + 1);
  append(out, as_bytes(text));
  out.push_back('\n');
  return out;
}

void Reader::feed(BytesView data) {
  // Drop consumed bytes first, so the buffer holds only unconsumed input.
  buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(pos_));
  pos_ = 0;
  append(buf_, data);
}

Result<std::optional<std::string>> Reader::next() {
  BytesView rest = BytesView(buf_).subspan(pos_);
  auto header = varint_decode(rest);
  if (!header) return fail(Errc::invalid_input, "multistream: bad length prefix");
  if (!*header) return std::nullopt;
  const uint64_t len = (*header)->value;
  if (len > kMaxMessage) {
    return fail(Errc::limit_exceeded,
                "multistream: message of " + std::to_string(len) + " bytes is too long");
  }
  if (len == 0) return fail(Errc::invalid_input, "multistream: empty message");
  const size_t prefix = (*header)->length;
  if (rest.size() - prefix < len) return std::nullopt;
  BytesView body = rest.subspan(prefix, len);
  if (body.back() != '\n') return fail(Errc::invalid_input, "multistream: missing newline");
  std::string text(as_string(body.first(len - 1)));
  pos_ += prefix + len;
  return text;
}

Bytes Reader::take_remaining() {
  Bytes rest(buf_.begin() + static_cast<std::ptrdiff_t>(pos_), buf_.end());
  buf_.clear();
  pos_ = 0;
  return rest;
}

Dialer::Dialer(std::vector<std::string> protocols) : protocols_(std::move(protocols)) {}

Bytes Dialer::start() {
  Bytes out = encode_message(kProtocolId);
  if (protocols_.empty()) {
    error_ = Error{Errc::invalid_input, "multistream: no protocol to propose"};
  } else {
    append(out, encode_message(protocols_[0]));
  }
  return out;
}

Result<void> Dialer::feed(BytesView data) {
  if (error_) return tl::unexpected(*error_);
  reader_.feed(data);
  // Stop at the acknowledgement: what follows belongs to the selected protocol.
  while (!done_) {
    auto msg = reader_.next();
    if (!msg) {
      error_ = msg.error();
      return tl::unexpected(*error_);
    }
    if (!*msg) break;
    const std::string& text = **msg;
    if (!header_seen_) {
      if (text != kProtocolId) {
        error_ = Error{Errc::protocol_violation, "multistream: unexpected header '" + text + "'"};
        return tl::unexpected(*error_);
      }
      header_seen_ = true;
    } else if (text == protocols_[current_]) {
      selected_ = text;
      done_ = true;
    } else if (text == kNa) {
      if (++current_ == protocols_.size()) {
        std::string names;
        for (const auto& p : protocols_) names += (names.empty() ? "" : ", ") + p;
        error_ = Error{Errc::unsupported, "multistream: peer supports none of " + names};
        return tl::unexpected(*error_);
      }
      append(out_, encode_message(protocols_[current_]));
    } else {
      error_ = Error{Errc::protocol_violation,
                     "multistream: proposed '" + protocols_[current_] + "', got '" + text + "'"};
      return tl::unexpected(*error_);
    }
  }
  return {};
}

Bytes Dialer::take_output() {
  return std::exchange(out_, {});
}

Listener::Listener(std::function<bool(std::string_view)> supports)
    : supports_(std::move(supports)), out_(encode_message(kProtocolId)) {}

Result<void> Listener::feed(BytesView data) {
  if (error_) return tl::unexpected(*error_);
  reader_.feed(data);
  while (!done_) {
    auto msg = reader_.next();
    if (!msg) {
      error_ = msg.error();
      return tl::unexpected(*error_);
    }
    if (!*msg) break;
    const std::string& text = **msg;
    if (!header_seen_) {
      if (text != kProtocolId) {
        error_ = Error{Errc::protocol_violation, "multistream: unexpected header '" + text + "'"};
        return tl::unexpected(*error_);
      }
      header_seen_ = true;
    } else if (text != kLs && text != kNa && !text.empty() && supports_(text)) {
      selected_ = text;
      done_ = true;
      append(out_, encode_message(text));
    } else {
      // Bounded, so a dialer cannot keep the stream busy with endless guesses.
      if (++refused_ > kMaxAttempts) {
        error_ = Error{Errc::limit_exceeded, "multistream: too many refused proposals"};
        return tl::unexpected(*error_);
      }
      append(out_, encode_message(kNa));
    }
  }
  return {};
}

Bytes Listener::take_output() {
  return std::exchange(out_, {});
}

}  // namespace p2pmq::multistream
