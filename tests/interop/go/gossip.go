// gossip: a go-libp2p-pubsub gossipsub node with the `p2pmq agent --stdio` line
// protocol (../README.md), plus the reference-peer extensions (scores, stats, pubn,
// handle, protocols; see "reference peers: go and rust" there).
package main

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// How often go-libp2p-pubsub hands us the peer scores (`scores` answers the latest).
const scoreInspectPeriod = 500 * time.Millisecond

// Room for a burst of thousands of messages in the go nodes' own queues (see newGossip).
const burstQueueSize = 8192

// ---- message ids ---------------------------------------------------------------

// p2pmq's id (src/pubsub/message.hpp, MessageIdFn::p2pmq; ../msgid.mjs):
// sha256(uvarint(len topic) || topic || from || seqno) with from and seqno set,
// else sha256(data). Raw bytes; events show them in hex.
func p2pmqMsgID(m *pb.Message) string {
	h := sha256.New()
	if len(m.From) > 0 && len(m.Seqno) > 0 {
		topic := m.GetTopic()
		h.Write(binary.AppendUvarint(nil, uint64(len(topic))))
		h.Write([]byte(topic))
		h.Write(m.From)
		h.Write(m.Seqno)
	} else {
		h.Write(m.Data)
	}
	return string(h.Sum(nil))
}

// ---- mesh tracking -------------------------------------------------------------

// go-libp2p-pubsub has no getter for a topic's mesh; the router reports every
// change to a RawTracer, which keeps a copy. It also counts what `stats` reports
// beside p2pmq's counters: duplicates received, IHAVE entries sent and message ids asked for
// by IWANT.
type meshTracer struct {
	mu   sync.Mutex
	mesh map[string]map[peer.ID]bool

	duplicates atomic.Uint64
	ihaveSent  atomic.Uint64 // IHAVE entries (one per peer and topic), as p2pmq counts them
	iwantAsked atomic.Uint64 // message ids in the IWANTs we send, as p2pmq's iwant_asked
}

func newMeshTracer() *meshTracer { return &meshTracer{mesh: map[string]map[peer.ID]bool{}} }

func (t *meshTracer) peers(topic string) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := []string{}
	for p := range t.mesh[topic] {
		out = append(out, p.String())
	}
	return out
}

func (t *meshTracer) Graft(p peer.ID, topic string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mesh[topic] == nil {
		t.mesh[topic] = map[peer.ID]bool{}
	}
	t.mesh[topic][p] = true
}

func (t *meshTracer) Prune(p peer.ID, topic string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.mesh[topic], p)
}

func (t *meshTracer) Leave(topic string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.mesh, topic)
}

// the router drops a peer from every mesh when its stream closes, without Prune
func (t *meshTracer) OnClosedOutboundStream(p peer.ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range t.mesh {
		delete(m, p)
	}
}

