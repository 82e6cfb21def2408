#include "agent/config.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "pubsub/params.hpp"

namespace p2pmq::agent {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;

const std::string kSource = P2PMQ_SOURCE_DIR;
constexpr const char* kPeer = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The error message of a configuration that must be refused.
std::string error_of(std::string_view yaml) {
  auto c = parse_config(yaml);
  EXPECT_FALSE(c) << "accepted:\n" << yaml;
  if (c) return "";
  EXPECT_EQ(c.error().code, Errc::invalid_input);
  return c.error().message;
}

AgentConfig ok(std::string_view yaml) {
  auto c = parse_config(yaml);
  EXPECT_TRUE(c) << c.error().message;
  return c ? *c : AgentConfig{};
}

// ---- Example configs and documentation ----

TEST(AgentConfigExamples, EveryExampleLoads) {
  size_t count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(kSource + "/config")) {
    if (entry.path().extension() != ".yaml") continue;
    ++count;
    auto c = load_config(entry.path().string());
    EXPECT_TRUE(c) << c.error().message;
  }
  EXPECT_GE(count, 4u);
}

TEST(AgentConfigExamples, RolesOfTheExamples) {
  auto archive = load_config(kSource + "/config/archive.yaml");
  ASSERT_TRUE(archive) << archive.error().message;
  EXPECT_TRUE(archive->has_role(Role::archive));
  EXPECT_TRUE(archive->has_role(Role::agent));
  EXPECT_EQ(archive->gossip.D_lo, 6u);  // written as Dlo
  EXPECT_EQ(archive->bootstrap.size(), 2u);
  EXPECT_EQ(archive->sync.retention_messages, 100000u);
  EXPECT_EQ(archive->sync.retention_age, std::chrono::hours(24 * 7));
  auto boot = load_config(kSource + "/config/bootstrapper.yaml");
  ASSERT_TRUE(boot) << boot.error().message;
  EXPECT_EQ(boot->roles, std::vector<Role>{Role::bootstrapper});
  EXPECT_EQ(boot->dht.mode, DhtSettings::Mode::automatic);
  EXPECT_GT(boot->connmgr.high_water, 1000u);
  auto devnet = load_config(kSource + "/config/devnet.yaml");
  ASSERT_TRUE(devnet) << devnet.error().message;
  EXPECT_EQ(devnet->gossip.heartbeat_interval, 100ms);
  EXPECT_EQ(devnet->sync.gap_wait, 200ms);
  for (const auto& a : devnet->listen) EXPECT_THAT(a.to_string(), HasSubstr("/ip4/127.0.0.1/"));
}

// agent.yaml claims to hold every key at its default: it must parse to exactly the defaults.
TEST(AgentConfigExamples, AgentYamlIsTheDefaults) {
  auto c = load_config(kSource + "/config/agent.yaml");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(dump_config(*c), dump_config(AgentConfig{}));
}

TEST(AgentConfigExamples, AgentYamlAndDocsNameEveryKey) {
  const std::string yaml = read(kSource + "/config/agent.yaml");
  const std::string docs = read(kSource + "/docs/configuration.md");
  ASSERT_FALSE(docs.empty());
  for (const auto& key : config_keys()) {
    std::string leaf = key.substr(key.find_last_of('.') + 1);
    EXPECT_THAT(yaml, HasSubstr(leaf + ":")) << key;
    EXPECT_THAT(docs, HasSubstr("`" + key + "`")) << key;
  }
}

// Every name `--gossip K=V` accepts is a YAML key too.
TEST(AgentConfigExamples, EveryGossipParamIsAKey) {
  auto keys = config_keys();
  for (const auto& name : pubsub::gossip_param_names())
    EXPECT_NE(std::find(keys.begin(), keys.end(), "gossip." + name), keys.end()) << name;
}

// ---- Defaults ----

TEST(AgentConfigDefaults, EmptyDocumentIsTheDefaults) {
  for (std::string_view text : {"", "# nothing\n", "---\n"}) {
    auto c = ok(text);
    EXPECT_EQ(dump_config(c), dump_config(AgentConfig{}));
  }
}

TEST(AgentConfigDefaults, Values) {
  AgentConfig c = ok("");
  ASSERT_EQ(c.listen.size(), 1u);
  EXPECT_EQ(c.listen[0].to_string(), "/ip4/127.0.0.1/tcp/0");
  EXPECT_TRUE(c.bootstrap.empty());
  EXPECT_EQ(c.roles, std::vector<Role>{Role::agent});
  EXPECT_EQ(c.data_dir, "./p2pmq-data");
  EXPECT_EQ(c.key_file_path(), "./p2pmq-data/identity.key");
  EXPECT_EQ(c.grpc.address, "127.0.0.1:5050");
  EXPECT_TRUE(c.grpc.tls_cert.empty());
  EXPECT_EQ(c.log_level, "info");
  EXPECT_EQ(c.gossip.D, 6u);
  EXPECT_EQ(c.gossip.D_lo, 5u);
  EXPECT_EQ(c.gossip.heartbeat_interval, 1s);
  EXPECT_EQ(c.limits.max_inbound_connections, 256u);
  EXPECT_EQ(c.limits.handshake_timeout, 15s);
  EXPECT_EQ(c.validation.timeout, 5s);
  EXPECT_EQ(c.validation.no_validator_policy, ValidationSettings::Policy::ignore);
  EXPECT_EQ(c.score.ip_colocation_factor_whitelist.size(), 2u);
  EXPECT_EQ(c.thresholds.graylist_threshold, -80);
  EXPECT_TRUE(validate_config(c));
}

TEST(AgentConfigDefaults, KeyFileFollowsDataDir) {
  AgentConfig c = ok("data_dir: /srv/p2pmq/\n");
  EXPECT_EQ(c.key_file_path(), "/srv/p2pmq/identity.key");
  c = ok("data_dir: /srv/p2pmq\nidentity: {key_file: /etc/p2pmq/id.key}\n");
  EXPECT_EQ(c.key_file_path(), "/etc/p2pmq/id.key");
  c = ok("identity:\n  key_file:\n");  // empty value: the default
  EXPECT_EQ(c.key_file_path(), "./p2pmq-data/identity.key");
}

