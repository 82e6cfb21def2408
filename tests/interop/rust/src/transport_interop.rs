//! `rust-peer transport-interop`: the ping test of libp2p/test-plans transport-interop,
//! configured by the framework's environment variables (transport, security, muxer,
//! is_dialer, ip, redis_addr, test_timeout_seconds). tcp/noise/yamux only. The two redis
//! commands it needs (RPUSH, BLPOP) go over a minimal blocking RESP client: no redis crate.
//! Blocking is fine here: redis is only spoken while the swarm has nothing to do.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::core::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use libp2p::{ping, Multiaddr};

use super::{build_swarm, dial, out, BehaviourEvent, NodeConfig, AGENT_VERSION};
use libp2p::identity::Keypair;

const LISTENER_ADDR_KEY: &str = "listenerAddr";
// How long the listener waits for a non-loopback address when it listens on 0.0.0.0.
const ADDRESS_SETTLE: Duration = Duration::from_millis(300);

// ---- a minimal RESP (redis) client ---------------------------------------------------

enum Reply {
    Int,
    Str(Option<String>),
    Array(Option<Vec<Reply>>),
}

struct Redis {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Redis {
    /// Retries until `deadline`: the framework starts redis and both peers at once.
    fn connect(addr: &str, deadline: Instant) -> Result<Redis, String> {
        loop {
            match TcpStream::connect(addr) {
                Ok(stream) => {
                    let reader = BufReader::new(stream.try_clone().map_err(|e| format!("redis: {e}"))?);
                    return Ok(Redis { stream, reader });
                }
                Err(e) if Instant::now() + Duration::from_millis(100) >= deadline => {
                    return Err(format!("redis at {addr} not reachable: {e}"))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    fn command(&mut self, args: &[&str], timeout: Duration) -> Result<Reply, String> {
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        let io = |e: std::io::Error| format!("redis: {e}");
        self.stream.set_read_timeout(Some(timeout)).map_err(io)?;
        self.stream.write_all(req.as_bytes()).map_err(io)?;
        self.reply()
    }

    fn line(&mut self) -> Result<String, String> {
        let mut l = String::new();
        self.reader.read_line(&mut l).map_err(|e| format!("redis: {e}"))?;
        match l.strip_suffix("\r\n") {
            Some(body) if !body.is_empty() => Ok(body.to_string()),
            _ => Err(format!("redis: malformed line {l:?}")),
        }
    }

    fn reply(&mut self) -> Result<Reply, String> {
        let l = self.line()?;
        let (kind, body) = l.split_at(1);
        let len = || -> Result<i64, String> {
            let n: i64 = body.parse().map_err(|_| format!("redis: bad length {body:?}"))?;
            if !(-1..=1 << 20).contains(&n) {
                return Err(format!("redis: bad length {body:?}"));
            }
            Ok(n)
        };
        match kind {
            "+" => Ok(Reply::Str(Some(body.to_string()))),
            "-" => Err(format!("redis: {body}")),
            ":" => Ok(Reply::Int),
            "$" => match len()? {
                -1 => Ok(Reply::Str(None)),
                n => {
                    let mut buf = vec![0u8; n as usize + 2];
                    self.reader.read_exact(&mut buf).map_err(|e| format!("redis: {e}"))?;
                    buf.truncate(n as usize);
                    Ok(Reply::Str(Some(String::from_utf8_lossy(&buf).into_owned())))
                }
            },
            "*" => match len()? {
                -1 => Ok(Reply::Array(None)),
                n => (0..n).map(|_| self.reply()).collect::<Result<Vec<_>, _>>().map(|v| Reply::Array(Some(v))),
            },
            _ => Err(format!("redis: unknown reply {l:?}")),
        }
    }
}

// ---- the test ----------------------------------------------------------------------

struct Config {
    dialer: bool,
    ip: String,
    redis_addr: String,
    timeout: Duration,
}

fn config_from_env() -> Result<Config, String> {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    for (name, want) in [("transport", "tcp"), ("security", "noise"), ("muxer", "yamux")] {
        let got = var(name);
        if got != want {
            return Err(format!("{name}={got:?} is not supported (rust-peer supports {name}={want} only)"));
        }
    }
    let dialer = match var("is_dialer").as_str() {
        "true" => true,
        "false" => false,
        d => return Err(format!("is_dialer={d:?} must be true or false")),
    };
    let or = |v: String, d: &str| if v.is_empty() { d.to_string() } else { v };
    let timeout = match var("test_timeout_seconds").as_str() {
        "" => 180,
        t => match t.parse::<u64>() {
            Ok(s) if s > 0 => s,
            _ => return Err(format!("test_timeout_seconds={t:?} must be a positive integer")),
        },
    };
    Ok(Config {
        dialer,
        ip: or(var("ip"), "0.0.0.0"),
        redis_addr: or(var("redis_addr"), "redis:6379"),
        timeout: Duration::from_secs(timeout),
    })
}

/// Exit status: 0 done, 1 failed or timed out, 2 bad environment.
pub async fn cmd_transport_interop() -> ExitCode {
    let cfg = match config_from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rust-peer: transport-interop: {e}");
            return ExitCode::from(2);
        }
    };
    let deadline = Instant::now() + cfg.timeout;
    let result = match Redis::connect(&cfg.redis_addr, deadline) {
        Ok(mut redis) if cfg.dialer => run_dialer(&mut redis, deadline).await,
        Ok(mut redis) => run_listener(&mut redis, &cfg, deadline).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rust-peer: transport-interop: {e}");
            ExitCode::from(1)
        }
    }
}

fn swarm() -> Result<libp2p::Swarm<super::Behaviour>, String> {
    build_swarm(NodeConfig {
        key: Keypair::generate_ed25519(),
        agent: AGENT_VERSION.into(),
        // the first ping goes out as the connection opens; one is all the test needs
        ping_interval: Duration::from_secs(3600),
        gossipsub: None,
        kad: None,
    })
}

async fn run_dialer(redis: &mut Redis, deadline: Instant) -> Result<(), String> {
    let wait = deadline.saturating_duration_since(Instant::now()).as_secs().max(1);
    let reply = redis
        .command(&["BLPOP", LISTENER_ADDR_KEY, &wait.to_string()], Duration::from_secs(wait + 5))
        .map_err(|e| format!("waiting for the listener: {e}"))?;
    let target = match reply {
        Reply::Array(Some(mut v)) if v.len() == 2 => match v.pop() {
            Some(Reply::Str(Some(s))) => s,
            _ => return Err("redis: unexpected BLPOP reply".into()),
        },
        _ => return Err(format!("no {LISTENER_ADDR_KEY} within {wait} s")),
    };
    let ma: Multiaddr = target.parse().map_err(|e| format!("listener address {target:?}: {e}"))?;
    let mut swarm = swarm()?;
    eprintln!("rust-peer: transport-interop: dialing {ma}");
    let start = Instant::now(); // handshakeStartInstant
    let conn = dial(&mut swarm, &ma)?;
    let timeout = tokio::time::sleep_until(deadline.into());
    tokio::pin!(timeout);
    loop {
        tokio::select! {
            _ = &mut timeout => return Err("dial and ping not done within test_timeout_seconds".into()),
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::OutgoingConnectionError { connection_id, error, .. } if connection_id == conn => {
                    return Err(format!("dial {ma}: {error}"));
                }
                SwarmEvent::ConnectionClosed { connection_id, cause, .. } if connection_id == conn => {
                    return Err(format!("connection to {ma} closed ({cause:?})"));
                }
                SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event { connection, result, .. })) if connection == conn => {
                    let rtt = result.map_err(|e| format!("ping {ma}: {e}"))?;
                    let total = start.elapsed();
                    // the framework's key has three l's
                    out(&format!(
                        "{{\"handshakePlusOneRTTMillis\": {:.3}, \"pingRTTMilllis\": {:.3}}}",
                        total.as_secs_f64() * 1000.0,
                        rtt.as_secs_f64() * 1000.0
                    ));
                    return Ok(());
                }
                _ => {}
            }
        }
    }
}

