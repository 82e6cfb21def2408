//! rust-libp2p reference peer for p2pmq's interoperability tests. It mirrors the js
//! peer (../peer.mjs) and the go peer (../go/): the same subcommands, output lines
//! and stdin line protocols (../README.md), so a test can swap one kind for another.
//!
//!   rust-peer listen [--key FILE] [--listen MA] [--agent A]
//!   rust-peer ping MA [--count N] [--timeout S]
//!   rust-peer identify MA [--timeout S]
//!   rust-peer gossip [...]   the `p2pmq agent --stdio` gossip line protocol
//!   rust-peer dht [...]      its dht commands
//!   rust-peer transport-interop   libp2p/test-plans transport-interop, configured by its
//!                                 environment variables (transport_interop.rs)
//!
//! TCP + Noise + Yamux only; everything stays on loopback unless --listen says otherwise.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use libp2p::core::Endpoint;
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, MessageId, TopicHash};
use libp2p::identity::{ed25519, Keypair};
use libp2p::kad::{self, store::MemoryStore, GetClosestPeersOk, GetProvidersOk, QueryId, QueryResult, RecordKey};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{identify, noise, ping, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm};
use prometheus_client::registry::Registry;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::AsyncBufReadExt;
use tokio::time::Instant;

mod transport_interop;

const AGENT_VERSION: &str = "rust-libp2p/0.57.1 rust-peer";
const PROTOCOL_VERSION: &str = "ipfs/0.1.0";
const DEFAULT_LISTEN: &str = "/ip4/127.0.0.1/tcp/0";
const DHT_PROTOCOL: &str = "/p2pmq/kad/1.0.0";
const TOPIC_KEY_PREFIX: &str = "p2pmq/topic/";
// How long `connect` and --bootstrap dials may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(30);
// p2pmq's messages go up to 1 MiB (gossip.max_message_size 1048572) and its RPC frames
// a little over that; rust's default max_transmit_size (64 KiB) would drop them.
const MAX_TRANSMIT_SIZE: usize = (1 << 20) + (64 << 10);

const USAGE: &str = "usage:
  rust-peer listen [--key FILE] [--listen MA] [--agent A]
  rust-peer ping <multiaddr> [--count N] [--timeout S]
  rust-peer identify <multiaddr> [--timeout S]
  rust-peer gossip [--bootstrap MA]... [--topic T]... [--key FILE] [--listen MA]
                   [--D n] [--Dlo n] [--Dhi n] [--Dout n] [--Dscore n] [--Dlazy n]
                   [--heartbeat-ms n] [--flood-publish 0|1] [--msgid p2pmq|stock] [--px 0|1]
                   [--dht off|server|client] [--dht-protocol P] [--direct-peer MA/p2p/ID]...
  rust-peer dht [--mode server|client] [--bootstrap MA]... [--protocol P] [--key FILE]
                [--listen MA] [--query-timeout S]
  rust-peer transport-interop   (environment: transport security muxer is_dialer ip redis_addr
                                 test_timeout_seconds)";

// ---- options -----------------------------------------------------------------------

#[derive(Default)]
struct Opts {
    positional: Vec<String>,
    values: HashMap<String, String>,
    repeated: HashMap<String, Vec<String>>,
}

struct UsageError(String);

impl Opts {
    fn parse(args: &[String]) -> Result<Opts, UsageError> {
        let mut o = Opts::default();
        let mut i = 0;
        while i < args.len() {
            let a = &args[i];
            if let Some(name) = a.strip_prefix("--") {
                let v = args.get(i + 1).ok_or_else(|| UsageError(format!("option {a} needs a value")))?;
                if name == "bootstrap" || name == "topic" || name == "direct-peer" {
                    o.repeated.entry(name.to_string()).or_default().push(v.clone());
                } else {
                    o.values.insert(name.to_string(), v.clone());
                }
                i += 2;
            } else {
                o.positional.push(a.clone());
                i += 1;
            }
        }
        Ok(o)
    }

    fn str(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    fn list(&self, name: &str) -> Vec<String> {
        self.repeated.get(name).cloned().unwrap_or_default()
    }

    fn uint(&self, name: &str, default: u64) -> Result<u64, UsageError> {
        match self.str(name) {
            None => Ok(default),
            Some(s) => s
                .parse::<u64>()
                .map_err(|_| UsageError(format!("--{name} must be a non-negative integer, got {s}"))),
        }
    }

    fn usize_opt(&self, name: &str) -> Result<Option<usize>, UsageError> {
        if self.str(name).is_none() {
            return Ok(None);
        }
        Ok(Some(self.uint(name, 0)? as usize))
    }

    fn bool01(&self, name: &str, default: bool) -> Result<bool, UsageError> {
        match self.str(name) {
            None => Ok(default),
            Some("0") => Ok(false),
            Some("1") => Ok(true),
            Some(s) => Err(UsageError(format!("--{name} must be 0 or 1, got {s}"))),
        }
    }

    fn multiaddrs(&self, name: &str) -> Result<Vec<Multiaddr>, UsageError> {
        self.list(name)
            .iter()
            .map(|s| s.parse().map_err(|e| UsageError(format!("bad --{name} multiaddr {s}: {e}"))))
            .collect()
    }
}

// ---- output ------------------------------------------------------------------------

fn out(line: &str) {
    let mut so = std::io::stdout().lock();
    // a closed stdout (the test went away) must not panic the peer
    let _ = writeln!(so, "{line}");
    let _ = so.flush();
}

fn emit(v: Value) {
    out(&v.to_string());
}

fn emit_error(message: String) {
    emit(json!({"event": "error", "message": message}));
}

fn now_ms() -> f64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    (d.as_micros() as f64 / 1000.0 * 1000.0).round() / 1000.0
}