TEST(AgentConfigDefaults, SectionsLeftEmptyKeepDefaults) {
  AgentConfig c = ok("gossip:\nscore:\nbootstrap:\n");
  EXPECT_EQ(c.gossip.D, 6u);
  EXPECT_TRUE(c.bootstrap.empty());
}

TEST(AgentConfigDefaults, DumpRoundTrips) {
  auto c = load_config(kSource + "/config/archive.yaml");
  ASSERT_TRUE(c) << c.error().message;
  std::string dumped = dump_config(*c);
  auto again = parse_config(dumped);
  ASSERT_TRUE(again) << again.error().message << "\n" << dumped;
  EXPECT_EQ(dump_config(*again), dumped);
}

// ---- Values ----

TEST(AgentConfigValues, Durations) {
  AgentConfig c =
      ok("gossip:\n  heartbeat_interval: 500ms\n  fanout_ttl: 2s\n  seen_ttl: 1m\n"
         "  heartbeat_initial_delay: 250\n  prune_backoff: 1.5s\n"
         "limits:\n  dial_timeout: 3s\n  handshake_timeout: 1500\n"
         "score:\n  retain_score: 90m\n");
  EXPECT_EQ(c.gossip.heartbeat_interval, 500ms);
  EXPECT_EQ(c.gossip.fanout_ttl, 2s);
  EXPECT_EQ(c.gossip.seen_ttl, 60s);
  EXPECT_EQ(c.gossip.heartbeat_initial_delay, 250ms);
  EXPECT_EQ(c.gossip.prune_backoff, 1500ms);
  EXPECT_EQ(c.limits.dial_timeout, 3s);
  EXPECT_EQ(c.limits.handshake_timeout, 1500ms);
  EXPECT_EQ(c.score.retain_score, 90min);
}

TEST(AgentConfigValues, Aliases) {
  AgentConfig c =
      ok("gossip:\n  D: 8\n  Dlo: 6\n  Dhi: 14\n  Dscore: 5\n  Dout: 3\n  Dlazy: 7\n"
         "  heartbeat: 700ms\n");
  EXPECT_EQ(c.gossip.D, 8u);
  EXPECT_EQ(c.gossip.D_lo, 6u);
  EXPECT_EQ(c.gossip.D_hi, 14u);
  EXPECT_EQ(c.gossip.D_score, 5u);
  EXPECT_EQ(c.gossip.D_out, 3u);
  EXPECT_EQ(c.gossip.D_lazy, 7u);
  EXPECT_EQ(c.gossip.heartbeat_interval, 700ms);
}

TEST(AgentConfigValues, AliasAndNameTogetherIsRefused) {
  EXPECT_THAT(error_of("gossip:\n  D_lo: 4\n  Dlo: 3\n"),
              HasSubstr("gossip.Dlo: same parameter as gossip.D_lo, given twice (line 3)"));
}

TEST(AgentConfigValues, RoleScalarOrList) {
  EXPECT_EQ(ok("role: archive\n").roles, std::vector<Role>{Role::archive});
  EXPECT_EQ(ok("role: [agent, bootstrapper]\n").roles,
            (std::vector<Role>{Role::agent, Role::bootstrapper}));
}

TEST(AgentConfigValues, TopicsAndScoreTopics) {
  AgentConfig c =
      ok("topics:\n  blocks:\n    message_id_fn: content\n    max_message_size: 4096\n"
         "    validation_timeout: 2s\n  tx:\n"
         "score:\n  topics:\n    blocks:\n      topic_weight: 0.5\n"
         "      mesh_message_deliveries_weight: -1\n");
  ASSERT_TRUE(c.topics.contains("tx"));
  auto g = c.router_config();
  EXPECT_EQ(g.message_id_fn_per_topic.at("blocks"), pubsub::MessageIdFn::content);
  EXPECT_EQ(g.max_message_size_per_topic.at("blocks"), 4096u);
  EXPECT_FALSE(g.max_message_size_per_topic.contains("tx"));
  EXPECT_EQ(c.validation_timeout("blocks"), 2s);
  EXPECT_EQ(c.validation_timeout("tx"), 5s);
  EXPECT_EQ(c.score.topics.at("blocks").topic_weight, 0.5);
  EXPECT_EQ(c.score.topics.at("blocks").mesh_message_deliveries_weight, -1);
  // The rest of the topic's parameters are the defaults.
  EXPECT_EQ(c.score.topics.at("blocks").invalid_message_deliveries_weight, -10);
}

TEST(AgentConfigValues, DirectPeersAndAllowedTopics) {
  AgentConfig c = ok(std::string("gossip:\n  direct_peers: [/ip4/10.0.0.1/tcp/4001/p2p/") + kPeer +
                     "]\n  allowed_topics: [a, b]\ntopics:\n  a:\n");
  ASSERT_EQ(c.direct_peers.size(), 1u);
  auto g = c.router_config();
  ASSERT_EQ(g.direct_peers.size(), 1u);
  EXPECT_EQ(g.direct_peers[0].to_base58(), kPeer);
  ASSERT_TRUE(g.allowed_topics);
  EXPECT_EQ(g.allowed_topics->size(), 2u);
  EXPECT_THAT(error_of("gossip:\n  allowed_topics: [a]\ntopics:\n  b:\n"),
              HasSubstr("topics.b: is not in gossip.allowed_topics"));
}

// ---- Errors: each names its key ----

TEST(AgentConfigErrors, UnknownKeyAtTopLevel) {
  EXPECT_EQ(error_of("data_dir: /tmp/x\ngosip:\n  D: 8\n"),
            "gosip: unknown key (did you mean gossip?) (line 2)");
}

TEST(AgentConfigErrors, UnknownKeyInSection) {
  EXPECT_EQ(error_of("grpc:\n  adress: 127.0.0.1:1\n"),
            "grpc.adress: unknown key (did you mean grpc.address?) (line 2)");
  EXPECT_EQ(error_of("grpc:\n  zzzzzzzz: 1\n"), "grpc.zzzzzzzz: unknown key (line 2)");
  EXPECT_THAT(error_of("gossip:\n  d_lo: 4\n"), HasSubstr("(did you mean gossip.D_lo?)"));
}

