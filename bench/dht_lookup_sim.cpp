// DHT lookups in the simulator (src/sim/dht_sim.hpp): latency, hops, requests and success of
// FIND_NODE and GET_PROVIDERS at several network sizes, in virtual time. Not a Google Benchmark
// (it measures the protocol, not the CPU); prints markdown tables, see docs/benchmarks.md
// "DHT lookups (simulator)".
//
//   dht_lookup_sim [--nodes 1000,2000,5000,10000] [--beta 20,3] [--alpha 10] [--k 20]
//                  [--lookups 500] [--per-topic 100] [--seed 1] [--loss 0] [--offline 0]
//                  [--connect-rtts 0] [--refresh] [--join-window-s 120] [--node-beta B]
//                  [--no-probes]
//
// Scenario per network size: 2 bootstrappers start, the other nodes join over the join window
// knowing only the bootstrappers (each runs the adapter's bootstrap and maintenance loop with
// the default DhtConfig, but alpha/k as given and query.beta = --node-beta if set); once all have
// joined, every non-bootstrapper announces the topic key of one of nodes/per-topic topics (one
// FIND_NODE + ADD_PROVIDER to the k closest, spread over 10 s); --offline then takes that
// fraction of them away; then `lookups` FIND_NODEs of random online peers and `lookups`
// GET_PROVIDERS (full lookups) of random topics run from random online nodes, spread over 30 s,
// each one once per --beta value with the same origin and target, started together (the β of
// the lookup only; the network is the same). --refresh waits for every node's first 5-minute
// maintenance round (self lookup and the refresh of every bucket) before the announcements.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "sim/dht_sim.hpp"

namespace {

using namespace p2pmq;
using namespace std::chrono_literals;
using sim::DhtNetwork;
using sim::DhtNodeId;
using sim::LookupId;
using sim::LookupRecord;

struct Options {
  std::vector<size_t> nodes{1000, 2000, 5000, 10000};
  std::vector<size_t> betas{20, 3};
  size_t alpha = 10;
  size_t k = 20;
  size_t lookups = 500;
  size_t per_topic = 100;
  uint64_t seed = 1;
  double loss = 0;
  double offline = 0;
  size_t connect_rtts = 0;
  bool refresh = false;
  int64_t join_window_s = 120;
  size_t node_beta = 0;  // the nodes' own query.beta (maintenance, provides); 0: the default
  bool probes = true;
};

std::vector<size_t> parse_list(const std::string& s) {
  std::vector<size_t> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) out.push_back(std::stoul(item));
  return out;
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "dht_lookup_sim: %s\nusage: dht_lookup_sim [--nodes N,N..] [--beta B,B..] "
               "[--alpha A] [--k K] [--lookups L] [--per-topic P] [--seed S] [--loss F] "
               "[--offline F] [--connect-rtts R] [--refresh] [--join-window-s S] "
               "[--node-beta B] [--no-probes]\n",
               why);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--refresh") {
      o.refresh = true;
      continue;
    }
    if (a == "--no-probes") {
      o.probes = false;
      continue;
    }
    if (i + 1 >= argc) usage(("missing value for " + a).c_str());
    std::string v = argv[++i];
    if (a == "--nodes") {
      o.nodes = parse_list(v);
    } else if (a == "--beta") {
      o.betas = parse_list(v);
    } else if (a == "--alpha") {
      o.alpha = std::stoul(v);
    } else if (a == "--k") {
      o.k = std::stoul(v);
    } else if (a == "--lookups") {
      o.lookups = std::stoul(v);
    } else if (a == "--per-topic") {
      o.per_topic = std::stoul(v);
    } else if (a == "--seed") {
      o.seed = std::stoull(v);
    } else if (a == "--loss") {
      o.loss = std::stod(v);
    } else if (a == "--offline") {
      o.offline = std::stod(v);
    } else if (a == "--connect-rtts") {
      o.connect_rtts = std::stoul(v);
    } else if (a == "--node-beta") {
      o.node_beta = std::stoul(v);
    } else if (a == "--join-window-s") {
      o.join_window_s = std::stol(v);
    } else {
      usage(("unknown option " + a).c_str());
    }
  }
  for (size_t n : o.nodes)
    if (n < 3) usage("--nodes: at least 3");
  return o;
}

