// dht: a go-libp2p-kad-dht node with the dht commands of `p2pmq agent --stdio`
// (../README.md, "dht line protocol"), alone (`go-peer dht`) or beside gossipsub
// (`go-peer gossip --dht server|client`).
package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	dhtpb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/routing"
	"github.com/multiformats/go-multihash"
)

const (
	defaultDhtProtocol = "/p2pmq/kad/1.0.0"
	kadSuffix          = "/kad/1.0.0"
	topicKeyPrefix     = "p2pmq/topic/"
	// how long the join waits for a bootstrap peer to enter the routing table
	// (identify, then kad-dht's own check of the peer)
	joinTableWait = 10 * time.Second
)

type kad struct {
	d            *dht.IpfsDHT
	h            host.Host
	msgr         *dhtpb.ProtocolMessenger
	queryTimeout time.Duration
}

// protocol: the full protocol id (/p2pmq/kad/1.0.0, /ipfs/kad/1.0.0, ...).
func startKad(h host.Host, mode, proto string, queryTimeout time.Duration) (*kad, error) {
	var m dht.ModeOpt
	switch mode {
	case "server":
		m = dht.ModeServer
	case "client":
		m = dht.ModeClient
	default:
		return nil, usageError{fmt.Sprintf("dht mode must be server or client, got %s", mode)}
	}
	opts := []dht.Option{dht.Mode(m)}
	if prefix, ok := strings.CutSuffix(proto, kadSuffix); ok && prefix != "" {
		opts = append(opts, dht.ProtocolPrefix(protocol.ID(prefix)))
	} else {
		opts = append(opts, dht.V1ProtocolOverride(protocol.ID(proto)))
	}
	d, err := dht.New(h, opts...)
	if err != nil {
		return nil, err
	}
	msgr, err := dhtpb.NewProtocolMessenger(d.MessageSender())
	if err != nil {
		d.Close()
		return nil, err
	}
	return &kad{d: d, h: h, msgr: msgr, queryTimeout: queryTimeout}, nil
}

// Joining: dial the bootstrap peers (identify puts DHT servers among them into the
// routing table), wait until one is there, then look up our own id once.
func (k *kad) join(ctx context.Context, bootstrap []string) {
	want := map[peer.ID]bool{}
	for _, b := range bootstrap {
		id, err := connect(ctx, k.h, b)
		if err != nil {
			emitError(fmt.Sprintf("bootstrap %s: %v", b, err))
			continue
		}
		want[id] = true
	}
	if len(want) == 0 {
		return
	}
	deadline := time.Now().Add(joinTableWait)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if k.tableHasAny(want) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	qctx, cancel := context.WithTimeout(ctx, k.queryTimeout)
	defer cancel()
	if _, err := k.d.GetClosestPeers(qctx, string(k.h.ID())); err != nil && ctx.Err() == nil {
		logf("dht: self lookup after bootstrap: %v", err)
	}
}

func (k *kad) tableHasAny(want map[peer.ID]bool) bool {
	for _, p := range k.d.RoutingTable().ListPeers() {
		if want[p] {
			return true
		}
	}
	return false
}

func topicCid(topic string) cid.Cid {
	digest := sha256.Sum256([]byte(topicKeyPrefix + topic))
	mh, _ := multihash.Encode(digest[:], multihash.SHA2_256)
	return cid.NewCidV1(cid.Raw, mh)
}

func addrStrings(ai peer.AddrInfo) []string {
	s := []string{}
	for _, a := range ai.Addrs {
		s = append(s, a.String())
	}
	return s
}