TEST(AgentConfigErrors, UnknownKeyAtDepthThree) {
  EXPECT_EQ(error_of("score:\n  topics:\n    blocks:\n      topic_wieght: 1\n"),
            "score.topics.blocks.topic_wieght: unknown key "
            "(did you mean score.topics.blocks.topic_weight?) (line 4)");
  EXPECT_THAT(error_of("topics:\n  blocks:\n    max_msg_size: 1\n"),
              HasSubstr("topics.blocks.max_msg_size: unknown key"));
}

TEST(AgentConfigErrors, DuplicateKey) {
  EXPECT_THAT(error_of("gossip:\n  D: 6\n  D: 7\n"), HasSubstr("gossip.D: duplicate key (line 3)"));
}

TEST(AgentConfigErrors, WrongType) {
  EXPECT_EQ(error_of("gossip:\n  D: [1, 2]\n"),
            "gossip.D: expected a whole number, got a list (line 2)");
  EXPECT_EQ(error_of("gossip:\n  D: six\n"),
            "gossip.D: expected a whole number, got 'six' (line 2)");
  EXPECT_EQ(error_of("gossip:\n  D: -1\n"), "gossip.D: expected a whole number, got '-1' (line 2)");
  EXPECT_THAT(error_of("gossip: 5\n"), HasSubstr("gossip: expected a map of keys, got '5'"));
  EXPECT_THAT(error_of("listen: {a: b}\n"), HasSubstr("listen: expected a list, got a map"));
  EXPECT_THAT(error_of("gossip:\n  do_px: maybe\n"),
              HasSubstr("gossip.do_px: expected true or false, got 'maybe'"));
  EXPECT_THAT(error_of("gossip:\n  gossip_factor: lots\n"),
              HasSubstr("gossip.gossip_factor: expected a finite number, got 'lots'"));
  EXPECT_THAT(error_of("score:\n  app_specific_weight: .inf\n"),
              HasSubstr("score.app_specific_weight: expected a finite number"));
  EXPECT_THAT(error_of("data_dir:\n"),
              HasSubstr("data_dir: expected a string, got an empty value"));
  EXPECT_THAT(error_of("- a\n- b\n"), HasSubstr("(top level): expected a map of keys"));
  EXPECT_THAT(
      error_of("gossip:\n  message_id_fn: sha1\n"),
      HasSubstr("gossip.message_id_fn: expected p2pmq, stock, content or rust, got 'sha1'"));
}

TEST(AgentConfigErrors, BadDuration) {
  EXPECT_EQ(error_of("gossip:\n  heartbeat_interval: 2 hours\n"),
            "gossip.heartbeat_interval: expected a duration such as 500ms, 2s or 1m (a bare "
            "number is milliseconds), got '2 hours' (line 2)");
  EXPECT_THAT(error_of("limits:\n  dial_timeout: -1s\n"),
              HasSubstr("limits.dial_timeout: expected a duration"));
  EXPECT_THAT(error_of("gossip:\n  fanout_ttl: 1e30s\n"),
              HasSubstr("gossip.fanout_ttl: expected a duration"));
  EXPECT_THAT(error_of("validation:\n  timeout: 0.5ms\n"),
              HasSubstr("validation.timeout: must be a whole number of milliseconds"));
  EXPECT_THAT(error_of("limits:\n  dial_timeout: 0\n"),
              HasSubstr("limits.dial_timeout: must be > 0"));
}

TEST(AgentConfigErrors, InconsistentGossip) {
  EXPECT_EQ(error_of("gossip:\n  D: 6\n  D_lo: 7\n"),
            "gossip.D_lo: must be <= D (6), got 7 (line 3)");
  EXPECT_THAT(error_of("gossip:\n  D_hi: 4\n"), HasSubstr("gossip.D_hi: must be >= D (6), got 4"));
  EXPECT_THAT(error_of("gossip:\n  D_out: 5\n"),
              HasSubstr("gossip.D_out: must be < D_lo (5), got 5"));
  EXPECT_THAT(error_of("gossip:\n  mcache_gossip: 6\n"),
              HasSubstr("gossip.mcache_gossip: must be <= mcache_len (5), got 6"));
  EXPECT_THAT(error_of("gossip:\n  max_backoff: 30s\n"),
              HasSubstr("gossip.max_backoff: must be >= prune_backoff (1m), got 30s"));
  EXPECT_THAT(error_of("gossip:\n  gossip_factor: 1.5\n"),
              HasSubstr("gossip.gossip_factor: must be in [0, 1], got 1.5"));
  // The router's own rules apply too.
  EXPECT_THAT(error_of("gossip:\n  seen_max_entries: 0\n"), HasSubstr("gossip.seen_max_entries"));
}

TEST(AgentConfigErrors, InconsistentAliasNamesWhatWasWritten) {
  EXPECT_EQ(error_of("gossip:\n  Dlo: 7\n"),
            "gossip.Dlo: must be <= D (6), got 7 (gossip.D_lo) (line 2)");
}

TEST(AgentConfigErrors, BadScoreParam) {
  EXPECT_EQ(error_of("score:\n  topics:\n    blocks:\n      mesh_message_deliveries_weight: -1\n"
                     "      mesh_message_deliveries_decay: 1.5\n"),
            "score.topics.blocks.mesh_message_deliveries_decay: must be in (0, 1), got 1.5 "
            "(line 5)");
  EXPECT_THAT(error_of("score:\n  behaviour_penalty_weight: 3\n"),
              HasSubstr("score.behaviour_penalty_weight: must be <= 0, got 3 (line 2)"));
  EXPECT_THAT(error_of("score:\n  decay_interval: 100ms\n"),
              HasSubstr("score.decay_interval: must be at least 1s"));
  EXPECT_THAT(error_of("score:\n  ip_colocation_factor_whitelist: [10.0.0.0/8, 300.1.1.1/8]\n"),
              HasSubstr("score.ip_colocation_factor_whitelist[1]: must be a CIDR"));
}

TEST(AgentConfigErrors, BadThresholdOrder) {
  EXPECT_EQ(error_of("thresholds:\n  gossip_threshold: -10\n  publish_threshold: -5\n"),
            "thresholds.publish_threshold: must be <= gossip_threshold, got -5 (line 3)");
  EXPECT_THAT(error_of("thresholds:\n  graylist_threshold: -20\n"),
              HasSubstr("thresholds.graylist_threshold: must be <= publish_threshold, got -20"));
  EXPECT_THAT(error_of("thresholds:\n  accept_px_threshold: -1\n"),
              HasSubstr("thresholds.accept_px_threshold: must be >= 0"));
}