func (t *meshTracer) OnNewOutboundStream(peer.ID, protocol.ID) {}
func (t *meshTracer) Join(string)                              {}
func (t *meshTracer) ValidateMessage(*pubsub.Message)          {}
func (t *meshTracer) DeliverMessage(*pubsub.Message)           {}
func (t *meshTracer) RejectMessage(*pubsub.Message, string)    {}
func (t *meshTracer) DuplicateMessage(*pubsub.Message)         { t.duplicates.Add(1) }
func (t *meshTracer) ThrottlePeer(peer.ID)                     {}
func (t *meshTracer) RecvRPC(*pubsub.RPC)                      {}
func (t *meshTracer) SendRPC(rpc *pubsub.RPC, _ peer.ID) {
	t.ihaveSent.Add(uint64(len(rpc.GetControl().GetIhave())))
	for _, w := range rpc.GetControl().GetIwant() {
		t.iwantAsked.Add(uint64(len(w.GetMessageIDs())))
	}
}
func (t *meshTracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (t *meshTracer) DropRPC(*pubsub.RPC, peer.ID)                         {}
func (t *meshTracer) UndeliverableMessage(*pubsub.Message)                 {}

// ---- score parameters ------------------------------------------------------------

// p2pmq's defaults (src/pubsub/score.hpp TopicScoreParams; the agent scores every
// topic with them, apps/p2pmq/agent.cpp). Set on each topic at join.
func p2pmqTopicScoreParams() *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
		TopicWeight:                     1,
		TimeInMeshWeight:                1.0 / 3600,
		TimeInMeshQuantum:               time.Second,
		TimeInMeshCap:                   3600,
		FirstMessageDeliveriesWeight:    1,
		FirstMessageDeliveriesDecay:     0.9987216,
		FirstMessageDeliveriesCap:       100,
		MeshMessageDeliveriesWeight:     0,
		MeshMessageDeliveriesDecay:      0.9261187,
		MeshMessageDeliveriesCap:        100,
		MeshMessageDeliveriesThreshold:  1,
		MeshMessageDeliveriesWindow:     10 * time.Millisecond,
		MeshMessageDeliveriesActivation: 30 * time.Second,
		MeshFailurePenaltyWeight:        0,
		MeshFailurePenaltyDecay:         0.9923541,
		InvalidMessageDeliveriesWeight:  -10,
		InvalidMessageDeliveriesDecay:   0.9987216,
	}
}

// p2pmq's defaults (src/pubsub/score.hpp PeerScoreParams); loopback is exempt from
// IP colocation there as here.
func p2pmqPeerScoreParams() *pubsub.PeerScoreParams {
	var whitelist []*net.IPNet
	for _, c := range []string{"127.0.0.0/8", "::1/128"} {
		_, n, _ := net.ParseCIDR(c)
		whitelist = append(whitelist, n)
	}
	return &pubsub.PeerScoreParams{
		Topics:                      map[string]*pubsub.TopicScoreParams{},
		TopicScoreCap:               0,
		AppSpecificScore:            func(peer.ID) float64 { return 0 },
		AppSpecificWeight:           1,
		IPColocationFactorWeight:    -10,
		IPColocationFactorThreshold: 5,
		IPColocationFactorWhitelist: whitelist,
		BehaviourPenaltyWeight:      -10,
		BehaviourPenaltyThreshold:   6,
		BehaviourPenaltyDecay:       0.9923541,
		DecayInterval:               time.Second,
		DecayToZero:                 0.01,
		RetainScore:                 time.Hour,
	}
}

// p2pmq's defaults (src/pubsub/score.hpp PeerScoreThresholds); acceptPX is 100 there
// (--accept-px-threshold lowers it, so that a fresh peer's PX is followed).
func p2pmqThresholds(acceptPX float64) *pubsub.PeerScoreThresholds {
	return &pubsub.PeerScoreThresholds{
		GossipThreshold:             -10,
		PublishThreshold:            -50,
		GraylistThreshold:           -80,
		AcceptPXThreshold:           acceptPX,
		OpportunisticGraftThreshold: 1,
	}
}

// ---- the node ----------------------------------------------------------------------

type gossip struct {
	n       *node
	ps      *pubsub.PubSub
	mesh    *meshTracer
	p2pmqID bool    // --msgid p2pmq (else go's default from||seqno)
	counter *uint64 // go-libp2p-pubsub's seqno counter (see publish), nil if not found

	scoresMu sync.Mutex
	scores   map[peer.ID]float64

	mu     sync.Mutex // topics, subs, seqnos; held across a publication
	topics map[string]*pubsub.Topic
	subs   map[string]*pubsub.Subscription
	seqnos map[string]uint64 // topic -> last seqno published (p2pmq ids)
}