double ms(dht::Duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

// Nearest-rank percentile of an ascending vector.
double pct(const std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  return v[std::min(rank == 0 ? 0 : rank - 1, v.size() - 1)];
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / static_cast<double>(v.size());
}

struct Sample {
  size_t lookups = 0;
  size_t succeeded = 0;
  std::vector<double> found_ms;  // of the lookups that found their result
  std::vector<double> done_ms;
  std::vector<double> hops;  // found_hops, of the lookups that found their result
  std::vector<double> requests;
  std::vector<double> extra;  // FIND_NODE: share of the true k closest in closest();
                              // GET_PROVIDERS: providers found
  void sort() {
    for (auto* v : {&found_ms, &done_ms, &hops, &requests, &extra}) std::sort(v->begin(), v->end());
  }
};

std::string hop_histogram(const std::vector<double>& hops) {
  std::map<int, size_t> h;
  for (double x : hops) ++h[static_cast<int>(x)];
  std::ostringstream out;
  for (const auto& [hop, count] : h)
    out << hop << ":" << (100.0 * static_cast<double>(count) / static_cast<double>(hops.size()))
        << "% ";
  return out.str();
}

struct Measured {
  Sample find, get;
};

void run(const Options& o, size_t nodes) {
  auto wall = std::chrono::steady_clock::now();
  sim::DhtSimConfig cfg;
  cfg.seed = o.seed;
  cfg.loss = o.loss;
  cfg.connect_rtts = o.connect_rtts;
  cfg.probe_full_buckets = o.probes;
  cfg.dht.query.alpha = o.alpha;
  cfg.dht.query.k = o.k;
  cfg.dht.table.k = o.k;
  if (o.node_beta) cfg.dht.query.beta = o.node_beta;
  DhtNetwork net(cfg);
  constexpr size_t kBootstrappers = 2;
  for (size_t i = 0; i < nodes; ++i)
    net.add_node(i < kBootstrappers ? dht::Mode::bootstrapper : dht::Mode::server);
  const size_t members = nodes - kBootstrappers;
  const size_t topics = std::max<size_t>(1, members / o.per_topic);
  auto topic_key = [](size_t t) { return dht::topic_key("bench-topic-" + std::to_string(t)); };

  // Joins.
  const dht::Time t0 = net.now();
  const dht::Duration window = std::chrono::seconds(o.join_window_s);
  for (size_t i = 0; i < kBootstrappers; ++i) net.start(i);
  for (size_t i = kBootstrappers; i < nodes; ++i)
    net.at(
        t0 + 1s + window * static_cast<int64_t>(i - kBootstrappers) / static_cast<int64_t>(members),
        [&net, i] { net.start(i); });
  dht::Time provide_at = t0 + 1s + window + 10s;
  if (o.refresh) provide_at += 5min + 30s;  // every node's first bootstrap_interval round
  net.run_until(provide_at);
  const auto joined = net.counters();
  const double join_wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall).count();

  // One announcement per member, then departures.
  std::mt19937_64 rng(o.seed * 1000003 + nodes);
  std::uniform_int_distribution<int64_t> spread10(0, 9'999), spread30(0, 29'999);
  for (size_t i = kBootstrappers; i < nodes; ++i) {
    Bytes key = topic_key(i % topics);
    net.at(provide_at + std::chrono::milliseconds(spread10(rng)),
           [&net, i, key] { net.provide_once(i, key); });
  }
  const dht::Time measure_at = provide_at + 40s;
  net.run_until(measure_at - 5s);
  for (size_t i = kBootstrappers; i < nodes; ++i)
    if (std::uniform_real_distribution<double>(0, 1)(rng) < o.offline) net.go_offline(i);
  net.run_until(measure_at);

  // Lookups: the same (origin, target) pairs with every β, started together.
  std::vector<DhtNodeId> online;
  for (DhtNodeId i = 0; i < nodes; ++i)
    if (net.online(i)) online.push_back(i);
  std::uniform_int_distribution<size_t> pick(0, online.size() - 1);
  std::uniform_int_distribution<size_t> pick_topic(0, topics - 1);
  std::vector<std::vector<std::pair<LookupId, DhtNodeId>>> finds(o.betas.size());
  std::vector<std::vector<LookupId>> gets(o.betas.size());
  for (size_t l = 0; l < o.lookups; ++l) {
    DhtNodeId from = online[pick(rng)], to = online[pick(rng)];
    while (to == from) to = online[pick(rng)];
    DhtNodeId asker = online[pick(rng)];
    Bytes key = topic_key(pick_topic(rng));
    const dht::Time at = measure_at + std::chrono::milliseconds(spread30(rng));
    const dht::Time at2 = measure_at + std::chrono::milliseconds(spread30(rng));
    for (size_t b = 0; b < o.betas.size(); ++b) {
      dht::QueryConfig qc = cfg.dht.query;
      qc.beta = o.betas[b];
      net.at(at, [&net, &finds, b, from, to, qc] {
        finds[b].emplace_back(net.find_node(from, net.peer_id(to).bytes(), qc), to);
      });
      net.at(at2, [&net, &gets, b, asker, key, qc] {
        gets[b].push_back(net.get_providers(asker, key, 0, qc));
      });
    }
  }
  net.run_until(measure_at + 30s + 70s);  // query_timeout is 60 s

  std::vector<Measured> m(o.betas.size());
  for (size_t b = 0; b < o.betas.size(); ++b) {
    Sample& fn = m[b].find;
    for (const auto& [id, target] : finds[b]) {
      const LookupRecord& r = net.lookup(id);
      ++fn.lookups;
      if (!r.closest.empty() && r.closest.front() == net.peer_id(target)) ++fn.succeeded;
      if (r.found_at) {
        fn.found_ms.push_back(ms(*r.found_at - r.started));
        fn.hops.push_back(static_cast<double>(r.found_hops));
      }
      if (r.finished) fn.done_ms.push_back(ms(*r.finished - r.started));
      fn.requests.push_back(static_cast<double>(r.stats.requests));
      size_t in_true = 0;
      auto truth = net.closest_nodes(net.peer_id(target).bytes(), o.k);
      for (DhtNodeId t : truth)
        if (std::find(r.closest.begin(), r.closest.end(), net.peer_id(t)) != r.closest.end())
          ++in_true;
      fn.extra.push_back(static_cast<double>(in_true) / static_cast<double>(truth.size()));
    }
    Sample& gp = m[b].get;
    for (LookupId id : gets[b]) {
      const LookupRecord& r = net.lookup(id);
      ++gp.lookups;
      size_t others = 0;
      for (const auto& p : r.providers) others += p != net.peer_id(r.origin);
      if (r.found_at) {
        ++gp.succeeded;
        gp.found_ms.push_back(ms(*r.found_at - r.started));
        gp.hops.push_back(static_cast<double>(r.found_hops));
      }
      if (r.finished) gp.done_ms.push_back(ms(*r.finished - r.started));
      gp.requests.push_back(static_cast<double>(r.stats.requests));
      gp.extra.push_back(static_cast<double>(others));
    }
    fn.sort();
    gp.sort();
  }
  Sample pv;
  for (LookupId id = 0; id < net.lookups(); ++id) {
    const LookupRecord& r = net.lookup(id);
    if (r.purpose != sim::LookupPurpose::provide || !r.finished) continue;
    ++pv.lookups;
    pv.succeeded += r.state == dht::QueryState::completed;
    pv.done_ms.push_back(ms(*r.finished - r.started));
    pv.requests.push_back(static_cast<double>(r.stats.requests));
  }
  pv.sort();
  // Placement: how many of each topic's true k closest (online) nodes hold a record.
  std::vector<double> placement;
  for (size_t t = 0; t < topics; ++t) {
    Bytes key = topic_key(t);
    auto truth = net.closest_nodes(key, o.k);
    size_t holders = 0;
    for (DhtNodeId n : truth) holders += !net.dht(n).stored_providers(key, net.now(), 1).empty();
    placement.push_back(static_cast<double>(holders) / static_cast<double>(truth.size()));
  }
  std::sort(placement.begin(), placement.end());
  double table_sum = 0;
  for (DhtNodeId i = 0; i < nodes; ++i) table_sum += static_cast<double>(net.dht(i).table().size());
  const double wall_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall).count();

  auto row = [&](size_t beta, const char* kind, const Sample& s, const std::string& extra) {
    std::printf(
        "| %zu | %zu | %s | %zu | %.1f%% | %.0f / %.0f / %.0f | %.0f / %.0f | %.2f (%.0f / %.0f) "
        "| %.1f (%.0f) | %s |\n",
        nodes, beta, kind, s.lookups,
        100.0 * static_cast<double>(s.succeeded) /
            static_cast<double>(std::max<size_t>(1, s.lookups)),
        pct(s.found_ms, 50), pct(s.found_ms, 90), pct(s.found_ms, 99), pct(s.done_ms, 50),
        pct(s.done_ms, 99), mean(s.hops), pct(s.hops, 50), pct(s.hops, 100), mean(s.requests),
        pct(s.requests, 99), extra.c_str());
  };
  std::string hops;
  for (size_t b = 0; b < o.betas.size(); ++b) {
    char buf[128];
    std::snprintf(buf, sizeof buf, "true %zu closest in result %.1f%%", o.k,
                  100 * mean(m[b].find.extra));
    row(o.betas[b], "FIND_NODE", m[b].find, buf);
    std::snprintf(buf, sizeof buf, "providers found mean %.1f, min %.0f", mean(m[b].get.extra),
                  pct(m[b].get.extra, 0));
    row(o.betas[b], "GET_PROVIDERS", m[b].get, buf);
    hops += "β " + std::to_string(o.betas[b]) + ": FIND_NODE " + hop_histogram(m[b].find.hops) +
            "/ GET_PROVIDERS " + hop_histogram(m[b].get.hops) + "; ";
  }
  const auto& c = net.counters();
  std::printf(
      "<!-- nodes %zu: hops %s| provide: %zu announcements, %.1f%% completed, lookup p50 %.0f ms "
      "p99 %.0f ms, %.1f requests; records on the true %zu closest %.1f%% (min %.0f%%) | join "
      "phase: %.1f requests/node (%.1f probes), %.2f lookups/node, %.1f connections/node | whole "
      "run: %.1f requests/node, %llu refused, %llu timeouts | mean table %.1f | offline %zu | "
      "wall %.1f s (joins %.1f s) -->\n",
      nodes, hops.c_str(), pv.lookups,
      100.0 * static_cast<double>(pv.succeeded) /
          static_cast<double>(std::max<size_t>(1, pv.lookups)),
      pct(pv.done_ms, 50), pct(pv.done_ms, 99), mean(pv.requests), o.k, 100 * mean(placement),
      100 * pct(placement, 0), static_cast<double>(joined.requests) / static_cast<double>(nodes),
      static_cast<double>(joined.probes) / static_cast<double>(nodes),
      static_cast<double>(joined.lookups) / static_cast<double>(nodes),
      static_cast<double>(joined.connections) * 2 / static_cast<double>(nodes),
      static_cast<double>(c.requests) / static_cast<double>(nodes),
      static_cast<unsigned long long>(c.refused), static_cast<unsigned long long>(c.timeouts),
      table_sum / static_cast<double>(nodes), nodes - online.size(), wall_s, join_wall);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  std::printf(
      "<!-- dht_lookup_sim: alpha %zu, k %zu, lookups %zu per kind, %zu subscribers per topic, "
      "seed %llu, loss %.3f, offline %.3f, connect_rtts %zu, refresh %s, join window %lld s, "
      "nodes' beta %s, probes %s, latency uniform 20-80 ms one way -->\n",
      o.alpha, o.k, o.lookups, o.per_topic, static_cast<unsigned long long>(o.seed), o.loss,
      o.offline, o.connect_rtts, o.refresh ? "yes" : "no", static_cast<long long>(o.join_window_s),
      o.node_beta ? std::to_string(o.node_beta).c_str() : "default", o.probes ? "on" : "off");
  std::printf(
      "| nodes | β | lookup | n | success | result ms p50 / p90 / p99 | done ms p50 / p99 | hops "
      "mean (p50 / max) | requests mean (p99) | "
      "|\n|---:|---:|---|---:|---:|---:|---:|---:|---:|---|\n");
  for (size_t n : o.nodes) run(o, n);
  return 0;
}