TEST(AgentConfigErrors, BadMultiaddr) {
  EXPECT_THAT(error_of("listen:\n  - /ip4/999.0.0.1/tcp/1\n"),
              HasSubstr("listen[0]: expected a multiaddr such as /ip4/127.0.0.1/tcp/4001, got "
                        "'/ip4/999.0.0.1/tcp/1'"));
  EXPECT_THAT(error_of("listen: /dns4/example.org/tcp/1\n"),
              HasSubstr("listen: a listen address must be /ip4/<ip>/tcp/<port>"));
  EXPECT_THAT(error_of("bootstrap:\n  - /ip4/127.0.0.1/tcp/4001\n"),
              HasSubstr("bootstrap[0]: must end in /p2p/<peer id>, got '/ip4/127.0.0.1/tcp/4001' "
                        "(line 2)"));
  EXPECT_THAT(error_of("gossip:\n  direct_peers: [hello]\n"),
              HasSubstr("gossip.direct_peers[0]: expected a multiaddr"));
  EXPECT_THAT(error_of("listen: []\n"), HasSubstr("listen: must have at least one address"));
}

TEST(AgentConfigErrors, BadRole) {
  EXPECT_EQ(error_of("role: miner\n"),
            "role: expected agent, archive or bootstrapper, got 'miner' (line 1)");
  EXPECT_THAT(error_of("role: [agent, miner]\n"), HasSubstr("role[1]: expected agent, archive"));
  EXPECT_THAT(error_of("role: [archive, archive]\n"), HasSubstr("role[1]: is listed twice"));
  EXPECT_THAT(error_of("role: []\n"), HasSubstr("role: must name at least one role"));
}

TEST(AgentConfigErrors, GrpcAndValidation) {
  EXPECT_THAT(error_of("grpc:\n  tls_cert: a.pem\n"),
              HasSubstr("grpc.tls_key: required with grpc.tls_cert"));
  EXPECT_THAT(error_of("grpc:\n  tls_client_ca: ca.pem\n"), HasSubstr("grpc.tls_client_ca:"));
  EXPECT_THAT(error_of("grpc:\n  address: localhost\n"),
              HasSubstr("grpc.address: expected host:port"));
  EXPECT_THAT(error_of("grpc:\n  address: ::1:50\n"), HasSubstr("grpc.address: an IPv6 host"));
  EXPECT_TRUE(parse_config("grpc:\n  address: '[::1]:5050'\n"));
  EXPECT_THAT(error_of("validation:\n  endpoints: [127.0.0.1:0]\n"),
              HasSubstr("validation.endpoints[0]: the port must be 1..65535"));
  EXPECT_THAT(error_of("validation:\n  no_validator_policy: reject\n"),
              HasSubstr("validation.no_validator_policy: expected ignore or accept, got 'reject'"));
  EXPECT_THAT(error_of("log_level: loud\n"), HasSubstr("log_level: expected trace, debug"));
  EXPECT_THAT(error_of("limits:\n  max_pending_dials: 0\n"),
              HasSubstr("limits.max_pending_dials: must be >= 1"));
}

TEST(AgentConfigErrors, YamlSyntaxErrorHasALine) {
  EXPECT_THAT(error_of("gossip:\n  D: [1, 2\n"), HasSubstr("YAML syntax error at line"));
}

TEST(AgentConfigErrors, LoadConfigNamesTheFile) {
  auto missing = load_config("/nonexistent/p2pmq.yaml");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::not_found);
  EXPECT_THAT(missing.error().message, HasSubstr("/nonexistent/p2pmq.yaml"));

  auto path = std::filesystem::temp_directory_path() / "p2pmq_config_test_bad.yaml";
  std::ofstream(path) << "gossip:\n  D_lo: 9\n";
  auto bad = load_config(path.string());
  std::filesystem::remove(path);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message, path.string() + ": gossip.D_lo: must be <= D (6), got 9 (line 2)");
}

// ---- Command-line overrides ----

TEST(AgentConfigOverrides, SetKeysByPath) {
  AgentConfig c;
  ASSERT_TRUE(apply_override(
      c, "listen", std::vector<std::string>{"/ip4/0.0.0.0/tcp/4001", "/ip6/::/tcp/4001"}));
  ASSERT_TRUE(apply_override(c, "grpc.address", "0.0.0.0:6000"));
  ASSERT_TRUE(apply_override(c, "gossip.D=8"));
  ASSERT_TRUE(apply_override(c, "gossip.heartbeat=250ms"));
  ASSERT_TRUE(apply_override(c, "role", "archive"));
  ASSERT_TRUE(apply_override(c, "identity.key_file", "/tmp/k"));
  ASSERT_TRUE(apply_override(c, "bootstrap", std::string("/ip4/1.2.3.4/tcp/1/p2p/") + kPeer));
  ASSERT_TRUE(apply_override(c, "topics.chain.blocks.max_message_size", "9000"));
  ASSERT_TRUE(apply_override(c, "score.topics.chain.blocks.topic_weight", "2"));
  ASSERT_TRUE(validate_config(c));
  EXPECT_EQ(c.listen.size(), 2u);
  EXPECT_EQ(c.grpc.address, "0.0.0.0:6000");
  EXPECT_EQ(c.gossip.D, 8u);
  EXPECT_EQ(c.gossip.heartbeat_interval, 250ms);
  EXPECT_EQ(c.roles, std::vector<Role>{Role::archive});
  EXPECT_EQ(c.key_file_path(), "/tmp/k");
  EXPECT_EQ(c.bootstrap.size(), 1u);
  EXPECT_EQ(c.topics.at("chain.blocks").max_message_size, 9000u);
  EXPECT_EQ(c.score.topics.at("chain.blocks").topic_weight, 2);
}