/// A seqno as JSON: a number up to 2^53 - 1, a decimal string above (rust's seqnos start
/// at the unix time in nanoseconds, so they are strings).
fn seqno_json(seqno: Option<u64>) -> Value {
    match seqno {
        None => Value::Null,
        Some(s) if s <= (1u64 << 53) - 1 => json!(s),
        Some(s) => json!(s.to_string()),
    }
}

// ---- keys --------------------------------------------------------------------------

/// Key file: the binary libp2p PrivateKey protobuf (p2pmq's format), or hex text of it,
/// of a 32-byte Ed25519 seed, or of a 64-byte raw Ed25519 key (seed || public key).
fn load_key(file: &str) -> Result<Keypair, String> {
    let raw = std::fs::read(file).map_err(|e| format!("key file {file}: {e}"))?;
    let text: String = String::from_utf8_lossy(&raw).chars().filter(|c| !c.is_whitespace()).collect();
    if !text.is_empty() && text.len() % 2 == 0 && text.chars().all(|c| c.is_ascii_hexdigit()) {
        let mut bytes = hex::decode(&text).map_err(|e| format!("key file {file}: {e}"))?;
        return match bytes.len() {
            32 => Keypair::ed25519_from_bytes(bytes).map_err(|e| format!("key file {file}: {e}")),
            64 => ed25519::Keypair::try_from_bytes(&mut bytes)
                .map(Keypair::from)
                .map_err(|e| format!("key file {file}: {e}")),
            _ => Keypair::from_protobuf_encoding(&bytes).map_err(|e| format!("key file {file}: {e}")),
        };
    }
    Keypair::from_protobuf_encoding(&raw)
        .map_err(|e| format!("key file {file}: neither hex nor a libp2p protobuf private key ({e})"))
}

// ---- message ids -------------------------------------------------------------------

fn uvarint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// p2pmq's id (src/pubsub/message.hpp, ../msgid.mjs): sha256(uvarint(len topic) || topic ||
/// from || seqno) with from and seqno set, else sha256(data).
fn p2pmq_id(topic: &str, from: Option<&PeerId>, seqno: Option<u64>, data: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    match (from, seqno) {
        (Some(from), Some(seqno)) => {
            let mut prefix = Vec::new();
            uvarint(topic.len() as u64, &mut prefix);
            h.update(&prefix);
            h.update(topic.as_bytes());
            h.update(from.to_bytes());
            h.update(seqno.to_be_bytes());
        }
        _ => h.update(data),
    }
    h.finalize().to_vec()
}

/// A topic's provider key (src/dht/key.hpp): the multihash of sha2-256("p2pmq/topic/" + T).
fn topic_key(topic: &str) -> RecordKey {
    let digest = Sha256::digest(format!("{TOPIC_KEY_PREFIX}{topic}").as_bytes());
    let mut mh = vec![0x12, 0x20];
    mh.extend_from_slice(&digest);
    RecordKey::new(&mh)
}

// ---- the node ----------------------------------------------------------------------

#[derive(NetworkBehaviour)]
struct Behaviour {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    gossipsub: Toggle<gossipsub::Behaviour>,
    kad: Toggle<kad::Behaviour<MemoryStore>>,
    // protocols added at run time (`handle PROTO`)
    stream: libp2p_stream::Behaviour,
}

struct NodeConfig {
    key: Keypair,
    agent: String,
    ping_interval: Duration,
    gossipsub: Option<gossipsub::Behaviour>,
    kad: Option<(kad::Config, kad::Mode)>,
}

fn build_swarm(cfg: NodeConfig) -> Result<Swarm<Behaviour>, String> {
    let NodeConfig { key, agent, ping_interval, gossipsub, kad } = cfg;
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .map_err(|e| format!("transport: {e}"))?
        .with_behaviour(|key| {
            let local = key.public().to_peer_id();
            Behaviour {
                identify: identify::Behaviour::new(
                    identify::Config::new(PROTOCOL_VERSION.to_string(), key.public()).with_agent_version(agent),
                ),
                ping: ping::Behaviour::new(ping::Config::new().with_interval(ping_interval)),
                gossipsub: Toggle::from(gossipsub),
                kad: Toggle::from(kad.map(|(config, mode)| {
                    let mut k = kad::Behaviour::with_config(local, MemoryStore::new(local), config);
                    k.set_mode(Some(mode));
                    k
                })),
                stream: libp2p_stream::Behaviour::new(),
            }
        })
        .map_err(|e| format!("behaviour: {e}"))?
        // test connections stay up however idle they are
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    Ok(swarm)
}

