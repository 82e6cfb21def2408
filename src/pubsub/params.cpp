#include "pubsub/params.hpp"

#include <charconv>
#include <functional>
#include <map>

namespace p2pmq::pubsub {

namespace {

Result<uint64_t> parse_uint(std::string_view key, std::string_view v) {
  uint64_t out = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || ptr != v.data() + v.size())
    return fail(Errc::invalid_input, "gossip." + std::string(key) +
                                         ": expected a whole number, got '" + std::string(v) + "'");
  return out;
}

Result<double> parse_double(std::string_view key, std::string_view v) {
  try {
    size_t used = 0;
    double d = std::stod(std::string(v), &used);
    if (used == v.size()) return d;
  } catch (const std::exception&) {
  }
  return fail(Errc::invalid_input,
              "gossip." + std::string(key) + ": expected a number, got '" + std::string(v) + "'");
}

Result<bool> parse_bool(std::string_view key, std::string_view v) {
  if (v == "true" || v == "1" || v == "yes") return true;
  if (v == "false" || v == "0" || v == "no") return false;
  return fail(Errc::invalid_input, "gossip." + std::string(key) +
                                       ": expected true or false, got '" + std::string(v) + "'");
}

// "500ms", "2s", "1m"; a bare number is milliseconds.
Result<Duration> parse_duration(std::string_view key, std::string_view v) {
  std::string_view number = v;
  double scale = 1e-3;
  if (v.ends_with("ms")) {
    number = v.substr(0, v.size() - 2);
  } else if (v.ends_with("s")) {
    number = v.substr(0, v.size() - 1);
    scale = 1;
  } else if (v.ends_with("m")) {
    number = v.substr(0, v.size() - 1);
    scale = 60;
  }
  auto d = parse_double(key, number);
  if (!d || *d < 0)
    return fail(Errc::invalid_input, "gossip." + std::string(key) +
                                         ": expected a duration such as 500ms or 2s, got '" +
                                         std::string(v) + "'");
  return std::chrono::round<Duration>(std::chrono::duration<double>(*d * scale));
}

using Setter = std::function<Result<void>(GossipsubConfig&, std::string_view, std::string_view)>;

template <class Field>
Setter size_field(Field field) {
  return [field](GossipsubConfig& c, std::string_view k, std::string_view v) -> Result<void> {
    auto n = parse_uint(k, v);
    if (!n) return tl::unexpected(n.error());
    c.*field = static_cast<size_t>(*n);
    return {};
  };
}
template <class Field>
Setter duration_field(Field field) {
  return [field](GossipsubConfig& c, std::string_view k, std::string_view v) -> Result<void> {
    auto d = parse_duration(k, v);
    if (!d) return tl::unexpected(d.error());
    c.*field = *d;
    return {};
  };
}
template <class Field>
Setter bool_field(Field field) {
  return [field](GossipsubConfig& c, std::string_view k, std::string_view v) -> Result<void> {
    auto b = parse_bool(k, v);
    if (!b) return tl::unexpected(b.error());
    c.*field = *b;
    return {};
  };
}

const std::map<std::string, Setter, std::less<>>& setters() {
  static const std::map<std::string, Setter, std::less<>> table{
      {"D", size_field(&GossipsubConfig::D)},
      {"D_lo", size_field(&GossipsubConfig::D_lo)},
      {"D_hi", size_field(&GossipsubConfig::D_hi)},
      {"D_score", size_field(&GossipsubConfig::D_score)},
      {"D_out", size_field(&GossipsubConfig::D_out)},
      {"D_lazy", size_field(&GossipsubConfig::D_lazy)},
      {"gossip_factor",
       [](GossipsubConfig& c, std::string_view k, std::string_view v) -> Result<void> {
         auto d = parse_double(k, v);
         if (!d) return tl::unexpected(d.error());
         c.gossip_factor = *d;
         return {};
       }},
      {"heartbeat_interval", duration_field(&GossipsubConfig::heartbeat_interval)},
      {"heartbeat_initial_delay", duration_field(&GossipsubConfig::heartbeat_initial_delay)},
      {"fanout_ttl", duration_field(&GossipsubConfig::fanout_ttl)},
      {"mcache_len", size_field(&GossipsubConfig::mcache_len)},
      {"mcache_gossip", size_field(&GossipsubConfig::mcache_gossip)},
      {"seen_ttl", duration_field(&GossipsubConfig::seen_ttl)},
      {"prune_backoff", duration_field(&GossipsubConfig::prune_backoff)},
      {"unsubscribe_backoff", duration_field(&GossipsubConfig::unsubscribe_backoff)},
      {"graft_flood_threshold", duration_field(&GossipsubConfig::graft_flood_threshold)},
      {"prune_peers", size_field(&GossipsubConfig::prune_peers)},
      {"do_px", bool_field(&GossipsubConfig::do_px)},
      {"flood_publish", bool_field(&GossipsubConfig::flood_publish)},
      {"opportunistic_graft_ticks", size_field(&GossipsubConfig::opportunistic_graft_ticks)},
      {"opportunistic_graft_peers", size_field(&GossipsubConfig::opportunistic_graft_peers)},
      {"max_ihave_length", size_field(&GossipsubConfig::max_ihave_length)},
      {"max_iwant_length", size_field(&GossipsubConfig::max_iwant_length)},
      {"max_ihave_messages", size_field(&GossipsubConfig::max_ihave_messages)},
      {"iwant_followup_time", duration_field(&GossipsubConfig::iwant_followup_time)},
      {"idontwant_message_size_threshold",
       size_field(&GossipsubConfig::idontwant_message_size_threshold)},
      {"max_message_size", size_field(&GossipsubConfig::max_message_size)},
      {"max_subscriptions_per_peer", size_field(&GossipsubConfig::max_subscriptions_per_peer)},
      {"max_pending_validations_per_topic",
       size_field(&GossipsubConfig::max_pending_validations_per_topic)},
      {"validation_timeout", duration_field(&GossipsubConfig::validation_timeout)},
      {"seed", size_field(&GossipsubConfig::seed)},
      {"message_id_fn",
       [](GossipsubConfig& c, std::string_view k, std::string_view v) -> Result<void> {
         if (v == "p2pmq")
           c.message_id_fn = MessageIdFn::p2pmq;
         else if (v == "stock")
           c.message_id_fn = MessageIdFn::stock;
         else if (v == "content")
           c.message_id_fn = MessageIdFn::content;
         else if (v == "rust")
           c.message_id_fn = MessageIdFn::rust;
         else
           return fail(Errc::invalid_input, "gossip." + std::string(k) +
                                                ": expected p2pmq, stock, content or rust, got '" +
                                                std::string(v) + "'");
         return {};
       }},
      {"signature_policy",
       [](GossipsubConfig& c, std::string_view k, std::string_view v) -> Result<void> {
         if (v == "strict_sign")
           c.signature_policy = SignaturePolicy::strict_sign;
         else if (v == "strict_no_sign")
           c.signature_policy = SignaturePolicy::strict_no_sign;
         else
           return fail(Errc::invalid_input, "gossip." + std::string(k) +
                                                ": expected strict_sign or strict_no_sign, got '" +
                                                std::string(v) + "'");
         return {};
       }},
  };
  return table;
}

}  // namespace

Result<void> set_gossip_param(GossipsubConfig& config, std::string_view key,
                              std::string_view value) {
  auto it = setters().find(key);
  if (it == setters().end())
    return fail(Errc::invalid_input, "gossip." + std::string(key) + ": unknown parameter");
  return it->second(config, key, value);
}

Result<void> set_gossip_param(GossipsubConfig& config, std::string_view assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string_view::npos)
    return fail(Errc::invalid_input,
                "expected KEY=VALUE for a gossip parameter, got '" + std::string(assignment) + "'");
  return set_gossip_param(config, assignment.substr(0, eq), assignment.substr(eq + 1));
}

std::vector<std::string> gossip_param_names() {
  std::vector<std::string> out;
  for (const auto& [name, setter] : setters()) out.push_back(name);
  return out;
}

}  // namespace p2pmq::pubsub