TEST(AgentConfigOverrides, OverridesApplyOverTheFile) {
  auto c = parse_config("gossip:\n  D: 8\n  D_lo: 6\ngrpc:\n  address: 127.0.0.1:7000\n");
  ASSERT_TRUE(c);
  ASSERT_TRUE(apply_override(*c, "gossip.D_hi", "20"));
  EXPECT_EQ(c->gossip.D, 8u);  // untouched
  EXPECT_EQ(c->gossip.D_hi, 20u);
  EXPECT_EQ(c->grpc.address, "127.0.0.1:7000");
}

TEST(AgentConfigOverrides, ErrorsNameTheKey) {
  AgentConfig c;
  auto r = apply_override(c, "grpc.adress", "x");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "grpc.adress: unknown key (did you mean grpc.address?)");
  r = apply_override(c, "gossip.D", "many");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "gossip.D: expected a whole number, got 'many'");
  EXPECT_FALSE(apply_override(c, "gossip..D", "1"));
  EXPECT_FALSE(apply_override(c, "no equals sign"));
  // Consistency is checked once all overrides are in.
  ASSERT_TRUE(apply_override(c, "gossip.D", "4"));
  auto v = validate_config(c);
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().message, "gossip.D_lo: must be <= D (4), got 5");
  ASSERT_TRUE(apply_override(c, "gossip.Dlo", "3"));
  ASSERT_TRUE(apply_override(c, "gossip.Dout", "1"));
  EXPECT_TRUE(validate_config(c));
}

// ---- dht, connmgr, sync ----

TEST(AgentConfigDhtSync, Defaults) {
  AgentConfig c = ok("");
  EXPECT_EQ(c.dht.mode, DhtSettings::Mode::automatic);
  EXPECT_EQ(c.dht.protocol_prefix, "/p2pmq");
  EXPECT_EQ(c.dht.alpha, 10u);
  EXPECT_EQ(c.dht.k, 20u);
  EXPECT_EQ(c.dht.beta, 20u);
  EXPECT_EQ(c.dht.request_timeout, 10s);
  EXPECT_EQ(c.dht.query_timeout, 60s);
  EXPECT_EQ(c.dht.bootstrap_interval, 5min);
  EXPECT_EQ(c.dht.discovery_interval, 10s);
  EXPECT_FALSE(c.dht.mdns);
  EXPECT_EQ(c.connmgr.low_water, 64u);
  EXPECT_EQ(c.connmgr.high_water, 96u);
  EXPECT_EQ(c.connmgr.grace, 30s);
  EXPECT_TRUE(c.sync.archives.empty());
  EXPECT_EQ(c.sync.gap_wait, 2s);
  EXPECT_EQ(c.sync.fetch_retry, 5s);
  EXPECT_EQ(c.sync.gap_give_up, 30s);
  EXPECT_EQ(c.sync.request_timeout, 10s);
  EXPECT_EQ(c.sync.retention_messages, 10000u);
  EXPECT_EQ(c.sync.retention_age, 0s);
  EXPECT_EQ(c.sync.durability, SyncSettings::Durability::process_crash);
  EXPECT_TRUE(c.sync.catch_up_on_start);
  std::string dumped = dump_config(c);
  EXPECT_THAT(dumped, HasSubstr("mode: auto\n"));
  EXPECT_THAT(dumped, HasSubstr("durability: process_crash\n"));
}

TEST(AgentConfigDhtSync, Parse) {
  AgentConfig c = ok(std::string("dht:\n  mode: client\n  protocol_prefix: /ipfs\n  alpha: 3\n"
                                 "  k: 16\n  beta: 4\n  request_timeout: 2s\n"
                                 "  query_timeout: 30s\n  bootstrap_interval: 1m\n"
                                 "  discovery_interval: 500ms\n  mdns: true\n"
                                 "connmgr:\n  low_water: 10\n  high_water: 10\n  grace: 0\n"
                                 "sync:\n  archives:\n    - /ip4/10.0.0.1/tcp/4001/p2p/") +
                     kPeer + "\n    - /dns4/archive.example.org/tcp/4001/p2p/" + kPeer +
                     "\n  gap_wait: 0\n  fetch_retry: 1s\n  gap_give_up: 1m\n"
                     "  request_timeout: 3s\n  retention_messages: 1\n  retention_age: 1440m\n"
                     "  durability: power_loss\n  catch_up_on_start: no\n");
  EXPECT_EQ(c.dht.mode, DhtSettings::Mode::client);
  EXPECT_EQ(c.dht.protocol_prefix, "/ipfs");
  EXPECT_EQ(c.dht.alpha, 3u);
  EXPECT_EQ(c.dht.k, 16u);
  EXPECT_EQ(c.dht.beta, 4u);
  EXPECT_EQ(c.dht.request_timeout, 2s);
  EXPECT_EQ(c.dht.query_timeout, 30s);
  EXPECT_EQ(c.dht.bootstrap_interval, 1min);
  EXPECT_EQ(c.dht.discovery_interval, 500ms);
  EXPECT_TRUE(c.dht.mdns);
  EXPECT_EQ(c.connmgr.low_water, 10u);
  EXPECT_EQ(c.connmgr.high_water, 10u);
  EXPECT_EQ(c.connmgr.grace, 0ms);
  ASSERT_EQ(c.sync.archives.size(), 2u);
  EXPECT_EQ(c.sync.archives[0].to_string(), std::string("/ip4/10.0.0.1/tcp/4001/p2p/") + kPeer);
  EXPECT_EQ(c.sync.gap_wait, 0ms);
  EXPECT_EQ(c.sync.fetch_retry, 1s);
  EXPECT_EQ(c.sync.gap_give_up, 1min);
  EXPECT_EQ(c.sync.request_timeout, 3s);
  EXPECT_EQ(c.sync.retention_messages, 1u);
  EXPECT_EQ(c.sync.retention_age, 24h);
  EXPECT_EQ(c.sync.durability, SyncSettings::Durability::power_loss);
  EXPECT_FALSE(c.sync.catch_up_on_start);
  for (auto [text, mode] : {std::pair{"auto", DhtSettings::Mode::automatic},
                            std::pair{"server", DhtSettings::Mode::server},
                            std::pair{"bootstrapper", DhtSettings::Mode::bootstrapper}})
    EXPECT_EQ(ok(std::string("dht: {mode: ") + text + "}\n").dht.mode, mode) << text;
  // A single archive may be written as a scalar.
  EXPECT_EQ(ok(std::string("sync:\n  archives: /ip4/10.0.0.1/tcp/1/p2p/") + kPeer + "\n")
                .sync.archives.size(),
            1u);
}