fn peer_of(ma: &Multiaddr) -> Option<PeerId> {
    ma.iter().find_map(|p| match p {
        Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

fn listen_line(addr: &Multiaddr, id: &PeerId) -> String {
    if peer_of(addr).is_some() {
        format!("listening {addr}")
    } else {
        format!("listening {addr}/p2p/{id}")
    }
}

fn dial(swarm: &mut Swarm<Behaviour>, ma: &Multiaddr) -> Result<ConnectionId, String> {
    let opts = DialOpts::unknown_peer_id().address(ma.clone()).build();
    let opts = match peer_of(ma) {
        Some(p) => DialOpts::peer_id(p).addresses(vec![ma.clone()]).build(),
        None => opts,
    };
    let id = opts.connection_id();
    swarm.dial(opts).map_err(|e| format!("dial {ma}: {e}"))?;
    Ok(id)
}

// ---- client subcommands: ping, identify ------------------------------------------------

async fn cmd_client(cmd: &str, opts: &Opts) -> Result<ExitCode, UsageError> {
    if opts.positional.len() != 1 {
        return Err(UsageError("exactly one <multiaddr> is required".into()));
    }
    let ma: Multiaddr = opts.positional[0]
        .parse()
        .map_err(|e| UsageError(format!("bad multiaddr {}: {e}", opts.positional[0])))?;
    let count = opts.uint("count", 1)?;
    let timeout = Duration::from_secs(opts.uint("timeout", 120)?);
    let mut swarm = match build_swarm(NodeConfig {
        key: Keypair::generate_ed25519(),
        agent: AGENT_VERSION.into(),
        ping_interval: Duration::from_millis(200),
        gossipsub: None,
        kad: None,
    }) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rust-peer: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let conn = match dial(&mut swarm, &ma) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rust-peer: {cmd} {ma} failed: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut pongs = 0u64;
    loop {
        tokio::select! {
            _ = &mut deadline => {
                eprintln!("rust-peer: {cmd} {ma}: timed out after {} s", timeout.as_secs());
                return Ok(ExitCode::from(3));
            }
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::OutgoingConnectionError { connection_id, error, .. } if connection_id == conn => {
                    eprintln!("rust-peer: {cmd} {ma} failed: {error}");
                    return Ok(ExitCode::from(1));
                }
                SwarmEvent::ConnectionClosed { connection_id, cause, .. } if connection_id == conn => {
                    eprintln!("rust-peer: {cmd} {ma} failed: connection closed ({cause:?})");
                    return Ok(ExitCode::from(1));
                }
                SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event { peer, connection, result })) if cmd == "ping" && connection == conn => {
                    match result {
                        Ok(rtt) => {
                            pongs += 1;
                            out(&format!("pong {pongs} from {peer} rtt={:.3} ms", rtt.as_secs_f64() * 1000.0));
                            if pongs >= count {
                                return Ok(ExitCode::SUCCESS);
                            }
                        }
                        Err(e) => {
                            eprintln!("rust-peer: ping {ma} failed: {e}");
                            return Ok(ExitCode::from(1));
                        }
                    }
                }
                SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { connection_id, peer_id, info })) if cmd == "identify" && connection_id == conn => {
                    emit(json!({
                        "peer": peer_id.to_string(),
                        "agentVersion": info.agent_version,
                        "protocolVersion": info.protocol_version,
                        "protocols": info.protocols.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                        "listenAddrs": info.listen_addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                        "observedAddr": info.observed_addr.to_string(),
                    }));
                    return Ok(ExitCode::SUCCESS);
                }
                SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Error { connection_id, error, .. })) if cmd == "identify" && connection_id == conn => {
                    eprintln!("rust-peer: identify {ma} failed: {error}");
                    return Ok(ExitCode::from(1));
                }
                _ => {}
            }
        }
    }
}

// ---- long-running nodes: listen, gossip, dht ---------------------------------------------

/// A command whose answer waits for the network; stdin is not read meanwhile, so answers
/// come in the order asked (as in peer.mjs).
enum Pending {
    Connect { conn: ConnectionId, line: String },
    FindPeer { qid: QueryId, target: PeerId },
    // first a lookup of the key's closest peers (whom the ADD_PROVIDER goes to: rust's
    // start_providing reports no count), then start_providing
    Provide { qid: QueryId, topic: String, closest: Option<usize> },
    FindTopic { qid: QueryId, topic: String, found: BTreeMap<PeerId, BTreeSet<String>> },
}

/// `pubn T N S R`: N messages of S bytes on T at R per second.
struct PubJob {
    topic: String,
    total: u64,
    sent: u64,
    size: usize,
    interval: Duration,
    next: Instant,
}

struct Node {
    swarm: Swarm<Behaviour>,
    local: PeerId,
    p2pmq_ids: bool,
    kad_protocol: Option<StreamProtocol>,
    // the seqno of our last publication, as gossipsub's id function saw it
    own_seqno: Arc<Mutex<Option<u64>>>,
    published: u64,
    received: u64,
    pending: Option<(Pending, Instant)>,
    bootstrap: HashMap<ConnectionId, Multiaddr>,
    bootstrap_peers: BTreeSet<PeerId>,
    joined: bool,
    jobs: Vec<PubJob>,
    // what identify (and the remote's pushes) told us each peer speaks
    protocols: HashMap<PeerId, Vec<String>>,
    // --direct-peer: gossipsub's explicit peers; rust-libp2p redials them by peer id only,
    // which needs an address no behaviour here has, so we dial these ourselves (as go's
    // WithDirectPeers does by itself)
    direct: Vec<Multiaddr>,
    // gossipsub's metrics (its `metrics` feature): the duplicates and IWANTs `stats` reports
    metrics: Registry,
}

