#include "agent/config.hpp"

#include <sys/random.h>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <set>
#include <sstream>
#include <type_traits>

#include "pubsub/params.hpp"

namespace p2pmq::agent {

namespace {

using Ms = std::chrono::milliseconds;
using pubsub::Duration;

// Parsing state: the root (for keys stored outside their section's struct), and where each key
// was written, so that errors found after parsing still carry a line and the user's spelling.
struct Ctx {
  AgentConfig* root = nullptr;
  std::map<std::string, int> lines;            // full path -> 1-based line
  std::map<std::string, std::string> spelled;  // canonical path -> path as written (aliases)
};

tl::unexpected<Error> invalid(std::string message) {
  return fail(Errc::invalid_input, std::move(message));
}

int line_of(const YAML::Node& n) {
  auto m = n.Mark();
  return m.is_null() || m.line < 0 ? 0 : m.line + 1;
}

std::string at(const YAML::Node& n) {
  int line = line_of(n);
  return line ? fmt::format(" (line {})", line) : std::string();
}

tl::unexpected<Error> bad_node(const std::string& path, std::string_view what,
                               const YAML::Node& n) {
  return invalid(fmt::format("{}: {}{}", path.empty() ? "(top level)" : path, what, at(n)));
}

std::string join(const std::string& path, std::string_view name) {
  return path.empty() ? std::string(name) : path + "." + std::string(name);
}

std::string describe(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "'" + n.Scalar() + "'";
    default:
      return "an empty value";
  }
}

// ---- Scalars ----

Result<std::string> get_scalar(const std::string& path, const YAML::Node& n,
                               std::string_view expected) {
  if (!n.IsScalar())
    return bad_node(path, fmt::format("expected {}, got {}", expected, describe(n)), n);
  return n.Scalar();
}

std::optional<uint64_t> to_uint(std::string_view v) {
  uint64_t out = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (v.empty() || ec != std::errc() || end != v.data() + v.size()) return std::nullopt;
  return out;
}

std::optional<double> to_double(std::string_view v) {
  double out = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (v.empty() || ec != std::errc() || end != v.data() + v.size() || !std::isfinite(out))
    return std::nullopt;
  return out;
}

// "500ms", "2s", "1m"; a bare number is milliseconds. The grammar of pubsub::set_gossip_param,
// bounded (31 years) so that no conversion overflows.
std::optional<Duration> to_duration(std::string_view v) {
  double scale_ns = 1e6;
  if (v.ends_with("ms")) {
    v.remove_suffix(2);
  } else if (v.ends_with("s")) {
    v.remove_suffix(1);
    scale_ns = 1e9;
  } else if (v.ends_with("m")) {
    v.remove_suffix(1);
    scale_ns = 60e9;
  }
  auto d = to_double(v);
  if (!d || *d < 0 || *d * scale_ns > 1e18) return std::nullopt;
  return Duration(static_cast<Duration::rep>(std::llround(*d * scale_ns)));
}

std::string format_duration(Duration d) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  constexpr int64_t kMinute = 60'000'000'000, kSecond = 1'000'000'000, kMilli = 1'000'000;
  if (ns != 0 && ns % kMinute == 0) return fmt::format("{}m", ns / kMinute);
  if (ns != 0 && ns % kSecond == 0) return fmt::format("{}s", ns / kSecond);
  if (ns % kMilli == 0) return fmt::format("{}ms", ns / kMilli);
  return fmt::format("{}ms", static_cast<double>(ns) / 1e6);
}

Result<uint64_t> get_uint(const std::string& path, const YAML::Node& n) {
  auto text = get_scalar(path, n, "a whole number");
  if (!text) return tl::unexpected(text.error());
  auto v = to_uint(*text);
  if (!v) return bad_node(path, fmt::format("expected a whole number, got '{}'", *text), n);
  return *v;
}

Result<double> get_double(const std::string& path, const YAML::Node& n) {
  auto text = get_scalar(path, n, "a number");
  if (!text) return tl::unexpected(text.error());
  auto v = to_double(*text);
  if (!v) return bad_node(path, fmt::format("expected a finite number, got '{}'", *text), n);
  return *v;
}

constexpr std::string_view kDurationHelp =
    "expected a duration such as 500ms, 2s or 1m (a bare number is milliseconds)";

Result<Duration> get_duration(const std::string& path, const YAML::Node& n) {
  auto text = get_scalar(path, n, "a duration");
  if (!text) return tl::unexpected(text.error());
  auto v = to_duration(*text);
  if (!v) return bad_node(path, fmt::format("{}, got '{}'", kDurationHelp, *text), n);
  return *v;
}

Result<bool> get_bool(const std::string& path, const YAML::Node& n) {
  auto text = get_scalar(path, n, "true or false");
  if (!text) return tl::unexpected(text.error());
  if (*text == "true" || *text == "yes") return true;
  if (*text == "false" || *text == "no") return false;
  return bad_node(path, fmt::format("expected true or false, got '{}'", *text), n);
}

template <class E>
using Names = std::vector<std::pair<std::string, E>>;

template <class E>
std::string list_names(const Names<E>& names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i) out += i + 1 == names.size() ? " or " : ", ";
    out += names[i].first;
  }
  return out;
}

template <class E>
Result<E> get_enum(const std::string& path, const YAML::Node& n, const Names<E>& names) {
  auto text = get_scalar(path, n, list_names(names));
  if (!text) return tl::unexpected(text.error());
  for (const auto& [name, value] : names)
    if (name == *text) return value;
  return bad_node(path, fmt::format("expected {}, got '{}'", list_names(names), *text), n);
}

template <class E>
std::string enum_name(const Names<E>& names, E value) {
  for (const auto& [name, v] : names)
    if (v == value) return name;
  return "?";
}

const Names<pubsub::MessageIdFn>& message_id_fns() {
  static const Names<pubsub::MessageIdFn> names{{"p2pmq", pubsub::MessageIdFn::p2pmq},
                                                {"stock", pubsub::MessageIdFn::stock},
                                                {"content", pubsub::MessageIdFn::content},
                                                {"rust", pubsub::MessageIdFn::rust}};
  return names;
}
const Names<pubsub::SignaturePolicy>& signature_policies() {
  static const Names<pubsub::SignaturePolicy> names{
      {"strict_sign", pubsub::SignaturePolicy::strict_sign},
      {"strict_no_sign", pubsub::SignaturePolicy::strict_no_sign}};
  return names;
}
const Names<Role>& roles() {
  static const Names<Role> names{
      {"agent", Role::agent}, {"archive", Role::archive}, {"bootstrapper", Role::bootstrapper}};
  return names;
}
const Names<ValidationSettings::Policy>& policies() {
  static const Names<ValidationSettings::Policy> names{
      {"ignore", ValidationSettings::Policy::ignore},
      {"accept", ValidationSettings::Policy::accept}};
  return names;
}
const Names<DhtSettings::Mode>& dht_modes() {
  using M = DhtSettings::Mode;
  static const Names<M> names{{"auto", M::automatic},
                              {"client", M::client},
                              {"server", M::server},
                              {"bootstrapper", M::bootstrapper}};
  return names;
}
const Names<SyncSettings::Durability>& durabilities() {
  using D = SyncSettings::Durability;
  static const Names<D> names{{"process_crash", D::process_crash}, {"power_loss", D::power_loss}};
  return names;
}
const std::vector<std::string>& log_levels() {
  static const std::vector<std::string> names{"trace", "debug",    "info", "warn",
                                              "error", "critical", "off"};
  return names;
}

// ---- Lists: a YAML list, or a single scalar standing for a one-element list ----

using ItemFn = std::function<Result<void>(const std::string& item_path, const YAML::Node& item)>;

Result<void> for_each_item(Ctx& ctx, const std::string& path, const YAML::Node& n,
                           const ItemFn& fn) {
  if (n.IsNull()) return {};
  if (n.IsScalar()) return fn(path, n);
  if (!n.IsSequence()) return bad_node(path, "expected a list, got " + describe(n), n);
  for (size_t i = 0; i < n.size(); ++i) {
    std::string item_path = fmt::format("{}[{}]", path, i);
    ctx.lines[item_path] = line_of(n[i]);
    if (auto r = fn(item_path, n[i]); !r) return r;
  }
  return {};
}

enum class AddrUse { listen, dial };