TEST(AgentConfigDhtSync, DumpRoundTrips) {
  AgentConfig c = ok(std::string("dht:\n  mode: bootstrapper\n  protocol_prefix: /my/net\n"
                                 "  beta: 7\n  mdns: true\n  query_timeout: 90s\n"
                                 "connmgr:\n  low_water: 5\n  high_water: 7\n  grace: 1500ms\n"
                                 "sync:\n  archives: [/ip4/10.0.0.1/tcp/4001/p2p/") +
                     kPeer +
                     "]\n  gap_wait: 250ms\n  gap_give_up: 2m\n  retention_age: 3600s\n"
                     "  retention_messages: 123\n  durability: power_loss\n"
                     "  catch_up_on_start: false\n");
  std::string dumped = dump_config(c);
  auto again = parse_config(dumped);
  ASSERT_TRUE(again) << again.error().message << "\n" << dumped;
  EXPECT_EQ(dump_config(*again), dumped);
  EXPECT_EQ(again->dht.mode, DhtSettings::Mode::bootstrapper);
  EXPECT_EQ(again->dht.protocol_prefix, "/my/net");
  EXPECT_EQ(again->dht.beta, 7u);
  EXPECT_TRUE(again->dht.mdns);
  EXPECT_EQ(again->connmgr.grace, 1500ms);
  ASSERT_EQ(again->sync.archives.size(), 1u);
  EXPECT_EQ(again->sync.retention_age, 1h);
  EXPECT_EQ(again->sync.retention_messages, 123u);
  EXPECT_EQ(again->sync.durability, SyncSettings::Durability::power_loss);
  EXPECT_FALSE(again->sync.catch_up_on_start);
}

TEST(AgentConfigDhtSync, KeysAreListed) {
  auto keys = config_keys();
  for (const char* key : {"dht.mode",
                          "dht.protocol_prefix",
                          "dht.alpha",
                          "dht.k",
                          "dht.beta",
                          "dht.request_timeout",
                          "dht.query_timeout",
                          "dht.bootstrap_interval",
                          "dht.discovery_interval",
                          "dht.mdns",
                          "connmgr.low_water",
                          "connmgr.high_water",
                          "connmgr.grace",
                          "sync.archives",
                          "sync.gap_wait",
                          "sync.fetch_retry",
                          "sync.gap_give_up",
                          "sync.request_timeout",
                          "sync.retention_messages",
                          "sync.retention_age",
                          "sync.durability",
                          "sync.catch_up_on_start"})
    EXPECT_NE(std::find(keys.begin(), keys.end(), key), keys.end()) << key;
}

TEST(AgentConfigDhtSync, ErrorsNameTheKey) {
  EXPECT_EQ(error_of("dht:\n  mode: full\n"),
            "dht.mode: expected auto, client, server or bootstrapper, got 'full' (line 2)");
  EXPECT_EQ(error_of("dht:\n  modes: client\n"),
            "dht.modes: unknown key (did you mean dht.mode?) (line 2)");
  EXPECT_EQ(error_of("dht:\n  protocol_prefix: p2pmq\n"),
            "dht.protocol_prefix: must start with '/' (e.g. /p2pmq or /ipfs), got 'p2pmq' "
            "(line 2)");
  EXPECT_THAT(error_of("dht:\n  protocol_prefix: /p2pmq/\n"),
              HasSubstr("dht.protocol_prefix: must not end with '/'"));
  EXPECT_THAT(error_of("dht:\n  protocol_prefix: /\n"),
              HasSubstr("dht.protocol_prefix: must not end with '/'"));
  EXPECT_EQ(error_of("dht:\n  alpha: 0\n"), "dht.alpha: must be >= 1, got 0 (line 2)");
  EXPECT_THAT(error_of("dht:\n  k: 0\n  beta: 0\n"), HasSubstr("dht.k: must be >= 1, got 0"));
  EXPECT_THAT(error_of("dht:\n  beta: 0\n"), HasSubstr("dht.beta: must be >= 1, got 0"));
  EXPECT_EQ(error_of("dht:\n  k: 8\n  beta: 9\n"), "dht.beta: must be <= k (8), got 9 (line 3)");
  EXPECT_THAT(error_of("dht:\n  k: 8\n"), HasSubstr("dht.beta: must be <= k (8), got 20"));
  EXPECT_EQ(error_of("dht:\n  max_peers_per_ip_group_per_bucket: 4\n"),
            "dht.max_peers_per_ip_group_per_bucket: must be <= max_peers_per_ip_group (3), got 4 "
            "(line 2)");
  EXPECT_THAT(error_of("dht:\n  request_timeout: 0\n"),
              HasSubstr("dht.request_timeout: must be > 0, got 0ms"));
  EXPECT_THAT(error_of("dht:\n  query_timeout: 0\n"),
              HasSubstr("dht.query_timeout: must be > 0, got 0ms"));
  EXPECT_EQ(error_of("dht:\n  query_timeout: 5s\n"),
            "dht.query_timeout: must be >= request_timeout (10s), got 5s (line 2)");
  EXPECT_THAT(error_of("dht:\n  bootstrap_interval: 0\n"),
              HasSubstr("dht.bootstrap_interval: must be > 0"));
  EXPECT_THAT(error_of("dht:\n  discovery_interval: 0s\n"),
              HasSubstr("dht.discovery_interval: must be > 0"));
  EXPECT_THAT(error_of("dht:\n  mdns: sometimes\n"),
              HasSubstr("dht.mdns: expected true or false, got 'sometimes'"));
  EXPECT_THAT(error_of("dht:\n  alpha: [1]\n"),
              HasSubstr("dht.alpha: expected a whole number, got a list"));

  EXPECT_EQ(error_of("connmgr:\n  low_water: 100\n"),
            "connmgr.low_water: must be <= high_water (96), got 100 (line 2)");
  EXPECT_THAT(error_of("connmgr:\n  low_water: 0\n  high_water: 0\n"),
              HasSubstr("connmgr.high_water: must be >= 1, got 0 (line 3)"));
  EXPECT_THAT(error_of("connmgr:\n  grace: forever\n"),
              HasSubstr("connmgr.grace: expected a duration"));

  EXPECT_EQ(error_of("sync:\n  archives:\n    - /ip4/127.0.0.1/tcp/4001\n"),
            "sync.archives[0]: must end in /p2p/<peer id>, got '/ip4/127.0.0.1/tcp/4001' "
            "(line 3)");
  EXPECT_THAT(error_of("sync:\n  archives: [nowhere]\n"),
              HasSubstr("sync.archives[0]: expected a multiaddr"));
  EXPECT_EQ(error_of("sync:\n  gap_give_up: 2s\n"),
            "sync.gap_give_up: must be > gap_wait (2s), got 2s (line 2)");
  EXPECT_THAT(error_of("sync:\n  gap_wait: 1m\n"),
              HasSubstr("sync.gap_give_up: must be > gap_wait (1m), got 30s"));
  EXPECT_THAT(error_of("sync:\n  fetch_retry: 0\n"),
              HasSubstr("sync.fetch_retry: must be > 0, got 0ms (line 2)"));
  EXPECT_THAT(error_of("sync:\n  request_timeout: 0\n"),
              HasSubstr("sync.request_timeout: must be > 0"));
  EXPECT_EQ(error_of("sync:\n  retention_messages: 0\n"),
            "sync.retention_messages: must be >= 1, got 0 (line 2)");
  EXPECT_EQ(error_of("sync:\n  retention_age: 1500ms\n"),
            "sync.retention_age: must be a whole number of seconds, got '1500ms' (line 2)");
  EXPECT_THAT(error_of("sync:\n  durability: disk\n"),
              HasSubstr("sync.durability: expected process_crash or power_loss, got 'disk'"));
  EXPECT_THAT(error_of("sync:\n  catch_up_on_start: 1\n"),
              HasSubstr("sync.catch_up_on_start: expected true or false"));
  EXPECT_THAT(error_of("sync:\n  retention: 5\n"), HasSubstr("sync.retention: unknown key"));
}