// Handles a dht-* command; false when verb is not one.
func (k *kad) handle(ctx context.Context, verb, arg string) (bool, error) {
	switch verb {
	case "dht-table":
		peers := []string{}
		for _, p := range k.d.RoutingTable().ListPeers() {
			peers = append(peers, p.String())
		}
		out.emit(map[string]any{"event": "dht-table", "peers": peers})
	case "dht-find-peer":
		target, err := peer.Decode(arg)
		if err != nil {
			return true, fmt.Errorf("bad peer id %q: %w", arg, err)
		}
		qctx, cancel := context.WithTimeout(ctx, k.queryTimeout)
		defer cancel()
		// kad-dht's FindPeer: a connected peer is answered from the peer store,
		// others by a FIND_NODE lookup
		ai, err := k.d.FindPeer(qctx, target)
		if err != nil && !errors.Is(err, routing.ErrNotFound) && qctx.Err() == nil {
			return true, err
		}
		found := err == nil
		addrs := []string{}
		if found {
			addrs = addrStrings(ai)
		}
		out.emit(map[string]any{"event": "dht-peer", "peer": target.String(), "found": found, "addrs": addrs})
	case "dht-provide-topic":
		if arg == "" {
			return true, errors.New("usage: dht-provide-topic TOPIC")
		}
		n, err := k.provide(ctx, topicCid(arg))
		if err != nil {
			return true, err
		}
		out.emit(map[string]any{"event": "dht-provided", "topic": arg, "peers": n})
	case "dht-find-topic":
		if arg == "" {
			return true, errors.New("usage: dht-find-topic TOPIC")
		}
		qctx, cancel := context.WithTimeout(ctx, k.queryTimeout)
		defer cancel()
		found := map[peer.ID]map[string]bool{}
		order := []peer.ID{}
		// count 0: every provider the lookup finds
		for ai := range k.d.FindProvidersAsync(qctx, topicCid(arg), 0) {
			if found[ai.ID] == nil {
				found[ai.ID] = map[string]bool{}
				order = append(order, ai.ID)
			}
			for _, a := range ai.Addrs {
				found[ai.ID][a.String()] = true
			}
		}
		providers := []map[string]any{}
		for _, p := range order {
			addrs := []string{}
			for a := range found[p] {
				addrs = append(addrs, a)
			}
			providers = append(providers, map[string]any{"peer": p.String(), "addrs": addrs})
		}
		out.emit(map[string]any{"event": "dht-providers", "topic": arg, "providers": providers})
	default:
		return false, nil
	}
	return true, nil
}

// kad-dht's classic provide (store locally, look up the closest peers, ADD_PROVIDER
// to each), done here so that the peers the record went to can be counted.
func (k *kad) provide(ctx context.Context, key cid.Cid) (int, error) {
	qctx, cancel := context.WithTimeout(ctx, k.queryTimeout)
	defer cancel()
	if err := k.d.Provide(qctx, key, false); err != nil {
		return 0, err
	}
	peers, err := k.d.GetClosestPeers(qctx, string(key.Hash()))
	if err != nil && len(peers) == 0 {
		return 0, err
	}
	self := peer.AddrInfo{ID: k.h.ID(), Addrs: k.d.FilteredAddrs()}
	type result struct {
		p   peer.ID
		err error
	}
	results := make(chan result, len(peers))
	for _, p := range peers {
		go func(p peer.ID) { results <- result{p, k.msgr.PutProviderAddrs(qctx, p, key.Hash(), self)} }(p)
	}
	sent := 0
	for range peers {
		if r := <-results; r.err == nil {
			sent++
		} else {
			logf("dht: ADD_PROVIDER to %s: %v", r.p, r.err)
		}
	}
	return sent, nil
}

func cmdDht(o options) error {
	mode := o.str("mode", "server")
	proto := o.str("protocol", defaultDhtProtocol)
	qt, err := o.uint("query-timeout", 30)
	if err != nil {
		return err
	}
	if len(o.pos) != 0 {
		return usageError{"dht takes no positional arguments, got " + strings.Join(o.pos, " ")}
	}
	n, err := newNode(o)
	if err != nil {
		return err
	}
	defer n.close()
	n.kad, err = startKad(n.h, mode, proto, time.Duration(qt)*time.Second)
	if err != nil {
		return err
	}
	if err := printListening(n.h); err != nil {
		return err
	}
	go n.kad.join(n.ctx, o.all("bootstrap"))
	n.commandLoop()
	return nil
}