Result<Multiaddr> get_multiaddr(const std::string& path, const YAML::Node& n, AddrUse use) {
  auto text = get_scalar(path, n, "a multiaddr");
  if (!text) return tl::unexpected(text.error());
  auto addr = Multiaddr::parse(*text);
  if (!addr)
    return bad_node(path,
                    fmt::format("expected a multiaddr such as /ip4/127.0.0.1/tcp/4001, got '{}' "
                                "({})",
                                *text, addr.error().message),
                    n);
  auto target = addr->tcp_target();
  if (use == AddrUse::listen) {
    if (!target || target->is_dns)
      return bad_node(path,
                      fmt::format("a listen address must be /ip4/<ip>/tcp/<port> or "
                                  "/ip6/<ip>/tcp/<port>, got '{}'",
                                  *text),
                      n);
    if (addr->p2p())
      return bad_node(path, fmt::format("a listen address has no /p2p/ part, got '{}'", *text), n);
  } else {
    if (!target)
      return bad_node(path,
                      fmt::format("expected a TCP address (/ip4, /ip6 or /dns then /tcp/<port>), "
                                  "got '{}'",
                                  *text),
                      n);
    auto peer = addr->p2p();
    if (!peer) return bad_node(path, fmt::format("must end in /p2p/<peer id>, got '{}'", *text), n);
    if (auto id = crypto::PeerId::from_bytes(*peer); !id)
      return bad_node(path, fmt::format("bad peer id in '{}': {}", *text, id.error().message), n);
  }
  return *addr;
}

// ---- Field tables ----

template <class S>
struct Field {
  std::string name;
  std::function<Result<void>(Ctx&, S&, const std::string& path, const YAML::Node&)> set;
  // nullopt: leave the key out of a dump (unset optional overrides).
  std::function<std::optional<YAML::Node>(const AgentConfig&, const S&)> emit;
  // The keys under this one, for config_keys(); empty for a leaf.
  std::function<std::vector<std::string>()> children;
  bool is_duration = false;
};
template <class S>
using Fields = std::vector<Field<S>>;
using Aliases = std::map<std::string, std::string, std::less<>>;

YAML::Node scalar_node(const std::string& text) {
  return YAML::Node(text);
}

template <class S, class T, class Parse, class Format>
Field<S> value_field(std::string name, T S::*member, Parse parse, Format format) {
  return {
      std::move(name),
      [member, parse](Ctx&, S& s, const std::string& path, const YAML::Node& n) -> Result<void> {
        auto v = parse(path, n);
        if (!v) return tl::unexpected(v.error());
        s.*member = std::move(*v);
        return {};
      },
      [member, format](const AgentConfig&, const S& s) -> std::optional<YAML::Node> {
        return scalar_node(format(s.*member));
      },
      {}};
}

template <class S, class T>
Field<S> uint_field(std::string name, T S::*member) {
  return value_field(
      std::move(name), member,
      [](const std::string& path, const YAML::Node& n) -> Result<T> {
        auto v = get_uint(path, n);
        if (!v) return tl::unexpected(v.error());
        if constexpr (sizeof(T) < sizeof(uint64_t)) {
          if (*v > std::numeric_limits<T>::max())
            return bad_node(
                path, fmt::format("must be at most {}, got {}", std::numeric_limits<T>::max(), *v),
                n);
        }
        return static_cast<T>(*v);
      },
      [](T v) { return fmt::format("{}", v); });
}

template <class S>
Field<S> double_field(std::string name, double S::*member) {
  return value_field(std::move(name), member, get_double,
                     [](double v) { return fmt::format("{}", v); });
}

template <class S>
Field<S> bool_field(std::string name, bool S::*member) {
  return value_field(std::move(name), member, get_bool,
                     [](bool v) { return std::string(v ? "true" : "false"); });
}

template <class D>
Result<D> get_duration_as(const std::string& path, const YAML::Node& n) {
  auto d = get_duration(path, n);
  if (!d) return tl::unexpected(d.error());
  auto out = std::chrono::duration_cast<D>(*d);
  if (std::chrono::duration_cast<Duration>(out) != *d)
    return bad_node(
        path,
        fmt::format("must be a whole number of {}, got '{}'",
                    std::is_same_v<D, std::chrono::seconds> ? "seconds" : "milliseconds",
                    n.Scalar()),
        n);
  return out;
}

template <class S, class D>
Field<S> duration_field(std::string name, D S::*member) {
  auto field = value_field(std::move(name), member, get_duration_as<D>, [](D v) {
    return format_duration(std::chrono::duration_cast<Duration>(v));
  });
  field.is_duration = true;
  return field;
}

template <class S, class E>
Field<S> enum_field(std::string name, E S::*member, const Names<E>& names) {
  return value_field(
      std::move(name), member,
      [&names](const std::string& path, const YAML::Node& n) { return get_enum(path, n, names); },
      [&names](E v) { return enum_name(names, v); });
}

// A string; `optional` strings also take an empty value (meaning "").
template <class S>
Field<S> string_field(std::string name, std::string S::*member, bool optional = false) {
  return value_field(
      std::move(name), member,
      [optional](const std::string& path, const YAML::Node& n) -> Result<std::string> {
        if (optional && n.IsNull()) return std::string();
        return get_scalar(path, n, "a string");
      },
      [](const std::string& v) { return v; });
}

template <class S, class T, class Parse, class Format>
Field<S> list_field(std::string name, std::vector<T> S::*member, Parse parse, Format format) {
  return {std::move(name),
          [member, parse](Ctx& ctx, S& s, const std::string& path,
                          const YAML::Node& n) -> Result<void> {
            std::vector<T> out;
            auto r = for_each_item(
                ctx, path, n, [&](const std::string& p, const YAML::Node& item) -> Result<void> {
                  auto v = parse(p, item);
                  if (!v) return tl::unexpected(v.error());
                  out.push_back(std::move(*v));
                  return {};
                });
            if (!r) return r;
            s.*member = std::move(out);
            return {};
          },
          [member, format](const AgentConfig&, const S& s) -> std::optional<YAML::Node> {
            YAML::Node seq(YAML::NodeType::Sequence);
            for (const auto& v : s.*member) seq.push_back(scalar_node(format(v)));
            return seq;
          },
          {}};
}

template <class S>
Field<S> string_list_field(std::string name, std::vector<std::string> S::*member) {
  return list_field(
      std::move(name), member,
      [](const std::string& path, const YAML::Node& n) { return get_scalar(path, n, "a string"); },
      [](const std::string& v) { return v; });
}