TEST(AgentConfigDhtSync, Overrides) {
  AgentConfig c;
  ASSERT_TRUE(apply_override(c, "dht.mode=client"));
  ASSERT_TRUE(apply_override(c, "dht.protocol_prefix", "/ipfs"));
  ASSERT_TRUE(apply_override(c, "dht.mdns=true"));
  ASSERT_TRUE(apply_override(c, "dht.k=30"));
  ASSERT_TRUE(apply_override(c, "connmgr.high_water=200"));
  ASSERT_TRUE(apply_override(c, "connmgr.grace=1m"));
  ASSERT_TRUE(apply_override(c, std::string("sync.archives=/ip4/192.0.2.1/tcp/4001/p2p/") + kPeer));
  ASSERT_TRUE(apply_override(c, "sync.durability", "power_loss"));
  ASSERT_TRUE(apply_override(c, "sync.retention_age=60s"));
  ASSERT_TRUE(apply_override(c, "sync.catch_up_on_start=false"));
  ASSERT_TRUE(validate_config(c));
  EXPECT_EQ(c.dht.mode, DhtSettings::Mode::client);
  EXPECT_EQ(c.dht.protocol_prefix, "/ipfs");
  EXPECT_TRUE(c.dht.mdns);
  EXPECT_EQ(c.dht.k, 30u);
  EXPECT_EQ(c.connmgr.high_water, 200u);
  EXPECT_EQ(c.connmgr.grace, 1min);
  ASSERT_EQ(c.sync.archives.size(), 1u);
  EXPECT_EQ(c.sync.archives[0].to_string(), std::string("/ip4/192.0.2.1/tcp/4001/p2p/") + kPeer);
  EXPECT_EQ(c.sync.durability, SyncSettings::Durability::power_loss);
  EXPECT_EQ(c.sync.retention_age, 1min);
  EXPECT_FALSE(c.sync.catch_up_on_start);
  // Several archives: one value each; the list replaces the previous one.
  ASSERT_TRUE(apply_override(
      c, "sync.archives",
      std::vector<std::string>{std::string("/ip4/192.0.2.2/tcp/4001/p2p/") + kPeer,
                               std::string("/ip6/2001:db8::1/tcp/4001/p2p/") + kPeer}));
  EXPECT_EQ(c.sync.archives.size(), 2u);

  auto r = apply_override(c, "dht.mode=leech");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message,
            "dht.mode: expected auto, client, server or bootstrapper, got 'leech'");
  r = apply_override(c, "sync.archives=/ip4/1.2.3.4/tcp/1");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message,
            "sync.archives: must end in /p2p/<peer id>, got '/ip4/1.2.3.4/tcp/1'");
  r = apply_override(c, "conmgr.low_water=1");
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("conmgr: unknown key (did you mean connmgr?)"));
  // Consistency is checked once all overrides are in.
  ASSERT_TRUE(apply_override(c, "connmgr.low_water=500"));
  auto v = validate_config(c);
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().message, "connmgr.low_water: must be <= high_water (200), got 500");
}

// ---- Mapping onto the runtime configs ----

struct FakeYamux {
  size_t max_streams = 0;
};
struct FakeUpgrade {
  FakeYamux yamux;
  std::chrono::milliseconds timeout{};
};
struct FakeHostConfig {
  size_t max_inbound_connections = 0, max_outbound_connections = 0, max_pending_dials = 0,
         max_connections_per_peer = 0, max_negotiating_streams = 0;
  std::chrono::milliseconds dial_timeout{}, negotiation_timeout{};
  FakeUpgrade upgrade;
};
struct FakeApiConfig {
  std::string address, tls_cert_file, tls_key_file, tls_client_ca_file;
  size_t max_listen_streams = 0;
  size_t max_listen_buffer_bytes = 0, max_listen_total_bytes = 0, max_pending_publish_bytes = 0;
  bool allow_insecure_remote = false;
};
struct FakeValidationConfig {
  enum class Policy { ignore, accept };
  std::chrono::milliseconds timeout{};
  Policy no_validator_policy = Policy::ignore;
  size_t max_pending = 0, max_pending_bytes = 0, max_pending_per_peer = 0;
};