fn gossipsub_behaviour(
    opts: &Opts,
    key: &Keypair,
    own_seqno: Arc<Mutex<Option<u64>>>,
    metrics: &mut Registry,
) -> Result<gossipsub::Behaviour, UsageError> {
    let msgid = opts.str("msgid").unwrap_or("p2pmq");
    if msgid != "p2pmq" && msgid != "stock" {
        return Err(UsageError(format!("--msgid must be p2pmq or stock, got {msgid}")));
    }
    let local = key.public().to_peer_id();
    let mut b = gossipsub::ConfigBuilder::default();
    b.max_transmit_size(MAX_TRANSMIT_SIZE)
        .validation_mode(gossipsub::ValidationMode::Strict)
        // p2pmq's first heartbeat comes after 100 ms, rust's default after 5 s
        .heartbeat_initial_delay(Duration::from_millis(100))
        // p2pmq's seen_ttl
        .duplicate_cache_time(Duration::from_secs(120))
        .prune_peers(16);
    if let Some(v) = opts.usize_opt("D")? {
        b.mesh_n(v);
    }
    if let Some(v) = opts.usize_opt("Dlo")? {
        b.mesh_n_low(v);
    }
    if let Some(v) = opts.usize_opt("Dhi")? {
        b.mesh_n_high(v);
    }
    if let Some(v) = opts.usize_opt("Dout")? {
        b.mesh_outbound_min(v);
    }
    if let Some(v) = opts.usize_opt("Dscore")? {
        b.retain_scores(v);
    }
    if let Some(v) = opts.usize_opt("Dlazy")? {
        b.gossip_lazy(v);
    }
    if let Some(v) = opts.usize_opt("heartbeat-ms")? {
        b.heartbeat_interval(Duration::from_millis(v.max(1) as u64));
    }
    b.flood_publish(opts.bool01("flood-publish", true)?);
    if opts.bool01("px", false)? {
        b.do_px();
    }
    let p2pmq = msgid == "p2pmq";
    b.message_id_fn(move |m: &gossipsub::Message| {
        if m.source == Some(local) {
            *own_seqno.lock().unwrap() = m.sequence_number;
        }
        if p2pmq {
            MessageId::new(&p2pmq_id(m.topic.as_str(), m.source.as_ref(), m.sequence_number, &m.data))
        } else {
            // rust's default: base58(from) || decimal seqno
            let from = m.source.map(|p| p.to_base58()).unwrap_or_default();
            MessageId::from(format!("{from}{}", m.sequence_number.unwrap_or_default()))
        }
    });
    let config = b.build().map_err(|e| UsageError(format!("gossipsub config: {e}")))?;
    let mut gs = gossipsub::Behaviour::new(MessageAuthenticity::Signed(key.clone()), config)
        .map_err(|e| UsageError(format!("gossipsub: {e}")))?
        .with_metrics(metrics, gossipsub::MetricsConfig::default());
    gs.with_peer_score(p2pmq_score_params(), p2pmq_score_thresholds())
        .map_err(|e| UsageError(format!("gossipsub peer score: {e}")))?;
    Ok(gs)
}