template <class S>
Field<S> multiaddr_list_field(std::string name, std::vector<Multiaddr> S::*member, AddrUse use) {
  return list_field(
      std::move(name), member,
      [use](const std::string& path, const YAML::Node& n) { return get_multiaddr(path, n, use); },
      [](const Multiaddr& a) { return a.to_string(); });
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t up = row[j];
      bool same = std::tolower(static_cast<unsigned char>(a[i - 1])) ==
                  std::tolower(static_cast<unsigned char>(b[j - 1]));
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (same ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

template <class S>
std::string suggest(const std::string& path, const std::string& name, const Fields<S>& fields,
                    const Aliases* aliases) {
  std::vector<std::string> candidates;
  for (const auto& f : fields) candidates.push_back(f.name);
  if (aliases)
    for (const auto& [alias, canonical] : *aliases) candidates.push_back(alias);
  std::string best;
  std::size_t best_distance = std::max<std::size_t>(2, name.size() / 3) + 1;
  for (const auto& c : candidates) {
    auto d = edit_distance(name, c);
    if (d < best_distance) {
      best = c;
      best_distance = d;
    }
  }
  return best.empty() ? std::string() : " (did you mean " + join(path, best) + "?)";
}

// Applies the keys present in `n` over `s`; keys left out keep their value.
template <class S>
Result<void> parse_map(Ctx& ctx, S& s, const std::string& path, const YAML::Node& n,
                       const Fields<S>& fields, const Aliases* aliases = nullptr) {
  if (n.IsNull()) return {};
  if (!n.IsMap()) return bad_node(path, "expected a map of keys, got " + describe(n), n);
  std::map<std::string, std::string> seen;  // canonical name -> as written
  for (auto it = n.begin(); it != n.end(); ++it) {
    const YAML::Node key = it->first;  // a copy: the iterator yields a temporary
    if (!key.IsScalar()) return bad_node(path, "expected a key name, got " + describe(key), key);
    const std::string& name = key.Scalar();
    std::string canonical = name;
    if (aliases)
      if (auto a = aliases->find(name); a != aliases->end()) canonical = a->second;
    const std::string full = join(path, name);
    auto field = std::find_if(fields.begin(), fields.end(),
                              [&](const Field<S>& f) { return f.name == canonical; });
    if (field == fields.end())
      return bad_node(full, "unknown key" + suggest(path, name, fields, aliases), key);
    if (auto [prev, fresh] = seen.emplace(canonical, name); !fresh)
      return bad_node(full,
                      prev->second == name
                          ? std::string("duplicate key")
                          : "same parameter as " + join(path, prev->second) + ", given twice",
                      key);
    ctx.lines[join(path, canonical)] = line_of(key);
    if (name != canonical) ctx.spelled[join(path, canonical)] = full;
    if (auto r = field->set(ctx, s, full, it->second); !r) return r;
  }
  return {};
}

template <class S>
YAML::Node emit_map(const AgentConfig& root, const S& s, const Fields<S>& fields) {
  YAML::Node out(YAML::NodeType::Map);
  for (const auto& f : fields)
    if (auto v = f.emit(root, s)) out[f.name] = *v;
  return out;
}

template <class S>
std::vector<std::string> keys_of(const Fields<S>& fields) {
  std::vector<std::string> out;
  for (const auto& f : fields) {
    if (!f.children) {
      out.push_back(f.name);
      continue;
    }
    for (const auto& k : f.children()) out.push_back(f.name + "." + k);
  }
  return out;
}

// A nested section stored in a member struct.
template <class S, class Sub>
Field<S> section(std::string name, Sub S::*member, const Fields<Sub>& (*fields)(),
                 const Aliases* aliases = nullptr) {
  return {std::move(name),
          [member, fields, aliases](Ctx& ctx, S& s, const std::string& path, const YAML::Node& n) {
            return parse_map(ctx, s.*member, path, n, fields(), aliases);
          },
          [member, fields](const AgentConfig& root, const S& s) -> std::optional<YAML::Node> {
            return emit_map(root, s.*member, fields());
          },
          [fields] { return keys_of(fields()); }};
}

// A map of topic name -> section.
template <class S, class T>
Field<S> topic_map(std::string name, std::map<std::string, T> S::*member,
                   const Fields<T>& (*fields)()) {
  return {std::move(name),
          [member, fields](Ctx& ctx, S& s, const std::string& path,
                           const YAML::Node& n) -> Result<void> {
            if (n.IsNull()) return {};
            if (!n.IsMap())
              return bad_node(path, "expected a map of topics, got " + describe(n), n);
            std::set<std::string> seen;
            for (auto it = n.begin(); it != n.end(); ++it) {
              const YAML::Node key = it->first;  // a copy: the iterator yields a temporary
              if (!key.IsScalar() || key.Scalar().empty())
                return bad_node(path, "expected a topic name, got " + describe(key), key);
              const std::string& topic = key.Scalar();
              const std::string topic_path = join(path, topic);
              if (!seen.insert(topic).second) return bad_node(topic_path, "duplicate topic", key);
              ctx.lines[topic_path] = line_of(key);
              auto& entry = (s.*member)[topic];  // existing (overrides) or defaults
              if (auto r = parse_map(ctx, entry, topic_path, it->second, fields()); !r) return r;
            }
            return {};
          },
          [member, fields](const AgentConfig& root, const S& s) -> std::optional<YAML::Node> {
            YAML::Node out(YAML::NodeType::Map);
            for (const auto& [topic, entry] : s.*member)
              out[topic] = emit_map(root, entry, fields());
            return out;
          },
          [fields] {
            std::vector<std::string> out;
            for (const auto& k : keys_of(fields())) out.push_back("<topic>." + k);
            return out;
          }};
}

template <class S, class T, class Parse, class Format>
Field<S> optional_field(std::string name, std::optional<T> S::*member, Parse parse, Format format) {
  return {
      std::move(name),
      [member, parse](Ctx&, S& s, const std::string& path, const YAML::Node& n) -> Result<void> {
        if (n.IsNull()) {  // an empty value clears the override
          (s.*member).reset();
          return {};
        }
        auto v = parse(path, n);
        if (!v) return tl::unexpected(v.error());
        s.*member = std::move(*v);
        return {};
      },
      [member, format](const AgentConfig&, const S& s) -> std::optional<YAML::Node> {
        if (!(s.*member)) return std::nullopt;
        return scalar_node(format(*(s.*member)));
      },
      {}};
}

// ---- The sections ----

const Fields<AgentConfig>& identity_fields() {
  static const Fields<AgentConfig> fields{
      string_field("key_file", &AgentConfig::key_file, /*optional=*/true)};
  return fields;
}

const Fields<LimitsConfig>& limits_fields() {
  using L = LimitsConfig;
  static const Fields<L> fields{
      uint_field("max_inbound_connections", &L::max_inbound_connections),
      uint_field("max_outbound_connections", &L::max_outbound_connections),
      uint_field("max_pending_dials", &L::max_pending_dials),
      uint_field("max_connections_per_peer", &L::max_connections_per_peer),
      uint_field("max_streams_per_connection", &L::max_streams_per_connection),
      uint_field("max_negotiating_streams", &L::max_negotiating_streams),
      duration_field("handshake_timeout", &L::handshake_timeout),
      duration_field("dial_timeout", &L::dial_timeout),
      duration_field("negotiation_timeout", &L::negotiation_timeout),
  };
  return fields;
}

const Fields<host::ScopeLimits>& scope_limit_fields() {
  using L = host::ScopeLimits;
  static const Fields<L> fields{
      uint_field("memory", &L::memory),
      uint_field("streams_inbound", &L::streams_inbound),
      uint_field("streams_outbound", &L::streams_outbound),
      uint_field("streams", &L::streams),
      uint_field("connections_inbound", &L::connections_inbound),
      uint_field("connections_outbound", &L::connections_outbound),
      uint_field("connections", &L::connections),
      uint_field("fds", &L::fds),
  };
  return fields;
}

const Fields<host::ResourceLimits>& resource_limit_fields() {
  using R = host::ResourceLimits;
  static const Fields<R> fields{
      section("system", &R::system, scope_limit_fields),
      section("transient", &R::transient, scope_limit_fields),
      section("service", &R::service, scope_limit_fields),
      section("protocol", &R::protocol, scope_limit_fields),
      section("peer", &R::peer, scope_limit_fields),
      section("connection", &R::connection, scope_limit_fields),
      section("stream", &R::stream, scope_limit_fields),
      uint_field("connections_per_ip", &R::connections_per_ip),
      uint_field("connections_per_subnet4", &R::connections_per_subnet4),
      uint_field("connections_per_subnet6", &R::connections_per_subnet6),
      uint_field("connections_per_loopback_ip", &R::connections_per_loopback_ip),
      uint_field("handshakes_per_ip", &R::handshakes_per_ip),
      uint_field("handshakes_per_loopback_ip", &R::handshakes_per_loopback_ip),
      uint_field("negotiations_per_peer", &R::negotiations_per_peer),
  };
  return fields;
}

const Fields<ResourcesConfig>& resources_fields() {
  using R = ResourcesConfig;
  static const Fields<R> fields = [] {
    // The limits' keys sit directly under resources: (resources.peer.memory).
    Fields<R> f;
    for (const auto& limit : resource_limit_fields()) {
      f.push_back(Field<R>{
          limit.name,
          [set = limit.set](Ctx& ctx, R& r, const std::string& path, const YAML::Node& n) {
            return set(ctx, r.limits, path, n);
          },
          [emit = limit.emit](const AgentConfig& root, const R& r) { return emit(root, r.limits); },
          limit.children});
    }
    f.push_back(duration_field("write_timeout", &R::write_timeout));
    f.push_back(duration_field("stall_timeout", &R::stall_timeout));
    f.push_back(uint_field("max_peer_store_peers", &R::max_peer_store_peers));
    f.push_back(uint_field("max_addrs_per_peer", &R::max_addrs_per_peer));
    f.push_back(duration_field("address_ttl", &R::address_ttl));
    f.push_back(uint_field("max_session_output", &R::max_session_output));
    f.push_back(uint_field("max_pending_pongs", &R::max_pending_pongs));
    return f;
  }();
  return fields;
}

// Gossip keys that pubsub::set_gossip_param knows are assigned through it, so `--gossip K=V` and
// the YAML file cannot disagree; the typed parse before it gives the key path, the line and the
// file's stricter grammar. Durations are the exception: set_gossip_param converts through a
// double and truncates (1025ms becomes 1024.999999ms), so the exact parse here assigns them,
// in the same grammar. The fields set_gossip_param does not know are assigned here too.
Field<pubsub::GossipsubConfig> via_set_gossip_param(Field<pubsub::GossipsubConfig> typed) {
  static const auto known = [] {
    auto names = pubsub::gossip_param_names();
    return std::set<std::string>(names.begin(), names.end());
  }();
  if (typed.is_duration || !known.contains(typed.name)) return typed;
  auto check = typed.set;
  typed.set = [check, name = typed.name](Ctx& ctx, pubsub::GossipsubConfig& g,
                                         const std::string& path,
                                         const YAML::Node& n) -> Result<void> {
    pubsub::GossipsubConfig scratch = g;
    if (auto r = check(ctx, scratch, path, n); !r) return r;
    if (auto r = pubsub::set_gossip_param(g, name, n.Scalar()); !r) {
      std::string message = r.error().message;  // "gossip.<name>: ..."
      auto colon = message.find(": ");
      return bad_node(path, colon == std::string::npos ? message : message.substr(colon + 2), n);
    }
    return {};
  };
  return typed;
}

const Fields<pubsub::GossipsubConfig>& gossip_fields() {
  using G = pubsub::GossipsubConfig;
  static const Fields<G> fields = [] {
    Fields<G> f{
        uint_field("D", &G::D),
        uint_field("D_lo", &G::D_lo),
        uint_field("D_hi", &G::D_hi),
        uint_field("D_score", &G::D_score),
        uint_field("D_out", &G::D_out),
        uint_field("D_lazy", &G::D_lazy),
        double_field("gossip_factor", &G::gossip_factor),
        duration_field("heartbeat_interval", &G::heartbeat_interval),
        duration_field("heartbeat_initial_delay", &G::heartbeat_initial_delay),
        duration_field("fanout_ttl", &G::fanout_ttl),
        uint_field("max_fanout_topics", &G::max_fanout_topics),
        uint_field("mcache_len", &G::mcache_len),
        uint_field("mcache_gossip", &G::mcache_gossip),
        uint_field("mcache_max_messages", &G::mcache_max_messages),
        duration_field("seen_ttl", &G::seen_ttl),
        uint_field("seen_max_entries", &G::seen_max_entries),
        duration_field("prune_backoff", &G::prune_backoff),
        duration_field("unsubscribe_backoff", &G::unsubscribe_backoff),
        duration_field("max_backoff", &G::max_backoff),
        duration_field("graft_flood_threshold", &G::graft_flood_threshold),
        uint_field("prune_peers", &G::prune_peers),
        bool_field("do_px", &G::do_px),
        bool_field("flood_publish", &G::flood_publish),
        uint_field("opportunistic_graft_ticks", &G::opportunistic_graft_ticks),
        uint_field("opportunistic_graft_peers", &G::opportunistic_graft_peers),
        uint_field("max_ihave_length", &G::max_ihave_length),
        uint_field("max_iwant_length", &G::max_iwant_length),
        uint_field("max_ihave_messages", &G::max_ihave_messages),
        uint_field("gossip_retransmission", &G::gossip_retransmission),
        duration_field("iwant_followup_time", &G::iwant_followup_time),
        uint_field("max_iwant_promises", &G::max_iwant_promises),
        uint_field("idontwant_message_size_threshold", &G::idontwant_message_size_threshold),
        uint_field("max_idontwant_messages", &G::max_idontwant_messages),
        uint_field("max_idontwant_length", &G::max_idontwant_length),
        uint_field("idontwant_ttl_ticks", &G::idontwant_ttl_ticks),
        uint_field("max_message_size", &G::max_message_size),
        uint_field("direct_connect_ticks", &G::direct_connect_ticks),
        enum_field("signature_policy", &G::signature_policy, signature_policies()),
        enum_field("message_id_fn", &G::message_id_fn, message_id_fns()),
        uint_field("max_subscriptions_per_peer", &G::max_subscriptions_per_peer),
        uint_field("max_topic_length", &G::max_topic_length),
        uint_field("max_pending_validations_per_topic", &G::max_pending_validations_per_topic),
        duration_field("validation_timeout", &G::validation_timeout),
    };
    for (auto& field : f) field = via_set_gossip_param(std::move(field));
    // Unset unless a test pins it: kept in AgentConfig::gossip_seed (see rng_seed()).
    f.push_back(
        Field<G>{"seed",
                 [](Ctx& ctx, G&, const std::string& path, const YAML::Node& n) -> Result<void> {
                   if (n.IsNull() || n.Scalar().empty() || n.Scalar() == "~") {
                     ctx.root->gossip_seed.reset();
                     return {};
                   }
                   auto v = get_uint(path, n);
                   if (!v) return tl::unexpected(v.error());
                   ctx.root->gossip_seed = *v;
                   return {};
                 },
                 [](const AgentConfig& root, const G&) -> std::optional<YAML::Node> {
                   if (!root.gossip_seed) return std::nullopt;
                   return scalar_node(fmt::format("{}", *root.gossip_seed));
                 },
                 {}});
    // Direct peers need their addresses (to connect): kept in AgentConfig::direct_peers.
    f.push_back(Field<G>{
        "direct_peers",
        [](Ctx& ctx, G&, const std::string& path, const YAML::Node& n) -> Result<void> {
          std::vector<Multiaddr> out;
          auto r = for_each_item(ctx, path, n,
                                 [&](const std::string& p, const YAML::Node& item) -> Result<void> {
                                   auto a = get_multiaddr(p, item, AddrUse::dial);
                                   if (!a) return tl::unexpected(a.error());
                                   out.push_back(std::move(*a));
                                   return {};
                                 });
          if (!r) return r;
          ctx.root->direct_peers = std::move(out);
          return {};
        },
        [](const AgentConfig& root, const G&) -> std::optional<YAML::Node> {
          YAML::Node seq(YAML::NodeType::Sequence);
          for (const auto& a : root.direct_peers) seq.push_back(scalar_node(a.to_string()));
          return seq;
        },
        {}});
    // Absent or empty value: any topic.
    f.push_back(Field<G>{
        "allowed_topics",
        [](Ctx& ctx, G& g, const std::string& path, const YAML::Node& n) -> Result<void> {
          if (n.IsNull()) {
            g.allowed_topics.reset();
            return {};
          }
          std::set<pubsub::TopicId> out;
          auto r = for_each_item(ctx, path, n,
                                 [&](const std::string& p, const YAML::Node& item) -> Result<void> {
                                   auto t = get_scalar(p, item, "a topic name");
                                   if (!t) return tl::unexpected(t.error());
                                   out.insert(*t);
                                   return {};
                                 });
          if (!r) return r;
          g.allowed_topics = std::move(out);
          return {};
        },
        [](const AgentConfig&, const G& g) -> std::optional<YAML::Node> {
          if (!g.allowed_topics) return YAML::Node(YAML::NodeType::Null);
          YAML::Node seq(YAML::NodeType::Sequence);
          for (const auto& t : *g.allowed_topics) seq.push_back(scalar_node(t));
          return seq;
        },
        {}});
    return f;
  }();
  return fields;
}

// The libp2p spec's names (DESIGN §6) for the same parameters.
const Aliases gossip_aliases{{"Dlo", "D_lo"},       {"Dhi", "D_hi"},
                             {"Dscore", "D_score"}, {"Dout", "D_out"},
                             {"Dlazy", "D_lazy"},   {"heartbeat", "heartbeat_interval"}};

const Fields<pubsub::TopicScoreParams>& topic_score_fields() {
  using T = pubsub::TopicScoreParams;
  static const Fields<T> fields{
      double_field("topic_weight", &T::topic_weight),
      double_field("time_in_mesh_weight", &T::time_in_mesh_weight),
      duration_field("time_in_mesh_quantum", &T::time_in_mesh_quantum),
      double_field("time_in_mesh_cap", &T::time_in_mesh_cap),
      double_field("first_message_deliveries_weight", &T::first_message_deliveries_weight),
      double_field("first_message_deliveries_decay", &T::first_message_deliveries_decay),
      double_field("first_message_deliveries_cap", &T::first_message_deliveries_cap),
      double_field("mesh_message_deliveries_weight", &T::mesh_message_deliveries_weight),
      double_field("mesh_message_deliveries_decay", &T::mesh_message_deliveries_decay),
      double_field("mesh_message_deliveries_cap", &T::mesh_message_deliveries_cap),
      double_field("mesh_message_deliveries_threshold", &T::mesh_message_deliveries_threshold),
      duration_field("mesh_message_deliveries_window", &T::mesh_message_deliveries_window),
      duration_field("mesh_message_deliveries_activation", &T::mesh_message_deliveries_activation),
      double_field("mesh_failure_penalty_weight", &T::mesh_failure_penalty_weight),
      double_field("mesh_failure_penalty_decay", &T::mesh_failure_penalty_decay),
      double_field("invalid_message_deliveries_weight", &T::invalid_message_deliveries_weight),
      double_field("invalid_message_deliveries_decay", &T::invalid_message_deliveries_decay),
  };
  return fields;
}

const Fields<pubsub::PeerScoreParams>& score_fields() {
  using P = pubsub::PeerScoreParams;
  static const Fields<P> fields{
      topic_map("topics", &P::topics, topic_score_fields),
      double_field("topic_score_cap", &P::topic_score_cap),
      double_field("app_specific_weight", &P::app_specific_weight),
      double_field("ip_colocation_factor_weight", &P::ip_colocation_factor_weight),
      double_field("ip_colocation_factor_threshold", &P::ip_colocation_factor_threshold),
      string_list_field("ip_colocation_factor_whitelist", &P::ip_colocation_factor_whitelist),
      double_field("behaviour_penalty_weight", &P::behaviour_penalty_weight),
      double_field("behaviour_penalty_threshold", &P::behaviour_penalty_threshold),
      double_field("behaviour_penalty_decay", &P::behaviour_penalty_decay),
      duration_field("decay_interval", &P::decay_interval),
      double_field("decay_to_zero", &P::decay_to_zero),
      duration_field("retain_score", &P::retain_score),
      duration_field("delivery_record_ttl", &P::delivery_record_ttl),
      uint_field("max_delivery_records", &P::max_delivery_records),
      uint_field("max_retained_peers", &P::max_retained_peers),
  };
  return fields;
}

const Fields<pubsub::PeerScoreThresholds>& threshold_fields() {
  using T = pubsub::PeerScoreThresholds;
  static const Fields<T> fields{
      double_field("gossip_threshold", &T::gossip_threshold),
      double_field("publish_threshold", &T::publish_threshold),
      double_field("graylist_threshold", &T::graylist_threshold),
      double_field("accept_px_threshold", &T::accept_px_threshold),
      double_field("opportunistic_graft_threshold", &T::opportunistic_graft_threshold),
  };
  return fields;
}

const Fields<TopicConfig>& topic_fields() {
  static const Fields<TopicConfig> fields{
      optional_field(
          "message_id_fn", &TopicConfig::message_id_fn,
          [](const std::string& path, const YAML::Node& n) {
            return get_enum(path, n, message_id_fns());
          },
          [](pubsub::MessageIdFn v) { return enum_name(message_id_fns(), v); }),
      optional_field(
          "max_message_size", &TopicConfig::max_message_size,
          [](const std::string& path, const YAML::Node& n) -> Result<size_t> {
            auto v = get_uint(path, n);
            if (!v) return tl::unexpected(v.error());
            return static_cast<size_t>(*v);
          },
          [](size_t v) { return fmt::format("{}", v); }),
      optional_field("validation_timeout", &TopicConfig::validation_timeout, get_duration_as<Ms>,
                     [](Ms v) { return format_duration(v); }),
  };
  return fields;
}

const Fields<ValidationSettings>& validation_fields() {
  using V = ValidationSettings;
  static const Fields<V> fields{
      string_list_field("endpoints", &V::endpoints),
      duration_field("timeout", &V::timeout),
      enum_field("no_validator_policy", &V::no_validator_policy, policies()),
      uint_field("max_pending", &V::max_pending),
      uint_field("max_pending_bytes", &V::max_pending_bytes),
      uint_field("max_pending_per_peer", &V::max_pending_per_peer),
  };
  return fields;
}

const Fields<GrpcConfig>& grpc_fields() {
  static const Fields<GrpcConfig> fields{
      string_field("address", &GrpcConfig::address),
      string_field("tls_cert", &GrpcConfig::tls_cert, /*optional=*/true),
      string_field("tls_key", &GrpcConfig::tls_key, /*optional=*/true),
      string_field("tls_client_ca", &GrpcConfig::tls_client_ca, /*optional=*/true),
      uint_field("max_listen_streams", &GrpcConfig::max_listen_streams),
      uint_field("max_held_bytes", &GrpcConfig::max_held_bytes),
      uint_field("max_listen_buffer_bytes", &GrpcConfig::max_listen_buffer_bytes),
      uint_field("max_listen_total_bytes", &GrpcConfig::max_listen_total_bytes),
      uint_field("max_pending_publish_bytes", &GrpcConfig::max_pending_publish_bytes),
      uint_field("max_topics", &GrpcConfig::max_topics),
      bool_field("allow_insecure_remote", &GrpcConfig::allow_insecure_remote),
  };
  return fields;
}

const Fields<DhtSettings>& dht_fields() {
  using D = DhtSettings;
  static const Fields<D> fields{
      enum_field("mode", &D::mode, dht_modes()),
      string_field("protocol_prefix", &D::protocol_prefix),
      uint_field("alpha", &D::alpha),
      uint_field("k", &D::k),
      uint_field("beta", &D::beta),
      duration_field("request_timeout", &D::request_timeout),
      duration_field("query_timeout", &D::query_timeout),
      duration_field("bootstrap_interval", &D::bootstrap_interval),
      duration_field("discovery_interval", &D::discovery_interval),
      bool_field("mdns", &D::mdns),
      uint_field("providers_per_key_per_ip", &D::providers_per_key_per_ip),
      uint_field("providers_per_key_per_subnet", &D::providers_per_key_per_subnet),
      uint_field("provider_records_per_ip", &D::provider_records_per_ip),
      uint_field("provider_records_per_subnet", &D::provider_records_per_subnet),
      uint_field("provider_keys_per_ip", &D::provider_keys_per_ip),
      uint_field("provider_keys_per_subnet", &D::provider_keys_per_subnet),
      uint_field("max_provider_addrs", &D::max_provider_addrs),
      uint_field("max_peers_per_ip_group_per_bucket", &D::max_peers_per_ip_group_per_bucket),
      uint_field("max_peers_per_ip_group", &D::max_peers_per_ip_group),
  };
  return fields;
}

const Fields<ConnManagerSettings>& connmgr_fields() {
  using C = ConnManagerSettings;
  static const Fields<C> fields{
      uint_field("low_water", &C::low_water),
      uint_field("high_water", &C::high_water),
      duration_field("grace", &C::grace),
  };
  return fields;
}

const Fields<SyncSettings>& sync_fields() {
  using S = SyncSettings;
  static const Fields<S> fields{
      multiaddr_list_field("archives", &S::archives, AddrUse::dial),
      duration_field("gap_wait", &S::gap_wait),
      duration_field("fetch_retry", &S::fetch_retry),
      duration_field("gap_give_up", &S::gap_give_up),
      duration_field("request_timeout", &S::request_timeout),
      uint_field("retention_messages", &S::retention_messages),
      duration_field("retention_age", &S::retention_age),
      enum_field("durability", &S::durability, durabilities()),
      bool_field("catch_up_on_start", &S::catch_up_on_start),
      uint_field("max_gap_fetch", &S::max_gap_fetch),
      uint_field("max_fetches_per_topic", &S::max_fetches_per_topic),
      uint_field("max_fetches", &S::max_fetches),
      double_field("archive_requests_per_second", &S::archive_requests_per_second),
      double_field("archive_burst", &S::archive_burst),
      double_field("archive_total_requests_per_second", &S::archive_total_requests_per_second),
      double_field("archive_total_burst", &S::archive_total_burst),
      uint_field("max_tracked_origins", &S::max_tracked_origins),
      uint_field("max_retired_watermarks", &S::max_retired_watermarks),
      double_field("new_origins_per_second", &S::new_origins_per_second),
      double_field("new_origin_burst", &S::new_origin_burst),
      uint_field("retention_messages_per_origin", &S::retention_messages_per_origin),
      uint_field("max_pending_store_bytes", &S::max_pending_store_bytes),
      duration_field("inbound_request_timeout", &S::inbound_request_timeout),
      string_list_field("archive_topics", &S::archive_topics),
      uint_field("max_archive_topics", &S::max_archive_topics),
  };
  return fields;
}

const Fields<TraceSettings>& trace_fields() {
  using T = TraceSettings;
  static const Fields<T> fields{
      string_field("file", &T::file),
      uint_field("max_bytes", &T::max_bytes),
      uint_field("files", &T::files),
      uint_field("max_pending_events", &T::max_pending_events),
  };
  return fields;
}

const Fields<MetricsConfig>& metrics_fields() {
  using M = MetricsConfig;
  static const Fields<M> fields{
      string_field("address", &M::address, /*optional=*/true),
      uint_field("max_connections", &M::max_connections),
      uint_field("max_request_bytes", &M::max_request_bytes),
      duration_field("request_timeout", &M::request_timeout),
      duration_field("sample_interval", &M::sample_interval),
      uint_field("history_samples", &M::history_samples),
      uint_field("history_topics", &M::history_topics),
  };
  return fields;
}

const Fields<AgentConfig>& top_fields() {
  using A = AgentConfig;
  static const Fields<A> fields{
      Field<A>{"identity",
               [](Ctx& ctx, A& a, const std::string& path, const YAML::Node& n) {
                 return parse_map(ctx, a, path, n, identity_fields());
               },
               [](const AgentConfig& root, const A& a) -> std::optional<YAML::Node> {
                 return emit_map(root, a, identity_fields());
               },
               [] { return keys_of(identity_fields()); }},
      string_field("data_dir", &A::data_dir),
      multiaddr_list_field("listen", &A::listen, AddrUse::listen),
      multiaddr_list_field("bootstrap", &A::bootstrap, AddrUse::dial),
      list_field(
          "role", &A::roles,
          [](const std::string& path, const YAML::Node& n) { return get_enum(path, n, roles()); },
          [](Role r) { return std::string(role_name(r)); }),
      section("limits", &A::limits, limits_fields),
      section("resources", &A::resources, resources_fields),
      section("gossip", &A::gossip, gossip_fields, &gossip_aliases),
      section("score", &A::score, score_fields),
      section("thresholds", &A::thresholds, threshold_fields),
      topic_map("topics", &A::topics, topic_fields),
      section("validation", &A::validation, validation_fields),
      section("grpc", &A::grpc, grpc_fields),
      section("dht", &A::dht, dht_fields),
      section("connmgr", &A::connmgr, connmgr_fields),
      section("sync", &A::sync, sync_fields),
      section("trace", &A::trace, trace_fields),
      section("metrics", &A::metrics, metrics_fields),
      string_field("log_level", &A::log_level),
  };
  return fields;
}

// ---- Validation across keys ----

std::optional<std::string> bad_endpoint(std::string_view s, bool allow_port_zero) {
  if (s.starts_with("unix:")) {
    if (s.size() > 5) return std::nullopt;
    return "expected host:port or unix:<path>";
  }
  auto colon = s.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return "expected host:port or unix:<path>";
  auto host = s.substr(0, colon);
  if (host.front() == '[' ? host.back() != ']' || host.size() < 3
                          : host.find(':') != std::string_view::npos)
    return "an IPv6 host goes in brackets, as [::1]:5050";
  auto port = to_uint(s.substr(colon + 1));
  if (!port || *port > 65535 || (*port == 0 && !allow_port_zero))
    return allow_port_zero ? "the port must be 0..65535" : "the port must be 1..65535";
  return std::nullopt;
}

tl::unexpected<Error> bad_value(const std::string& key, std::string_view rule,
                                const std::string& got) {
  return invalid(fmt::format("{}: {}, got {}", key, rule, got));
}

Result<void> validate_gossip(const AgentConfig& c) {
  const auto& g = c.gossip;
  auto v = [](auto x) { return fmt::format("{}", x); };
  if (g.D == 0) return bad_value("gossip.D", "must be >= 1", "0");
  if (g.D_lo > g.D)
    return bad_value("gossip.D_lo", fmt::format("must be <= D ({})", g.D), v(g.D_lo));
  if (g.D_hi < g.D)
    return bad_value("gossip.D_hi", fmt::format("must be >= D ({})", g.D), v(g.D_hi));
  if (g.D_score > g.D)
    return bad_value("gossip.D_score", fmt::format("must be <= D ({})", g.D), v(g.D_score));
  if (g.D_out > 0 && g.D_out >= g.D_lo)
    return bad_value("gossip.D_out", fmt::format("must be < D_lo ({})", g.D_lo), v(g.D_out));
  if (g.D_out > g.D / 2)
    return bad_value("gossip.D_out", fmt::format("must be <= D/2 ({})", g.D / 2), v(g.D_out));
  if (!(g.gossip_factor >= 0 && g.gossip_factor <= 1))
    return bad_value("gossip.gossip_factor", "must be in [0, 1]", v(g.gossip_factor));
  if (g.mcache_gossip > g.mcache_len)
    return bad_value("gossip.mcache_gossip",
                     fmt::format("must be <= mcache_len ({})", g.mcache_len), v(g.mcache_gossip));
  if (g.max_backoff < g.prune_backoff)
    return bad_value("gossip.max_backoff",
                     fmt::format("must be >= prune_backoff ({})", format_duration(g.prune_backoff)),
                     format_duration(g.max_backoff));
  if (g.max_topic_length == 0) return bad_value("gossip.max_topic_length", "must be >= 1", "0");
  for (size_t i = 0; i < c.direct_peers.size(); ++i)
    if (!c.direct_peers[i].p2p())
      return bad_value(fmt::format("gossip.direct_peers[{}]", i), "must end in /p2p/<peer id>",
                       c.direct_peers[i].to_string());
  // Then every rule of the router itself, on what it will be given.
  return pubsub::validate(c.router_config());
}

Result<void> validate_dht(const DhtSettings& d) {
  const std::string& prefix = d.protocol_prefix;
  if (!prefix.starts_with('/'))
    return bad_value("dht.protocol_prefix", "must start with '/' (e.g. /p2pmq or /ipfs)",
                     "'" + prefix + "'");
  if (prefix.ends_with('/'))
    return bad_value("dht.protocol_prefix",
                     "must not end with '/' (the protocol id is <prefix>/kad/1.0.0)",
                     "'" + prefix + "'");
  const std::pair<const char*, size_t> counts[] = {
      {"alpha", d.alpha},
      {"k", d.k},
      {"beta", d.beta},
      {"providers_per_key_per_ip", d.providers_per_key_per_ip},
      {"providers_per_key_per_subnet", d.providers_per_key_per_subnet},
      {"provider_records_per_ip", d.provider_records_per_ip},
      {"provider_records_per_subnet", d.provider_records_per_subnet},
      {"provider_keys_per_ip", d.provider_keys_per_ip},
      {"provider_keys_per_subnet", d.provider_keys_per_subnet},
      {"max_provider_addrs", d.max_provider_addrs}};
  for (const auto& [name, value] : counts)
    if (value == 0) return bad_value(std::string("dht.") + name, "must be >= 1", "0");
  if (d.beta > d.k)
    return bad_value("dht.beta", fmt::format("must be <= k ({})", d.k), fmt::format("{}", d.beta));
  if (d.max_peers_per_ip_group != 0 &&
      d.max_peers_per_ip_group_per_bucket > d.max_peers_per_ip_group)
    return bad_value(
        "dht.max_peers_per_ip_group_per_bucket",
        fmt::format("must be <= max_peers_per_ip_group ({})", d.max_peers_per_ip_group),
        fmt::format("{}", d.max_peers_per_ip_group_per_bucket));
  const std::pair<const char*, Ms> intervals[] = {{"request_timeout", d.request_timeout},
                                                  {"query_timeout", d.query_timeout},
                                                  {"bootstrap_interval", d.bootstrap_interval},
                                                  {"discovery_interval", d.discovery_interval}};
  for (const auto& [name, value] : intervals)
    if (value <= Ms::zero())
      return bad_value(std::string("dht.") + name, "must be > 0", format_duration(value));
  if (d.query_timeout < d.request_timeout)
    return bad_value(
        "dht.query_timeout",
        fmt::format("must be >= request_timeout ({})", format_duration(d.request_timeout)),
        format_duration(d.query_timeout));
  return {};
}

Result<void> validate_connmgr(const ConnManagerSettings& m) {
  if (m.high_water == 0) return bad_value("connmgr.high_water", "must be >= 1", "0");
  if (m.low_water > m.high_water)
    return bad_value("connmgr.low_water", fmt::format("must be <= high_water ({})", m.high_water),
                     fmt::format("{}", m.low_water));
  return {};
}

Result<void> validate_metrics(const MetricsConfig& m) {
  if (!m.address.empty())
    if (auto why = bad_endpoint(m.address, true); why || m.address.starts_with("unix:"))
      return bad_value("metrics.address", why ? *why : "expected host:port", "'" + m.address + "'");
  const std::pair<const char*, size_t> bounds[] = {{"max_connections", m.max_connections},
                                                   {"max_request_bytes", m.max_request_bytes},
                                                   {"history_topics", m.history_topics}};
  for (const auto& [name, value] : bounds)
    if (value == 0) return bad_value(std::string("metrics.") + name, "must be >= 1", "0");
  if (m.request_timeout.count() <= 0)
    return bad_value("metrics.request_timeout", "must be > 0", "0");
  if (m.sample_interval.count() <= 0)
    return bad_value("metrics.sample_interval", "must be > 0", "0");
  return {};
}

Result<void> validate_sync(const SyncSettings& s) {
  for (size_t i = 0; i < s.archive_topics.size(); ++i)
    if (s.archive_topics[i].empty())
      return bad_value(fmt::format("sync.archive_topics[{}]", i),
                       "must be a topic name or a pattern", "''");
  for (size_t i = 0; i < s.archives.size(); ++i)
    if (!s.archives[i].p2p())
      return bad_value(fmt::format("sync.archives[{}]", i), "must end in /p2p/<peer id>",
                       s.archives[i].to_string());
  const std::pair<const char*, Ms> positive[] = {
      {"fetch_retry", s.fetch_retry},
      {"request_timeout", s.request_timeout},
      {"inbound_request_timeout", s.inbound_request_timeout}};
  for (const auto& [name, value] : positive)
    if (value <= Ms::zero())
      return bad_value(std::string("sync.") + name, "must be > 0", format_duration(value));
  if (s.gap_give_up <= s.gap_wait)
    return bad_value("sync.gap_give_up",
                     fmt::format("must be > gap_wait ({})", format_duration(s.gap_wait)),
                     format_duration(s.gap_give_up));
  if (s.retention_messages == 0) return bad_value("sync.retention_messages", "must be >= 1", "0");
  const std::pair<const char*, uint64_t> at_least_one[] = {
      {"max_gap_fetch", s.max_gap_fetch},
      {"max_fetches_per_topic", s.max_fetches_per_topic},
      {"max_fetches", s.max_fetches},
      {"max_tracked_origins", s.max_tracked_origins},
      {"retention_messages_per_origin", s.retention_messages_per_origin},
      {"max_pending_store_bytes", s.max_pending_store_bytes},
      {"max_archive_topics", s.max_archive_topics}};
  for (const auto& [name, value] : at_least_one)
    if (value == 0) return bad_value(std::string("sync.") + name, "must be >= 1", "0");
  const std::pair<const char*, double> rates[] = {
      {"archive_requests_per_second", s.archive_requests_per_second},
      {"archive_total_requests_per_second", s.archive_total_requests_per_second},
      {"new_origins_per_second", s.new_origins_per_second}};
  for (const auto& [name, value] : rates)
    if (!(value > 0))
      return bad_value(std::string("sync.") + name, "must be > 0", fmt::format("{}", value));
  const std::pair<const char*, double> bursts[] = {{"archive_burst", s.archive_burst},
                                                   {"archive_total_burst", s.archive_total_burst},
                                                   {"new_origin_burst", s.new_origin_burst}};
  for (const auto& [name, value] : bursts)
    if (!(value >= 1))
      return bad_value(std::string("sync.") + name, "must be >= 1", fmt::format("{}", value));
  return {};
}

Result<void> validate_trace(const TraceSettings& t) {
  // A file must hold many lines (one is a few hundred bytes) for the bound to mean something.
  if (t.max_bytes < 4096)
    return bad_value("trace.max_bytes", "must be >= 4096", fmt::format("{}", t.max_bytes));
  if (t.files == 0) return bad_value("trace.files", "must be >= 1", "0");
  if (t.max_pending_events == 0) return bad_value("trace.max_pending_events", "must be >= 1", "0");
  return {};
}

Result<void> validate_impl(const AgentConfig& c) {
  if (c.data_dir.empty()) return bad_value("data_dir", "must not be empty", "''");
  if (c.listen.empty()) return bad_value("listen", "must have at least one address", "[]");
  for (size_t i = 0; i < c.bootstrap.size(); ++i)
    if (!c.bootstrap[i].p2p())
      return bad_value(fmt::format("bootstrap[{}]", i), "must end in /p2p/<peer id>",
                       c.bootstrap[i].to_string());
  if (c.roles.empty()) return bad_value("role", "must name at least one role", "[]");
  for (size_t i = 0; i < c.roles.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (c.roles[i] == c.roles[j])
        return bad_value(fmt::format("role[{}]", i), "is listed twice", role_name(c.roles[i]));

  const auto& l = c.limits;
  const std::pair<const char*, size_t> counts[] = {
      {"max_inbound_connections", l.max_inbound_connections},
      {"max_outbound_connections", l.max_outbound_connections},
      {"max_pending_dials", l.max_pending_dials},
      {"max_connections_per_peer", l.max_connections_per_peer},
      {"max_streams_per_connection", l.max_streams_per_connection},
      {"max_negotiating_streams", l.max_negotiating_streams}};
  for (const auto& [name, value] : counts)
    if (value == 0) return bad_value(std::string("limits.") + name, "must be >= 1", "0");
  const std::pair<const char*, Ms> timeouts[] = {{"handshake_timeout", l.handshake_timeout},
                                                 {"dial_timeout", l.dial_timeout},
                                                 {"negotiation_timeout", l.negotiation_timeout}};
  for (const auto& [name, value] : timeouts)
    if (value <= Ms::zero())
      return bad_value(std::string("limits.") + name, "must be > 0", format_duration(value));

  const auto& rl = c.resources.limits;
  const std::pair<const char*, uint64_t> resource_minimums[] = {
      {"system.memory", rl.system.memory},
      {"transient.memory", rl.transient.memory},
      {"peer.memory", rl.peer.memory},
      {"connection.memory", rl.connection.memory},
      {"stream.memory", rl.stream.memory},
      {"peer.connections", rl.peer.connections},
      {"connections_per_ip", rl.connections_per_ip},
      {"connections_per_subnet4", rl.connections_per_subnet4},
      {"connections_per_subnet6", rl.connections_per_subnet6},
      {"connections_per_loopback_ip", rl.connections_per_loopback_ip},
      {"handshakes_per_ip", rl.handshakes_per_ip},
      {"handshakes_per_loopback_ip", rl.handshakes_per_loopback_ip},
      {"negotiations_per_peer", rl.negotiations_per_peer},
      {"max_peer_store_peers", c.resources.max_peer_store_peers},
      {"max_addrs_per_peer", c.resources.max_addrs_per_peer},
      {"max_session_output", c.resources.max_session_output},
      {"max_pending_pongs", c.resources.max_pending_pongs}};
  for (const auto& [name, value] : resource_minimums)
    if (value == 0) return bad_value(std::string("resources.") + name, "must be >= 1", "0");
  if (rl.peer.memory > rl.system.memory)
    return bad_value("resources.peer.memory",
                     fmt::format("must be <= resources.system.memory ({})", rl.system.memory),
                     std::to_string(rl.peer.memory));
  if (c.resources.write_timeout < Ms::zero())
    return bad_value("resources.write_timeout", "must be >= 0 (0: none)",
                     format_duration(c.resources.write_timeout));
  if (c.resources.stall_timeout < Ms::zero())
    return bad_value("resources.stall_timeout", "must be >= 0 (0: none)",
                     format_duration(c.resources.stall_timeout));
  if (c.resources.address_ttl <= Ms::zero())
    return bad_value("resources.address_ttl", "must be > 0",
                     format_duration(c.resources.address_ttl));

  if (auto r = validate_gossip(c); !r) return r;

  for (const auto& [topic, t] : c.topics) {
    const std::string k = "topics." + topic;
    if (topic.size() > c.gossip.max_topic_length)
      return bad_value(k,
                       fmt::format("topic names are at most gossip.max_topic_length ({}) bytes",
                                   c.gossip.max_topic_length),
                       fmt::format("{} bytes", topic.size()));
    if (c.gossip.allowed_topics && !c.gossip.allowed_topics->contains(topic))
      return bad_value(k, "is not in gossip.allowed_topics", "'" + topic + "'");
    if (t.max_message_size && *t.max_message_size == 0)
      return bad_value(k + ".max_message_size", "must be > 0", "0");
    if (t.validation_timeout && *t.validation_timeout <= Ms::zero())
      return bad_value(k + ".validation_timeout", "must be > 0",
                       format_duration(*t.validation_timeout));
  }

  if (auto r = pubsub::validate(c.score); !r) return r;
  if (auto r = pubsub::validate(c.thresholds); !r) return r;

  for (size_t i = 0; i < c.validation.endpoints.size(); ++i)
    if (auto why = bad_endpoint(c.validation.endpoints[i], false))
      return bad_value(fmt::format("validation.endpoints[{}]", i), *why,
                       "'" + c.validation.endpoints[i] + "'");
  if (c.validation.timeout <= Ms::zero())
    return bad_value("validation.timeout", "must be > 0", format_duration(c.validation.timeout));
  const std::pair<const char*, size_t> validation_bounds[] = {
      {"max_pending", c.validation.max_pending},
      {"max_pending_bytes", c.validation.max_pending_bytes},
      {"max_pending_per_peer", c.validation.max_pending_per_peer}};
  for (const auto& [name, value] : validation_bounds)
    if (value == 0) return bad_value(std::string("validation.") + name, "must be >= 1", "0");

  const auto& g = c.grpc;
  // "off": no gRPC API at all (scripts driving the agent through --stdio).
  if (auto why = g.address == "off" ? std::nullopt : bad_endpoint(g.address, true))
    return bad_value("grpc.address", *why, "'" + g.address + "'");
  if (g.tls_cert.empty() != g.tls_key.empty())
    return g.tls_cert.empty() ? bad_value("grpc.tls_cert", "required with grpc.tls_key", "''")
                              : bad_value("grpc.tls_key", "required with grpc.tls_cert", "''");
  if (!g.tls_client_ca.empty() && g.tls_cert.empty())
    return bad_value("grpc.tls_client_ca", "needs grpc.tls_cert and grpc.tls_key (TLS)",
                     "'" + g.tls_client_ca + "'");
  if (g.max_listen_streams == 0) return bad_value("grpc.max_listen_streams", "must be >= 1", "0");
  const std::pair<const char*, size_t> grpc_bounds[] = {
      {"max_listen_buffer_bytes", g.max_listen_buffer_bytes},
      {"max_listen_total_bytes", g.max_listen_total_bytes},
      {"max_pending_publish_bytes", g.max_pending_publish_bytes},
      {"max_topics", g.max_topics}};
  for (const auto& [name, value] : grpc_bounds)
    if (value == 0) return bad_value(std::string("grpc.") + name, "must be >= 1", "0");

  if (auto r = validate_dht(c.dht); !r) return r;
  if (auto r = validate_connmgr(c.connmgr); !r) return r;
  if (auto r = validate_sync(c.sync); !r) return r;
  if (auto r = validate_trace(c.trace); !r) return r;
  if (auto r = validate_metrics(c.metrics); !r) return r;

  if (std::find(log_levels().begin(), log_levels().end(), c.log_level) == log_levels().end())
    return bad_value("log_level", "expected trace, debug, info, warn, error, critical or off",
                     "'" + c.log_level + "'");
  return {};
}

// Puts the user's spelling and the line into a message from validation ("gossip.D_lo: ...").
Error locate(Error e, const Ctx& ctx) {
  auto colon = e.message.find(": ");
  if (colon == std::string::npos) return e;
  std::string key = e.message.substr(0, colon);
  std::string rest = e.message.substr(colon);
  if (auto s = ctx.spelled.find(key); s != ctx.spelled.end()) {
    rest = rest + " (" + key + ")";
    e.message = s->second + rest;
  }
  // The key itself, else its nearest parent that was written (e.g. a topic's entry).
  for (std::string k = key; !k.empty();) {
    if (auto l = ctx.lines.find(k); l != ctx.lines.end() && l->second > 0) {
      e.message += fmt::format(" (line {})", l->second);
      break;
    }
    auto cut = k.find_last_of(".[");
    k = cut == std::string::npos ? std::string() : k.substr(0, cut);
  }
  return e;
}

Result<void> apply_node(AgentConfig& config, Ctx& ctx, const YAML::Node& root) {
  try {
    ctx.root = &config;
    return parse_map(ctx, config, "", root, top_fields());
  } catch (const YAML::Exception& e) {
    return invalid(fmt::format("YAML error: {}", e.what()));
  }
}

}  // namespace

const char* role_name(Role role) {
  switch (role) {
    case Role::agent:
      return "agent";
    case Role::archive:
      return "archive";
    case Role::bootstrapper:
      return "bootstrapper";
  }
  return "?";
}

std::string AgentConfig::key_file_path() const {
  if (!key_file.empty()) return key_file;
  if (data_dir.ends_with('/')) return data_dir + "identity.key";
  return data_dir + "/identity.key";
}

bool AgentConfig::has_role(Role role) const {
  return std::find(roles.begin(), roles.end(), role) != roles.end();
}

uint64_t AgentConfig::rng_seed(uint64_t stream) const {
  if (gossip_seed) {
    // splitmix64 of (seed, stream): independent-looking streams from one pinned seed.
    uint64_t z = *gossip_seed + 0x9e3779b97f4a7c15ULL * (stream + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  uint64_t seed = 0;
  while (::getrandom(&seed, sizeof seed, 0) != static_cast<ssize_t>(sizeof seed)) {
  }
  return seed;
}

pubsub::GossipsubConfig AgentConfig::router_config() const {
  pubsub::GossipsubConfig g = gossip;
  g.seed = gossip_seed ? *gossip_seed : rng_seed(0);
  for (const auto& [topic, t] : topics) {
    if (t.message_id_fn) g.message_id_fn_per_topic[topic] = *t.message_id_fn;
    if (t.max_message_size) g.max_message_size_per_topic[topic] = *t.max_message_size;
  }
  for (const auto& addr : direct_peers) {
    if (auto mh = addr.p2p())
      if (auto id = crypto::PeerId::from_bytes(*mh)) g.direct_peers.push_back(*id);
  }
  return g;
}

Ms AgentConfig::validation_timeout(const std::string& topic) const {
  if (auto it = topics.find(topic); it != topics.end() && it->second.validation_timeout)
    return *it->second.validation_timeout;
  return validation.timeout;
}

Result<AgentConfig> parse_config(std::string_view yaml_text) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    // e.what() reads "yaml-cpp: error at line L, column C: ...".
    return invalid(fmt::format("YAML syntax error at line {}, column {}: {}", e.mark.line + 1,
                               e.mark.column + 1, e.msg));
  }
  AgentConfig config;
  Ctx ctx;
  if (auto r = apply_node(config, ctx, root); !r) return tl::unexpected(r.error());
  if (auto r = validate_impl(config); !r) return tl::unexpected(locate(r.error(), ctx));
  return config;
}

Result<AgentConfig> load_config(const std::string& path) {
  constexpr std::streamsize kMaxConfigSize = 4 << 20;
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(Errc::not_found, path + ": cannot open the configuration file");
  std::string text;
  char buffer[64 * 1024];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
    text.append(buffer, static_cast<size_t>(in.gcount()));
    if (static_cast<std::streamsize>(text.size()) > kMaxConfigSize)
      return fail(Errc::limit_exceeded, path + ": larger than 4 MiB, not a configuration file");
  }
  if (in.bad()) return fail(Errc::io, path + ": read error");
  auto config = parse_config(text);
  if (!config) return fail(config.error().code, path + ": " + config.error().message);
  return config;
}

Result<void> apply_override(AgentConfig& config, std::string_view key,
                            const std::vector<std::string>& values) {
  YAML::Node list(YAML::NodeType::Sequence);
  for (const auto& v : values) list.push_back(v);
  YAML::Node value = values.size() == 1 ? YAML::Node(values.front()) : list;
  // Split at dots, except inside a topic name: topics.<topic>.<field> and
  // score.topics.<topic>.<field>.
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    auto dot = key.find('.', start);
    parts.emplace_back(key.substr(start, dot == std::string_view::npos ? key.npos : dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  size_t topic_at = parts[0] == "topics"                                              ? 1
                    : parts.size() > 1 && parts[0] == "score" && parts[1] == "topics" ? 2
                                                                                      : 0;
  if (topic_at && parts.size() > topic_at + 2) {
    std::string topic = parts[topic_at];
    for (size_t i = topic_at + 1; i + 1 < parts.size(); ++i) topic += "." + parts[i];
    parts.erase(parts.begin() + static_cast<std::ptrdiff_t>(topic_at) + 1, parts.end() - 1);
    parts[topic_at] = topic;
  }
  for (const auto& p : parts)
    if (p.empty()) return invalid(fmt::format("'{}': not a configuration key", key));

  YAML::Node root(YAML::NodeType::Map);
  YAML::Node cursor = root;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    cursor[parts[i]] = YAML::Node(YAML::NodeType::Map);
    cursor.reset(cursor[parts[i]]);
  }
  cursor[parts.back()] = value;
  Ctx ctx;
  return apply_node(config, ctx, root);
}

Result<void> apply_override(AgentConfig& config, std::string_view key, std::string_view value) {
  return apply_override(config, key, std::vector<std::string>{std::string(value)});
}

Result<void> apply_override(AgentConfig& config, std::string_view assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string_view::npos)
    return invalid(fmt::format("expected KEY=VALUE, got '{}'", assignment));
  return apply_override(config, assignment.substr(0, eq), assignment.substr(eq + 1));
}

Result<void> validate_config(const AgentConfig& config) {
  return validate_impl(config);
}

std::string dump_config(const AgentConfig& config) {
  YAML::Emitter out;
  out << emit_map(config, config, top_fields());
  return std::string(out.c_str()) + "\n";
}

std::vector<std::string> config_keys() {
  return keys_of(top_fields());
}

}  // namespace p2pmq::agent