TEST(AgentConfigMapping, ApplyToRuntimeConfigs) {
  AgentConfig c =
      ok("limits:\n  max_streams_per_connection: 77\n  handshake_timeout: 3s\n"
         "  max_inbound_connections: 9\n"
         "grpc:\n  address: 127.0.0.1:1\n  tls_cert: c\n  tls_key: k\n"
         "validation:\n  timeout: 2s\n  no_validator_policy: accept\n");
  FakeHostConfig h;
  apply_limits(c.limits, h);
  EXPECT_EQ(h.upgrade.yamux.max_streams, 77u);
  EXPECT_EQ(h.upgrade.timeout, 3s);
  EXPECT_EQ(h.max_inbound_connections, 9u);
  EXPECT_EQ(h.dial_timeout, 10s);
  FakeApiConfig a;
  apply_grpc(c.grpc, a);
  EXPECT_EQ(a.address, "127.0.0.1:1");
  EXPECT_EQ(a.tls_key_file, "k");
  FakeValidationConfig v;
  apply_validation(c.validation, v);
  EXPECT_EQ(v.timeout, 2s);
  EXPECT_EQ(v.no_validator_policy, FakeValidationConfig::Policy::accept);
}

}  // namespace
}  // namespace p2pmq::agent

namespace p2pmq::agent {
namespace {

// Finding 21: a seed every agent shares makes peer selection predictable to an attacker.
TEST(AgentConfigRandomness, SeedIsUnsetByDefaultAndDrawnFromTheOs) {
  AgentConfig c = ok("");
  EXPECT_FALSE(c.gossip_seed);
  EXPECT_EQ(dump_config(c).find("seed:"), std::string::npos) << "unset keys are not dumped";
  std::set<uint64_t> seeds;
  for (int i = 0; i < 8; ++i) seeds.insert(c.router_config().seed);
  seeds.insert(c.rng_seed(1));
  seeds.insert(c.rng_seed(2));
  EXPECT_EQ(seeds.size(), 10u) << "every RNG gets its own seed from the OS";
  // The shipped config pins nothing either.
  auto shipped = load_config(kSource + "/config/agent.yaml");
  ASSERT_TRUE(shipped) << shipped.error().message;
  EXPECT_FALSE(shipped->gossip_seed);
}

TEST(AgentConfigRandomness, TestsPinTheSeed) {
  AgentConfig c = ok("gossip:\n  seed: 42\n");
  ASSERT_TRUE(c.gossip_seed);
  EXPECT_EQ(c.router_config().seed, 42u);
  EXPECT_EQ(c.router_config().seed, c.router_config().seed);
  EXPECT_EQ(c.rng_seed(1), c.rng_seed(1));
  EXPECT_NE(c.rng_seed(1), c.rng_seed(2));
  auto again = parse_config(dump_config(c));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->gossip_seed, 42u);
  ASSERT_TRUE(apply_override(c, "gossip.seed", "7"));
  EXPECT_EQ(c.gossip_seed, 7u);
  ASSERT_TRUE(apply_override(c, "gossip.seed", "~"));
  EXPECT_FALSE(c.gossip_seed);
}

}  // namespace
}  // namespace p2pmq::agent

namespace p2pmq::agent {
namespace {

TEST(AgentConfigArchiveTopics, NamesAndPatternsParseAndDumpRoundTrips) {
  AgentConfig c =
      ok("sync:\n  archive_topics: [orders, \"news.*\", \"*\"]\n"
         "  max_archive_topics: 50\n");
  EXPECT_EQ(c.sync.archive_topics, (std::vector<std::string>{"orders", "news.*", "*"}));
  EXPECT_EQ(c.sync.max_archive_topics, 50u);
  auto again = parse_config(dump_config(c));
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->sync.archive_topics, c.sync.archive_topics);
  // One entry may be written as a scalar; the default keeps nothing.
  EXPECT_EQ(ok("sync: {archive_topics: \"*\"}\n").sync.archive_topics,
            std::vector<std::string>{"*"});
  EXPECT_TRUE(AgentConfig{}.sync.archive_topics.empty());
  EXPECT_EQ(AgentConfig{}.sync.max_archive_topics, 1000u);
}

TEST(AgentConfigArchiveTopics, EmptyEntryAndZeroCapAreRefusedWithTheirPath) {
  EXPECT_THAT(error_of("sync:\n  archive_topics: [news, \"\"]\n"),
              HasSubstr("sync.archive_topics[1]"));
  EXPECT_THAT(error_of("sync:\n  max_archive_topics: 0\n"),
              HasSubstr("sync.max_archive_topics: must be >= 1"));
}

TEST(AgentConfigArchiveTopics, OverrideFromTheCommandLine) {
  AgentConfig c;
  ASSERT_TRUE(apply_override(c, "sync.archive_topics=news.*"));
  EXPECT_EQ(c.sync.archive_topics, std::vector<std::string>{"news.*"});
  ASSERT_TRUE(apply_override(c, "sync.max_archive_topics=2"));
  EXPECT_EQ(c.sync.max_archive_topics, 2u);
}

// metrics.*: off by default; an address is host:port (port 0 allowed); the bounds are >= 1.
TEST(AgentConfigMetrics, OffByDefaultAndEveryBoundNamedWhenRefused) {
  EXPECT_EQ(ok("").metrics.address, "");
  EXPECT_EQ(ok("metrics:\n  address: 127.0.0.1:0\n").metrics.address, "127.0.0.1:0");
  EXPECT_THAT(error_of("metrics:\n  address: localhost\n"), HasSubstr("metrics.address"));
  EXPECT_THAT(error_of("metrics:\n  address: unix:/tmp/m\n"), HasSubstr("metrics.address"));
  EXPECT_THAT(error_of("metrics:\n  max_connections: 0\n"), HasSubstr("metrics.max_connections"));
  EXPECT_THAT(error_of("metrics:\n  max_request_bytes: 0\n"),
              HasSubstr("metrics.max_request_bytes"));
  EXPECT_THAT(error_of("metrics:\n  request_timeout: 0s\n"), HasSubstr("metrics.request_timeout"));
  EXPECT_THAT(error_of("metrics:\n  sample_interval: 0s\n"), HasSubstr("metrics.sample_interval"));
}

}  // namespace
}  // namespace p2pmq::agent