fn is_loopback(ma: &Multiaddr) -> bool {
    ma.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_loopback(),
        Protocol::Ip6(ip) => ip.is_loopback(),
        _ => false,
    })
}

async fn run_listener(redis: &mut Redis, cfg: &Config, deadline: Instant) -> Result<(), String> {
    let family = if cfg.ip.contains(':') { "ip6" } else { "ip4" };
    let listen: Multiaddr = format!("/{family}/{}/tcp/0", cfg.ip)
        .parse()
        .map_err(|e| format!("ip {:?}: {e}", cfg.ip))?;
    let mut swarm = swarm()?;
    swarm.listen_on(listen.clone()).map_err(|e| format!("listen on {listen}: {e}"))?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("SIGTERM handler: {e}"))?;
    let timeout = tokio::time::sleep_until(deadline.into());
    tokio::pin!(timeout);
    // A non-loopback address first (what a peer in another container can dial); a loopback
    // one once no other came within ADDRESS_SETTLE.
    let mut loopback: Option<Multiaddr> = None;
    let mut published = false;
    let settle = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(settle);
    loop {
        let mut publish: Option<Multiaddr> = None;
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = &mut timeout => return Err("listener not done after test_timeout_seconds".into()),
            _ = &mut settle, if !published && loopback.is_some() => publish = loopback.take(),
            ev = swarm.select_next_some() => {
                match ev {
                    SwarmEvent::NewListenAddr { address, .. } if !published => {
                        if !is_loopback(&address) {
                            publish = Some(address);
                        } else if loopback.is_none() {
                            loopback = Some(address);
                            settle.as_mut().reset((Instant::now() + ADDRESS_SETTLE).into());
                        }
                    }
                    _ => {}
                }
            }
        }
        if let Some(addr) = publish {
            let announced = format!("{addr}/p2p/{}", swarm.local_peer_id());
            redis
                .command(&["RPUSH", LISTENER_ADDR_KEY, &announced], Duration::from_secs(10))
                .map_err(|e| format!("publishing {announced}: {e}"))?;
            eprintln!("rust-peer: transport-interop: listening on {announced}");
            published = true;
        }
    }
}