func gossipParams(o options) (pubsub.GossipSubParams, error) {
	p := pubsub.DefaultGossipSubParams()
	for _, f := range []struct {
		flag string
		dst  *int
	}{{"D", &p.D}, {"Dlo", &p.Dlo}, {"Dhi", &p.Dhi}, {"Dout", &p.Dout}, {"Dscore", &p.Dscore}, {"Dlazy", &p.Dlazy}} {
		v, err := o.uint(f.flag, *f.dst)
		if err != nil {
			return p, err
		}
		*f.dst = v
	}
	if o.has("heartbeat-ms") {
		v, err := o.uint("heartbeat-ms", 0)
		if err != nil {
			return p, err
		}
		if v == 0 {
			return p, usageError{"--heartbeat-ms must be positive"}
		}
		p.HeartbeatInterval = time.Duration(v) * time.Millisecond
	}
	return p, nil
}

func boolOpt(o options, name string, dflt bool) (bool, error) {
	switch o.str(name, "") {
	case "":
		return dflt, nil
	case "0":
		return false, nil
	case "1":
		return true, nil
	}
	return false, usageError{fmt.Sprintf("--%s must be 0 or 1", name)}
}

// go-libp2p-pubsub numbers publications from one counter per node (started at the
// creation time in ns) and takes no seqno from the caller. p2pmq numbers each
// origin's messages per topic 1, 2, 3 ...; to publish the same way, the node sets
// that unexported counter to seqno-1 right before Publish, which takes the next
// value synchronously (PubSub.nextSeqno). Found by name; nil if it is not there.
func seqnoCounter(ps *pubsub.PubSub) *uint64 {
	f := reflect.ValueOf(ps).Elem().FieldByName("counter")
	if !f.IsValid() || f.Kind() != reflect.Uint64 {
		return nil
	}
	return (*uint64)(unsafe.Pointer(f.UnsafeAddr()))
}

func cmdGossip(o options) error {
	if len(o.pos) != 0 {
		return usageError{"gossip takes no positional arguments, got " + strings.Join(o.pos, " ")}
	}
	params, err := gossipParams(o)
	if err != nil {
		return err
	}
	flood, err := boolOpt(o, "flood-publish", true)
	if err != nil {
		return err
	}
	px, err := boolOpt(o, "px", false)
	if err != nil {
		return err
	}
	acceptPX, err := o.uint("accept-px-threshold", 100)
	if err != nil {
		return err
	}
	msgid := o.str("msgid", "p2pmq")
	if msgid != "p2pmq" && msgid != "stock" {
		return usageError{"--msgid must be p2pmq or stock"}
	}
	dhtMode := o.str("dht", "off")
	if dhtMode != "off" && dhtMode != "server" && dhtMode != "client" {
		return usageError{"--dht must be off, server or client"}
	}
	qt, err := o.uint("query-timeout", 30)
	if err != nil {
		return err
	}
	var direct []peer.AddrInfo
	for _, d := range o.all("direct") {
		ai, err := addrInfo(d)
		if err != nil {
			return usageError{"--direct: " + err.Error()}
		}
		direct = append(direct, *ai)
	}

	n, err := newNode(o)
	if err != nil {
		return err
	}
	defer n.close()
	if dhtMode != "off" {
		n.kad, err = startKad(n.h, dhtMode, o.str("dht-protocol", defaultDhtProtocol), time.Duration(qt)*time.Second)
		if err != nil {
			return err
		}
	}

	g := &gossip{n: n, mesh: newMeshTracer(), p2pmqID: msgid == "p2pmq", scores: map[peer.ID]float64{},
		topics: map[string]*pubsub.Topic{}, subs: map[string]*pubsub.Subscription{}, seqnos: map[string]uint64{}}
	opts := []pubsub.Option{
		pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
		pubsub.WithGossipSubParams(params),
		pubsub.WithFloodPublish(flood),
		pubsub.WithPeerExchange(px),
		pubsub.WithRawTracer(g.mesh),
		pubsub.WithPeerScore(p2pmqPeerScoreParams(), p2pmqThresholds(float64(acceptPX))),
		pubsub.WithPeerScoreInspect(pubsub.PeerScoreInspectFn(g.keepScores), scoreInspectPeriod),
		// go's defaults (32 queued validations, 32 queued RPCs per peer) drop a burst of
		// thousands published at once inside the go nodes themselves; the burst tests look
		// at what p2pmq does with what go holds, so the go nodes keep the whole burst.
		pubsub.WithValidateQueueSize(burstQueueSize),
		pubsub.WithPeerOutboundQueueSize(burstQueueSize),
	}
	if g.p2pmqID {
		opts = append(opts, pubsub.WithMessageIdFn(p2pmqMsgID))
	}
	if len(direct) > 0 {
		opts = append(opts, pubsub.WithDirectPeers(direct))
	}
	g.ps, err = pubsub.NewGossipSub(n.ctx, n.h, opts...)
	if err != nil {
		return err
	}
	g.counter = seqnoCounter(g.ps)
	n.gossip = g

	if err := printListening(n.h); err != nil {
		return err
	}
	for _, t := range o.all("topic") {
		if err := g.subscribe(t); err != nil {
			return err
		}
	}
	if n.kad != nil {
		// dials the bootstrap peers, then joins the DHT through them
		go n.kad.join(n.ctx, o.all("bootstrap"))
	} else {
		for _, b := range o.all("bootstrap") {
			go func(b string) {
				if _, err := connect(n.ctx, n.h, b); err != nil {
					emitError(fmt.Sprintf("bootstrap %s: %v", b, err))
				}
			}(b)
		}
	}
	n.commandLoop()
	return nil
}