/// p2pmq's default score parameters (src/pubsub/score.hpp, docs/configuration.md): no topic
/// is scored; P6 and P7 as p2pmq sets them, loopback whitelisted from IP colocation.
fn p2pmq_score_params() -> gossipsub::PeerScoreParams {
    gossipsub::PeerScoreParams {
        topics: HashMap::new(),
        topic_score_cap: 0.0,
        app_specific_weight: 1.0,
        ip_colocation_factor_weight: -10.0,
        ip_colocation_factor_threshold: 5.0,
        ip_colocation_factor_whitelist: ["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()].into_iter().collect(),
        behaviour_penalty_weight: -10.0,
        behaviour_penalty_threshold: 6.0,
        behaviour_penalty_decay: 0.9923541,
        decay_interval: Duration::from_secs(1),
        decay_to_zero: 0.01,
        retain_score: Duration::from_secs(3600),
        // rust only (slow peers, a full send queue): p2pmq has no such term
        slow_peer_weight: 0.0,
        slow_peer_threshold: 0.0,
        slow_peer_decay: 0.2,
    }
}

fn p2pmq_score_thresholds() -> gossipsub::PeerScoreThresholds {
    gossipsub::PeerScoreThresholds {
        gossip_threshold: -10.0,
        publish_threshold: -50.0,
        graylist_threshold: -80.0,
        accept_px_threshold: 100.0,
        opportunistic_graft_threshold: 1.0,
    }
}

fn kad_proto(protocol: &str) -> Result<StreamProtocol, UsageError> {
    StreamProtocol::try_from_owned(protocol.to_string()).map_err(|e| UsageError(format!("bad DHT protocol {protocol}: {e}")))
}

fn kad_config(protocol: &str, query_timeout: Duration) -> Result<kad::Config, UsageError> {
    let mut c = kad::Config::new(kad_proto(protocol)?);
    c.set_query_timeout(query_timeout);
    Ok(c)
}

fn kad_mode(s: &str) -> Result<kad::Mode, UsageError> {
    match s {
        "server" => Ok(kad::Mode::Server),
        "client" => Ok(kad::Mode::Client),
        _ => Err(UsageError(format!("DHT mode must be server or client, got {s}"))),
    }
}

async fn cmd_node(cmd: &str, opts: &Opts) -> Result<ExitCode, UsageError> {
    if !opts.positional.is_empty() {
        return Err(UsageError(format!("{cmd} takes no positional arguments, got {}", opts.positional.join(" "))));
    }
    let key = match opts.str("key") {
        Some(f) => load_key(f).map_err(UsageError)?,
        None => Keypair::generate_ed25519(),
    };
    let listen: Multiaddr = opts
        .str("listen")
        .unwrap_or(DEFAULT_LISTEN)
        .parse()
        .map_err(|e| UsageError(format!("bad --listen multiaddr: {e}")))?;
    let bootstrap = opts.multiaddrs("bootstrap")?;
    let topics = opts.list("topic");
    let query_timeout = Duration::from_secs(opts.uint("query-timeout", 30)?);
    let own_seqno = Arc::new(Mutex::new(None));
    let mut metrics = Registry::default();
    let direct = opts.multiaddrs("direct-peer")?;
    let mut direct_ids = Vec::new();
    for ma in &direct {
        direct_ids.push(peer_of(ma).ok_or_else(|| UsageError(format!("--direct-peer {ma}: needs /p2p/ID")))?);
    }

    let mut gossip = None;
    let mut kad = None;
    let mut p2pmq_ids = true;
    match cmd {
        "gossip" => {
            let mut gs = gossipsub_behaviour(opts, &key, own_seqno.clone(), &mut metrics)?;
            for p in &direct_ids {
                gs.add_explicit_peer(p);
            }
            gossip = Some(gs);
            p2pmq_ids = opts.str("msgid").unwrap_or("p2pmq") == "p2pmq";
            match opts.str("dht").unwrap_or("off") {
                "off" => {}
                m => {
                    let proto = opts.str("dht-protocol").unwrap_or(DHT_PROTOCOL);
                    kad = Some((kad_config(proto, query_timeout)?, kad_mode(m)?, kad_proto(proto)?));
                }
            }
        }
        "dht" => {
            let proto = opts.str("protocol").unwrap_or(DHT_PROTOCOL);
            kad = Some((kad_config(proto, query_timeout)?, kad_mode(opts.str("mode").unwrap_or("server"))?, kad_proto(proto)?));
        }
        _ => {}
    }
    let kad_protocol = kad.as_ref().map(|(_, _, p)| p.clone());
    let kad = kad.map(|(c, m, _)| (c, m));
    let swarm = build_swarm(NodeConfig {
        key: key.clone(),
        agent: opts.str("agent").unwrap_or(AGENT_VERSION).to_string(),
        ping_interval: Duration::from_secs(15),
        gossipsub: gossip,
        kad,
    })
    .map_err(UsageError)?;
    let mut node = Node {
        local: key.public().to_peer_id(),
        swarm,
        p2pmq_ids,
        kad_protocol,
        own_seqno,
        published: 0,
        received: 0,
        pending: None,
        bootstrap: HashMap::new(),
        bootstrap_peers: BTreeSet::new(),
        joined: false,
        jobs: Vec::new(),
        protocols: HashMap::new(),
        direct,
        metrics,
    };
    node.swarm.listen_on(listen.clone()).map_err(|e| UsageError(format!("listen on {listen}: {e}")))?;
    Ok(node.run(cmd, &topics, &bootstrap).await)
}

impl Node {
    fn gs(&mut self) -> Result<&mut gossipsub::Behaviour, String> {
        self.swarm.behaviour_mut().gossipsub.as_mut().ok_or_else(|| "gossipsub is off".to_string())
    }

    fn kad(&mut self) -> Result<&mut kad::Behaviour<MemoryStore>, String> {
        self.swarm
            .behaviour_mut()
            .kad
            .as_mut()
            .ok_or_else(|| "the DHT is off (--dht server|client)".to_string())
    }

    async fn run(&mut self, cmd: &str, topics: &[String], bootstrap: &[Multiaddr]) -> ExitCode {
        let interactive = cmd != "listen";
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("rust-peer: SIGTERM handler: {e}");
                return ExitCode::from(1);
            }
        };
        let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<Option<String>>();
        let mut listening = false;
        let mut stdin_open = interactive;
        loop {
            let next_job = self.jobs.iter().map(|j| j.next).min();
            let pending_deadline = self.pending.as_ref().map(|(_, d)| *d);
            tokio::select! {
                _ = term.recv() => return ExitCode::SUCCESS,
                _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
                ev = self.swarm.select_next_some() => {
                    if let SwarmEvent::NewListenAddr { address, .. } = &ev {
                        // providers advertise their external addresses: on a test's loopback
                        // network the listen addresses are those
                        self.swarm.add_external_address(address.clone());
                        out(&listen_line(address, &self.local));
                        if !listening {
                            listening = true;
                            self.start(topics, bootstrap);
                            if interactive {
                                spawn_stdin(tx.clone());
                            }
                        }
                    }
                    self.on_event(ev);
                }
                Some(line) = lines.recv(), if stdin_open && self.pending.is_none() => match line {
                    None => return ExitCode::SUCCESS, // EOF
                    Some(line) => self.on_line(line.trim_end_matches('\r')),
                },
                _ = tokio::time::sleep_until(next_job.unwrap_or_else(Instant::now)), if next_job.is_some() => self.run_jobs(),
                _ = tokio::time::sleep_until(pending_deadline.unwrap_or_else(Instant::now)), if pending_deadline.is_some() => {
                    if let Some((p, _)) = self.pending.take() {
                        let what = match p {
                            Pending::Connect { line, .. } => line,
                            _ => "query".into(),
                        };
                        emit_error(format!("{what}: timed out"));
                    }
                }
            }
            if !stdin_open {
                stdin_open = interactive && listening;
            }
        }
    }

    fn start(&mut self, topics: &[String], bootstrap: &[Multiaddr]) {
        for t in topics {
            if let Ok(gs) = self.gs() {
                if let Err(e) = gs.subscribe(&IdentTopic::new(t.clone())) {
                    emit_error(format!("subscribe {t}: {e}"));
                }
            }
        }
        for ma in self.direct.clone() {
            if let Err(e) = dial(&mut self.swarm, &ma) {
                emit_error(format!("direct peer {ma}: {e}"));
            }
        }
        for ma in bootstrap {
            if let Some(p) = peer_of(ma) {
                self.bootstrap_peers.insert(p);
            }
            match dial(&mut self.swarm, ma) {
                Ok(c) => {
                    self.bootstrap.insert(c, ma.clone());
                }
                Err(e) => emit_error(format!("bootstrap {ma}: {e}")),
            }
        }
    }

    fn on_event(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match ev {
            SwarmEvent::ConnectionEstablished { connection_id, peer_id, .. } => {
                self.bootstrap.remove(&connection_id);
                if let Some((Pending::Connect { conn, .. }, _)) = &self.pending {
                    if *conn == connection_id {
                        self.pending = None;
                        emit(json!({"event": "connected", "peer": peer_id.to_string()}));
                    }
                }
            }
            SwarmEvent::OutgoingConnectionError { connection_id, error, .. } => {
                if let Some(ma) = self.bootstrap.remove(&connection_id) {
                    emit_error(format!("bootstrap {ma}: {error}"));
                }
                if let Some((Pending::Connect { conn, line }, _)) = &self.pending {
                    if *conn == connection_id {
                        emit_error(format!("{line}: {error}"));
                        self.pending = None;
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
                self.protocols.insert(peer_id, info.protocols.iter().map(|p| p.to_string()).collect());
                // rust's kad takes a peer into its routing table only with an address: those
                // the peer listens on, when it serves our DHT protocol (identify says so)
                if let Some(proto) = self.kad_protocol.clone() {
                    if info.protocols.contains(&proto) {
                        let addrs = info.listen_addrs.clone();
                        if let Ok(k) = self.kad() {
                            for a in addrs {
                                k.add_address(&peer_id, a);
                            }
                        }
                        self.maybe_join(&peer_id);
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message { message, .. })) => {
                self.on_message(message);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(ev)) => self.on_kad(ev),
            _ => {}
        }
    }

    /// The Kademlia join: once a bootstrap peer is in the routing table, look up our own id.
    fn maybe_join(&mut self, peer: &PeerId) {
        if self.joined || !self.bootstrap_peers.contains(peer) {
            return;
        }
        self.joined = true;
        let local = self.local;
        if let Ok(k) = self.kad() {
            k.get_closest_peers(local);
        }
    }

    fn on_message(&mut self, m: gossipsub::Message) {
        if m.source == Some(self.local) {
            return;
        }
        self.received += 1;
        let id = p2pmq_id(m.topic.as_str(), m.source.as_ref(), m.sequence_number, &m.data);
        emit(json!({
            "event": "message",
            "topic": m.topic.as_str(),
            "from": m.source.map(|p| p.to_string()),
            "seqno": seqno_json(m.sequence_number),
            "data": String::from_utf8_lossy(&m.data),
            "id": hex::encode(id),
            "recv_ms": now_ms(),
        }));
    }

    fn on_kad(&mut self, ev: kad::Event) {
        let kad::Event::OutboundQueryProgressed { id, result, step, .. } = ev else {
            return;
        };
        let ours = match &self.pending {
            Some((Pending::FindPeer { qid, .. }, _))
            | Some((Pending::Provide { qid, .. }, _))
            | Some((Pending::FindTopic { qid, .. }, _)) => *qid == id,
            _ => false,
        };
        if !ours {
            return;
        }
        match result {
            QueryResult::GetClosestPeers(r) => {
                let peers = match r {
                    Ok(GetClosestPeersOk { peers, .. }) => peers,
                    Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                };
                if matches!(self.pending, Some((Pending::Provide { .. }, _))) {
                    let Some((Pending::Provide { topic, .. }, deadline)) = self.pending.take() else { return };
                    let key = topic_key(&topic);
                    match self.kad().and_then(|k| k.start_providing(key).map_err(|e| e.to_string())) {
                        Ok(qid) => {
                            let closest = Some(peers.len());
                            self.pending = Some((Pending::Provide { qid, topic, closest }, deadline));
                        }
                        Err(e) => emit_error(format!("dht-provide-topic {topic}: {e}")),
                    }
                    return;
                }
                let Some((Pending::FindPeer { target, .. }, _)) = self.pending.take() else { return };
                let hit = peers.into_iter().find(|p| p.peer_id == target);
                emit(json!({
                    "event": "dht-peer",
                    "peer": target.to_string(),
                    "found": hit.is_some(),
                    "addrs": hit.map(|p| p.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>()).unwrap_or_default(),
                }));
            }
            QueryResult::StartProviding(r) => {
                let Some((Pending::Provide { topic, closest, .. }, _)) = self.pending.take() else { return };
                let peers = closest.unwrap_or(0);
                match r {
                    Ok(_) => emit(json!({"event": "dht-provided", "topic": topic, "peers": peers})),
                    Err(e) => emit_error(format!("dht-provide-topic {topic}: {e}")),
                }
            }
            QueryResult::GetProviders(r) => {
                if let Ok(GetProvidersOk::FoundProviders { providers, .. }) = r {
                    let addrs: Vec<(PeerId, Vec<String>)> =
                        providers.into_iter().map(|p| (p, self.provider_addrs(&p))).collect();
                    if let Some((Pending::FindTopic { found, .. }, _)) = self.pending.as_mut() {
                        for (p, a) in addrs {
                            found.entry(p).or_default().extend(a);
                        }
                    }
                }
                if step.last {
                    if let Some((Pending::FindTopic { topic, found, .. }, _)) = self.pending.take() {
                        emit_providers(&topic, &found);
                    }
                }
            }
            _ => {}
        }
    }

    /// A provider's addresses: ours when it is us; else those the GET_PROVIDERS answers
    /// carried, which rust's kad keeps with the running query and hands out only to a dial
    /// (its handle_pending_outbound_connection, which has no side effects).
    fn provider_addrs(&mut self, p: &PeerId) -> Vec<String> {
        if *p == self.local {
            return self.swarm.listeners().map(|a| a.to_string()).collect();
        }
        let Ok(k) = self.kad() else { return vec![] };
        k.handle_pending_outbound_connection(ConnectionId::new_unchecked(0), Some(*p), &[], Endpoint::Dialer)
            .unwrap_or_default()
            .iter()
            .map(|a| a.to_string())
            .collect()
    }

    fn on_line(&mut self, line: &str) {
        if let Err(e) = self.handle(line) {
            emit_error(format!("{line}: {e}"));
        }
    }

    fn handle(&mut self, line: &str) -> Result<(), String> {
        let (verb, rest) = match line.split_once(' ') {
            Some((v, r)) => (v, r),
            None => (line, ""),
        };
        if verb.is_empty() {
            return Ok(());
        }
        let arg = rest.trim();
        let deadline = Instant::now() + DIAL_TIMEOUT;
        match verb {
            "sub" | "unsub" => {
                if arg.is_empty() {
                    return Err(format!("usage: {verb} TOPIC"));
                }
                let t = IdentTopic::new(arg);
                let gs = self.gs()?;
                if verb == "sub" {
                    gs.subscribe(&t).map_err(|e| e.to_string())?;
                    emit(json!({"event": "subscribed", "topic": arg}));
                } else {
                    let _ = gs.unsubscribe(&t);
                    emit(json!({"event": "unsubscribed", "topic": arg}));
                }
            }
            "pub" => {
                // data: the rest of the line after `pub TOPIC ` (may be empty)
                let (topic, data) = match rest.split_once(' ') {
                    Some((t, d)) => (t, d),
                    None => (rest, ""),
                };
                if topic.is_empty() {
                    return Err("usage: pub TOPIC DATA".into());
                }
                let (seqno, id) = self.publish(topic, data.as_bytes().to_vec())?;
                emit(json!({"event": "published", "topic": topic, "seqno": seqno_json(seqno), "id": id}));
            }
            "pubn" => {
                let f: Vec<&str> = arg.split_whitespace().collect();
                let usage = || "usage: pubn TOPIC COUNT SIZE RATE".to_string();
                if f.len() != 4 {
                    return Err(usage());
                }
                let total: u64 = f[1].parse().map_err(|_| usage())?;
                let size: usize = f[2].parse().map_err(|_| usage())?;
                let rate: f64 = f[3].parse().map_err(|_| usage())?;
                if !(rate >= 0.0) {
                    return Err(usage());
                }
                self.gs()?;
                let interval = if rate > 0.0 { Duration::from_secs_f64(1.0 / rate) } else { Duration::ZERO };
                self.jobs.push(PubJob { topic: f[0].to_string(), total, sent: 0, size, interval, next: Instant::now() });
            }
            "connect" => {
                let ma: Multiaddr = arg.parse().map_err(|e| format!("bad multiaddr {arg}: {e}"))?;
                let conn = dial(&mut self.swarm, &ma)?;
                self.pending = Some((Pending::Connect { conn, line: line.to_string() }, deadline));
            }
            "peers" => {
                let peers: Vec<String> = self.gs()?.all_peers().map(|(p, _)| p.to_string()).collect();
                emit(json!({"event": "peers", "peers": peers}));
            }
            "mesh" => {
                if arg.is_empty() {
                    return Err("usage: mesh TOPIC".into());
                }
                let h = TopicHash::from_raw(arg);
                let peers: Vec<String> = self.gs()?.mesh_peers(&h).map(|p| p.to_string()).collect();
                emit(json!({"event": "mesh", "topic": arg, "peers": peers}));
            }
            "scores" => {
                let gs = self.gs()?;
                let peers: Vec<PeerId> = gs.all_peers().map(|(p, _)| *p).collect();
                let scores: serde_json::Map<String, Value> =
                    peers.iter().map(|p| (p.to_string(), json!(gs.peer_score(p).unwrap_or(0.0)))).collect();
                emit(json!({"event": "scores", "scores": scores}));
            }
            "stats" => {
                let mut ev = stats_event(self.published, self.received);
                if self.gs().is_ok() {
                    let (duplicates, iwant) = gossip_counts(&self.metrics);
                    ev["duplicates"] = json!(duplicates);
                    ev["iwant_asked"] = json!(iwant);
                }
                emit(ev);
            }
            "handle" => {
                // a handler that closes each stream: the protocol list changes, so identify
                // pushes it to every connected peer (rust-libp2p pushes on a local change
                // once the connection's first identify exchange is done)
                let proto = StreamProtocol::try_from_owned(arg.to_string()).map_err(|e| format!("usage: handle PROTOCOL ({e})"))?;
                let mut incoming = self
                    .swarm
                    .behaviour()
                    .stream
                    .new_control()
                    .accept(proto)
                    .map_err(|e| e.to_string())?;
                tokio::spawn(async move { while incoming.next().await.is_some() {} });
                emit(json!({"event": "handled", "protocol": arg}));
            }
            "protocols" => {
                let peer: PeerId = arg.parse().map_err(|e| format!("bad peer id {arg:?}: {e}"))?;
                let list = self.protocols.get(&peer).cloned().unwrap_or_default();
                emit(json!({"event": "protocols", "peer": peer.to_string(), "protocols": list}));
            }
            "dht-table" => {
                let k = self.kad()?;
                let mut peers = Vec::new();
                for b in k.kbuckets() {
                    for e in b.iter() {
                        peers.push(e.node.key.preimage().to_string());
                    }
                }
                emit(json!({"event": "dht-table", "peers": peers}));
            }
            "dht-find-peer" => {
                let target: PeerId = arg.parse().map_err(|e| format!("bad peer id {arg:?}: {e}"))?;
                let qid = self.kad()?.get_closest_peers(target);
                self.pending = Some((Pending::FindPeer { qid, target }, deadline + DIAL_TIMEOUT));
            }
            "dht-provide-topic" => {
                if arg.is_empty() {
                    return Err("usage: dht-provide-topic TOPIC".into());
                }
                let key = topic_key(arg);
                let qid = self.kad()?.get_closest_peers(key.to_vec());
                let p = Pending::Provide { qid, topic: arg.to_string(), closest: None };
                self.pending = Some((p, deadline + 3 * DIAL_TIMEOUT));
            }
            "dht-find-topic" => {
                if arg.is_empty() {
                    return Err("usage: dht-find-topic TOPIC".into());
                }
                let qid = self.kad()?.get_providers(topic_key(arg));
                let p = Pending::FindTopic { qid, topic: arg.to_string(), found: BTreeMap::new() };
                self.pending = Some((p, deadline + DIAL_TIMEOUT));
            }
            _ => {
                return Err(format!(
                    "unknown command {verb:?} (sub, unsub, pub, pubn, connect, peers, mesh, scores, stats, \
                     handle, protocols, dht-table, dht-find-peer, dht-provide-topic, dht-find-topic)"
                ))
            }
        }
        Ok(())
    }

    /// Publish; the seqno gossipsub gave it and its p2pmq id (null with --msgid stock).
    fn publish(&mut self, topic: &str, data: Vec<u8>) -> Result<(Option<u64>, Option<String>), String> {
        *self.own_seqno.lock().unwrap() = None;
        let gs = self.gs()?;
        gs.publish(IdentTopic::new(topic), data.clone()).map_err(|e| format!("publish: {e}"))?;
        self.published += 1;
        let seqno = *self.own_seqno.lock().unwrap();
        let local = self.local;
        let id = self.p2pmq_ids.then(|| hex::encode(p2pmq_id(topic, Some(&local), seqno, &data)));
        Ok((seqno, id))
    }

    fn run_jobs(&mut self) {
        let now = Instant::now();
        let mut i = 0;
        while i < self.jobs.len() {
            if self.jobs[i].next <= now && self.jobs[i].sent < self.jobs[i].total {
                let j = &mut self.jobs[i];
                j.sent += 1;
                j.next += j.interval;
                let (topic, size, n) = (j.topic.clone(), j.size, j.sent);
                let mut data = format!("{:.3} ", now_ms()).into_bytes();
                if data.len() < size {
                    data.resize(size, b'x');
                }
                if let Err(e) = self.publish(&topic, data) {
                    emit_error(format!("pubn {topic}: message {n}: {e}"));
                }
            }
            let j = &self.jobs[i];
            if j.sent >= j.total {
                emit(json!({"event": "pubn-done", "topic": j.topic, "count": j.total}));
                self.jobs.remove(i);
            } else {
                i += 1;
            }
        }
    }
}

fn emit_providers(topic: &str, found: &BTreeMap<PeerId, BTreeSet<String>>) {
    let providers: Vec<Value> = found
        .iter()
        .map(|(p, addrs)| json!({"peer": p.to_string(), "addrs": addrs.iter().collect::<Vec<_>>()}))
        .collect();
    emit(json!({"event": "dht-providers", "topic": topic, "providers": providers}));
}

fn stats_event(published: u64, received: u64) -> Value {
    // SAFETY: getrusage only writes the struct it is given
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let ms = |t: libc::timeval| t.tv_sec as i64 * 1000 + t.tv_usec as i64 / 1000;
    let page_kb = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64 / 1024;
    let rss_kb = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        .map(|pages| pages * page_kb)
        .unwrap_or(0);
    json!({
        "event": "stats",
        "cpu_ms": ms(ru.ru_utime) + ms(ru.ru_stime),
        "rss_kb": rss_kb,
        "max_rss_kb": ru.ru_maxrss,
        "published": published,
        "received": received,
    })
}

/// From gossipsub's metrics: messages received more than once (every message received, before
/// the duplicate filter, minus those after it; the go and js peers' `duplicates`), and message
/// ids asked for by IWANT. rust-libp2p counts no IHAVE it sends (no metric, no event), so
/// `ihave_sent` is not reported.
fn gossip_counts(metrics: &Registry) -> (u64, u64) {
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, metrics).is_err() {
        return (0, 0);
    }
    let (mut unfiltered, mut filtered, mut iwant) = (0u64, 0u64, 0u64);
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap_or("");
        let value: u64 = line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0);
        match name {
            "topic_msg_recv_counts_unfiltered_total" => unfiltered += value,
            "topic_msg_recv_counts_total" => filtered += value,
            "topic_iwant_msgs_total" => iwant += value,
            _ => {}
        }
    }
    (unfiltered.saturating_sub(filtered), iwant)
}

/// stdin lines into the event loop; None at EOF.
fn spawn_stdin(tx: tokio::sync::mpsc::UnboundedSender<Option<String>>) {
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        loop {
            match lines.next_line().await {
                Ok(Some(l)) => {
                    if tx.send(Some(l)).is_err() {
                        return;
                    }
                }
                _ => {
                    let _ = tx.send(None);
                    return;
                }
            }
        }
    });
}

async fn real_main() -> Result<ExitCode, UsageError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else { return Err(UsageError("missing subcommand".into())) };
    let opts = Opts::parse(&args[1..])?;
    match cmd.as_str() {
        "listen" | "gossip" | "dht" => cmd_node(cmd, &opts).await,
        "ping" | "identify" => cmd_client(cmd, &opts).await,
        "transport-interop" => Ok(transport_interop::cmd_transport_interop().await),
        _ => Err(UsageError(format!("unknown subcommand {cmd}"))),
    }
}

fn main() -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rust-peer: tokio: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(real_main());
    // the stdin reader blocks in a read(2) that nothing interrupts: do not wait for it
    rt.shutdown_background();
    match result {
        Ok(code) => code,
        Err(UsageError(msg)) => {
            eprintln!("rust-peer: {msg}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