func (g *gossip) keepScores(s map[peer.ID]float64) {
	g.scoresMu.Lock()
	defer g.scoresMu.Unlock()
	g.scores = s
}

func (g *gossip) topic(t string) (*pubsub.Topic, error) {
	if tp := g.topics[t]; tp != nil {
		return tp, nil
	}
	tp, err := g.ps.Join(t)
	if err != nil {
		return nil, err
	}
	if err := tp.SetScoreParams(p2pmqTopicScoreParams()); err != nil {
		return nil, err
	}
	g.topics[t] = tp
	return tp, nil
}

func (g *gossip) subscribe(t string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.subs[t] != nil {
		return nil
	}
	tp, err := g.topic(t)
	if err != nil {
		return err
	}
	sub, err := tp.Subscribe()
	if err != nil {
		return err
	}
	g.subs[t] = sub
	go g.deliver(sub)
	return nil
}

func (g *gossip) unsubscribe(t string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if sub := g.subs[t]; sub != nil {
		sub.Cancel()
		delete(g.subs, t)
	}
}

func seqnoJSON(b []byte) any {
	if len(b) != 8 {
		return nil
	}
	v := binary.BigEndian.Uint64(b)
	if v <= 1<<53-1 {
		return v
	}
	return strconv.FormatUint(v, 10)
}

func (g *gossip) deliver(sub *pubsub.Subscription) {
	self := g.n.h.ID()
	for {
		m, err := sub.Next(g.n.ctx)
		if err != nil {
			return // cancelled or stopping
		}
		recv := nowMs()
		from, ferr := peer.IDFromBytes(m.From)
		if ferr == nil && from == self {
			continue // our own publication
		}
		g.n.received.Add(1)
		var fromJSON any
		if ferr == nil {
			fromJSON = from.String()
		}
		out.emit(map[string]any{
			"event":   "message",
			"topic":   m.GetTopic(),
			"from":    fromJSON,
			"seqno":   seqnoJSON(m.Seqno),
			"data":    string(m.Data),
			"id":      hex.EncodeToString([]byte(m.ID)),
			"recv_ms": math.Round(recv*1000) / 1000,
		})
	}
}

// Publishes data on t; returns the seqno and the hex message id.
func (g *gossip) publish(t string, data []byte) (uint64, string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	tp, err := g.topic(t)
	if err != nil {
		return 0, "", err
	}
	want := uint64(0)
	if g.p2pmqID && g.counter != nil {
		want = g.seqnos[t] + 1
		atomic.StoreUint64(g.counter, want-1)
	}
	if err := tp.Publish(g.n.ctx, data); err != nil {
		return 0, "", err
	}
	var seqno uint64
	if g.counter != nil {
		seqno = atomic.LoadUint64(g.counter)
	}
	if want != 0 {
		if seqno != want {
			return 0, "", fmt.Errorf("publication went out with seqno %d, not %d (go-libp2p-pubsub internals changed?)", seqno, want)
		}
		g.seqnos[t] = seqno
	}
	g.n.published.Add(1)
	var seq [8]byte
	binary.BigEndian.PutUint64(seq[:], seqno)
	m := &pb.Message{From: []byte(g.n.h.ID()), Seqno: seq[:], Topic: &t, Data: data}
	id := pubsub.DefaultMsgIdFn(m)
	if g.p2pmqID {
		id = p2pmqMsgID(m)
	}
	return seqno, hex.EncodeToString([]byte(id)), nil
}

// pubn T N S R: N messages of S bytes at R per second; each starts with the send
// time (unix ms, 3 decimals) and a space, padded with 'x'.
func (g *gossip) pubn(t string, count, size int, rate float64) {
	start := time.Now()
	for i := 0; i < count && g.n.ctx.Err() == nil; i++ {
		if rate > 0 {
			if d := time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))); d > 0 {
				time.Sleep(d)
			}
		}
		data := []byte(fmt.Sprintf("%.3f ", nowMs()))
		for len(data) < size {
			data = append(data, 'x')
		}
		if _, _, err := g.publish(t, data); err != nil {
			emitError(fmt.Sprintf("pubn %s: message %d: %v", t, i+1, err))
			return
		}
	}
	out.emit(map[string]any{"event": "pubn-done", "topic": t, "count": count})
}

func (g *gossip) handle(verb, rest string) (bool, error) {
	arg := strings.TrimSpace(rest)
	switch verb {
	case "sub":
		if arg == "" {
			return true, errors.New("usage: sub TOPIC")
		}
		if err := g.subscribe(arg); err != nil {
			return true, err
		}
		out.emit(map[string]any{"event": "subscribed", "topic": arg})
	case "unsub":
		if arg == "" {
			return true, errors.New("usage: unsub TOPIC")
		}
		g.unsubscribe(arg)
		out.emit(map[string]any{"event": "unsubscribed", "topic": arg})
	case "pub":
		// data: the rest of the line after `pub TOPIC ` (may be empty)
		t, data, _ := strings.Cut(rest, " ")
		if t == "" {
			return true, errors.New("usage: pub TOPIC DATA")
		}
		seqno, id, err := g.publish(t, []byte(data))
		if err != nil {
			return true, err
		}
		var seq [8]byte
		binary.BigEndian.PutUint64(seq[:], seqno)
		out.emit(map[string]any{"event": "published", "topic": t, "seqno": seqnoJSON(seq[:]), "id": id})
	case "pubn":
		f := strings.Fields(arg)
		if len(f) != 4 {
			return true, errors.New("usage: pubn TOPIC COUNT SIZE RATE")
		}
		count, err1 := strconv.Atoi(f[1])
		size, err2 := strconv.Atoi(f[2])
		rate, err3 := strconv.ParseFloat(f[3], 64)
		if err1 != nil || err2 != nil || err3 != nil || count < 0 || size < 0 || rate < 0 {
			return true, errors.New("usage: pubn TOPIC COUNT SIZE RATE (non-negative numbers)")
		}
		go g.pubn(f[0], count, size, rate)
	case "peers":
		peers := []string{}
		for _, p := range g.ps.ListPeers("") {
			peers = append(peers, p.String())
		}
		out.emit(map[string]any{"event": "peers", "peers": peers})
	case "mesh":
		if arg == "" {
			return true, errors.New("usage: mesh TOPIC")
		}
		out.emit(map[string]any{"event": "mesh", "topic": arg, "peers": g.mesh.peers(arg)})
	case "scores":
		g.scoresMu.Lock()
		s := map[string]float64{}
		for p, v := range g.scores {
			s[p.String()] = v
		}
		g.scoresMu.Unlock()
		out.emit(map[string]any{"event": "scores", "scores": s})
	default:
		return false, nil
	}
	return true, nil
}
