// oracle-go: a small network of oracle-style nodes on p2pmq, each with its own agent.
//
//	go -C examples/oracle-go run . --agent-bin build/release/apps/p2pmq/p2pmq --nodes 4
//
// Every node holds an ed25519 key; the committee's public keys are known to all (as in an oracle
// network's configuration). Each round every node signs a report (round, node, value) and
// broadcasts it on one topic through its agent. Every agent asks its node's validator
// (MsgValidation) about each report that arrives from the network; the validator checks the
// signature against the claimed node's key and answers REJECT for a bad one. One node is
// faulty: besides its own reports it sends forged ones (claiming another node's identity,
// signed with its own key). The example shows that the forged reports are rejected by the first
// honest agent they reach, never delivered to an honest node and never forwarded, that the
// honest agents' gossipsub score of the faulty node drops below zero (P4, invalid deliveries),
// and that each node computes the same median per round from the valid reports.
//
// It starts and stops its agents itself, prints what happened, and exits 0 when all of the above
// held, 1 otherwise (the CTest test oracle_go_example runs it).
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	p2pmq "p2pmq.dev/clients/go"
	"p2pmq.dev/clients/go/localagent"
	pb "p2pmq.dev/clients/go/p2pmqpb"
)

// Report is what a node broadcasts each round.
type Report struct {
	Node      int    `json:"node"`
	Round     int    `json:"round"`
	Value     int64  `json:"value"`
	Signature []byte `json:"sig"`
}

// signedBytes is what the signature covers: a domain tag, then node, round and value.
func (r *Report) signedBytes() []byte {
	b := []byte("p2pmq-oracle-report/v1")
	b = binary.BigEndian.AppendUint64(b, uint64(r.Node))
	b = binary.BigEndian.AppendUint64(b, uint64(r.Round))
	return binary.BigEndian.AppendUint64(b, uint64(r.Value))
}

// verify decodes data as a report signed by the committee member it names.
func verify(committee []ed25519.PublicKey, data []byte) (*Report, bool) {
	var r Report
	if json.Unmarshal(data, &r) != nil || r.Node < 0 || r.Node >= len(committee) {
		return nil, false
	}
	return &r, ed25519.Verify(committee[r.Node], r.signedBytes(), r.Signature)
}

// node is one oracle node: its key, its validator, its agent and a client of it.
type node struct {
	index     int
	key       ed25519.PrivateKey
	validator *p2pmq.Validator
	agent     *localagent.Agent
	client    *p2pmq.Client
	stream    *p2pmq.Stream
	accepted  atomic.Int64 // verdicts of its validator
	rejected  atomic.Int64

	mu        sync.Mutex
	delivered map[[2]int]int64 // (round, node) -> value of the valid reports delivered
	forged    int              // reports with a bad signature delivered to this node
}

type options struct {
	agentBin   string
	nodes      int
	rounds     int
	forgeries  int
	topic      string
	timeout    time.Duration
	keepLogs   bool
	faultyNode int
}

func main() {
	var o options
	flag.StringVar(&o.agentBin, "agent-bin", os.Getenv("P2PMQ_BIN"), "the p2pmq binary (default $P2PMQ_BIN)")
	flag.IntVar(&o.nodes, "nodes", 4, "oracle nodes, each with its own agent (at least 3)")
	flag.IntVar(&o.rounds, "rounds", 3, "report rounds")
	// Two forged reports take an honest peer's score of the faulty node to about -40 with the
	// default scoring (P4 weight -10, squared): negative, above the graylist threshold (-80), so
	// the faulty node's own valid reports still get through.
	flag.IntVar(&o.forgeries, "forgeries", 2, "forged reports the faulty node sends")
	flag.StringVar(&o.topic, "topic", "oracle/reports", "the topic reports go on")
	flag.DurationVar(&o.timeout, "timeout", 3*time.Minute, "give up after this long")
	flag.BoolVar(&o.keepLogs, "keep-logs", false, "keep the agents' logs also when all went well (their directory is printed)")
	flag.Parse()
	o.faultyNode = o.nodes - 1
	if o.agentBin == "" || o.nodes < 3 || o.rounds < 1 || o.forgeries < 1 {
		fmt.Fprintln(os.Stderr, "usage: oracle-go --agent-bin PATH [--nodes N>=3] [--rounds R>=1] [--forgeries F>=1]")
		os.Exit(2)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, o.timeout)
	defer cancelTimeout()
	err := run(ctx, o)
	if err != nil {
		fmt.Println("oracle-go: FAILED:", err)
		cancelTimeout()
		os.Exit(1)
	}
	fmt.Println("oracle-go: OK")
}

func run(ctx context.Context, o options) (err error) {
	dir, err := os.MkdirTemp("", "p2pmq-oracle-")
	if err != nil {
		return err
	}
	defer func() { // after the agents stopped (deferred below)
		if o.keepLogs || err != nil {
			fmt.Println("agent logs in", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()

	committee := make([]ed25519.PublicKey, o.nodes)
	nodes := make([]*node, o.nodes)
	for i := range nodes {
		pub, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		committee[i] = pub
		nodes[i] = &node{index: i, key: key, delivered: map[[2]int]int64{}}
	}
	defer func() {
		for _, n := range nodes {
			n.stop()
		}
	}()

	// Start every node: its validator first (the agent dials it), then its agent, bootstrapped
	// from node 0's, then a Listen stream on the topic.
	for i, n := range nodes {
		n.validator, err = p2pmq.ServeValidator("127.0.0.1:0", func(_ context.Context, m *pb.Message) pb.Verdict {
			if _, ok := verify(committee, m.GetData()); !ok {
				n.rejected.Add(1)
				return p2pmq.Reject
			}
			n.accepted.Add(1)
			return p2pmq.Accept
		})
		if err != nil {
			return err
		}
		args := append(slices.Clone(localagent.FastGossip), "--validator", n.validator.Addr())
		if i > 0 {
			args = append(args, "--bootstrap", nodes[0].agent.Addr)
		}
		if n.agent, err = localagent.Start(o.agentBin, fmt.Sprintf("node%d", i), dir, time.Minute, args...); err != nil {
			return err
		}
		if n.client, err = p2pmq.Dial(n.agent.GRPCAddress); err != nil {
			return err
		}
		if n.stream, err = n.client.Listen(ctx, []string{o.topic}, p2pmq.ListenOptions{}); err != nil {
			return err
		}
		go n.read(committee)
		role := "honest"
		if i == o.faultyNode {
			role = "FAULTY: sends forged reports"
		}
		fmt.Printf("node%d  agent %s  grpc %s  validator %s  (%s)\n", i, n.agent.PeerID, n.agent.GRPCAddress, n.validator.Addr(), role)
	}
	if err := waitFor(ctx, "every agent to have a mesh peer on "+o.topic, func() bool {
		for _, n := range nodes {
			if len(n.meshPeers(ctx, o.topic)) == 0 {
				return false
			}
		}
		return true
	}); err != nil {
		return err
	}

	// The rounds: every node reports; the faulty one adds forged reports in the first rounds.
	faulty := nodes[o.faultyNode]
	victim := (o.faultyNode + 1) % o.nodes
	forged := 0
	for round := 1; round <= o.rounds; round++ {
		for _, n := range nodes {
			r := Report{Node: n.index, Round: round, Value: 1000 + int64(10*round+n.index)}
			r.Signature = ed25519.Sign(n.key, r.signedBytes())
			if err := n.publish(ctx, o.topic, &r); err != nil {
				return err
			}
		}
		for ; forged < o.forgeries && (forged < round || round == o.rounds); forged++ {
			// Claims to be the victim, with a value far off, signed with the faulty node's key.
			r := Report{Node: victim, Round: round, Value: 1}
			r.Signature = ed25519.Sign(faulty.key, r.signedBytes())
			if err := faulty.publish(ctx, o.topic, &r); err != nil {
				return err
			}
			fmt.Printf("node%d  published a forged report: round %d, claims node%d, value %d\n", faulty.index, round, victim, r.Value)
		}
	}

	// Every valid report reaches every node.
	want := o.nodes * o.rounds
	if err := waitFor(ctx, fmt.Sprintf("all %d valid reports at every node", want), func() bool {
		for _, n := range nodes {
			if n.count() < want {
				return false
			}
		}
		return true
	}); err != nil {
		for _, n := range nodes {
			fmt.Printf("node%d delivered %d valid reports\n", n.index, n.count())
		}
		return err
	}
	// Each forged report was judged by the honest agents it reached first.
	if err := waitFor(ctx, "the forged reports to be rejected", func() bool {
		rejected := int64(0)
		for _, n := range nodes {
			rejected += n.rejected.Load()
		}
		return rejected >= int64(o.forgeries)
	}); err != nil {
		return err
	}
	// The honest agents that received them score the faulty node below zero.
	scores := map[int]float64{}
	if err := waitFor(ctx, "an honest agent's score of the faulty node to drop below zero", func() bool {
		negative := false
		for _, n := range nodes {
			if n == faulty {
				continue
			}
			if s, ok := n.scoreOf(ctx, faulty.agent.PeerID); ok {
				scores[n.index] = s
				negative = negative || s < 0
			}
		}
		return negative
	}); err != nil {
		return err
	}

	// The outcome.
	fmt.Println()
	var failures []error
	for _, n := range nodes {
		n.mu.Lock()
		forgedHere := n.forged
		n.mu.Unlock()
		line := fmt.Sprintf("node%d  delivered %d valid reports, %d forged; its validator accepted %d, rejected %d",
			n.index, n.count(), forgedHere, n.accepted.Load(), n.rejected.Load())
		if n != faulty {
			if s, ok := scores[n.index]; ok {
				line += fmt.Sprintf("; score of node%d: %.1f", faulty.index, s)
			}
			if forgedHere > 0 {
				failures = append(failures, fmt.Errorf("honest node%d was delivered %d forged reports", n.index, forgedHere))
			}
		}
		fmt.Println(line)
	}
	fmt.Printf("(node%d's own Listen stream sees its forged reports: an agent does not validate what its own application publishes)\n", faulty.index)
	for round := 1; round <= o.rounds; round++ {
		medians := map[int64]bool{}
		for _, n := range nodes {
			medians[n.median(round, o.nodes)] = true
		}
		line := fmt.Sprintf("round %d: median %d", round, nodes[0].median(round, o.nodes))
		if len(medians) != 1 {
			failures = append(failures, fmt.Errorf("round %d: the nodes computed different medians %v", round, medians))
			line += " (nodes disagree)"
		} else {
			line += " at every node"
		}
		fmt.Println(line)
	}
	return errors.Join(failures...)
}

func (n *node) publish(ctx context.Context, topic string, r *Report) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = n.client.Publish(ctx, topic, data)
	return err
}

// read records the reports delivered to this node (it checks signatures again, so a forged
// report that got through would be counted as one).
func (n *node) read(committee []ed25519.PublicKey) {
	for ev, err := range n.stream.Events() {
		if err != nil {
			fmt.Printf("node%d: listen: %v\n", n.index, err)
			return
		}
		m := ev.GetMessage()
		if m == nil {
			continue // Missed or Gap: not expected at these rates
		}
		r, ok := verify(committee, m.GetData())
		n.mu.Lock()
		if ok {
			n.delivered[[2]int{r.Round, r.Node}] = r.Value
		} else {
			n.forged++
		}
		n.mu.Unlock()
	}
}

func (n *node) count() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.delivered)
}

// median of the round's valid reports as this node received them.
func (n *node) median(round, nodes int) int64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	var values []int64
	for i := 0; i < nodes; i++ {
		if v, ok := n.delivered[[2]int{round, i}]; ok {
			values = append(values, v)
		}
	}
	if len(values) == 0 {
		return 0
	}
	slices.Sort(values)
	return values[len(values)/2]
}

func (n *node) meshPeers(ctx context.Context, topic string) []string {
	st, err := n.client.Status(ctx)
	if err != nil {
		return nil
	}
	var peers []string
	for _, p := range st.GetPeers() {
		if slices.Contains(p.GetMeshTopics(), topic) {
			peers = append(peers, p.GetPeerId())
		}
	}
	return peers
}

func (n *node) scoreOf(ctx context.Context, peerID string) (float64, bool) {
	st, err := n.client.Status(ctx)
	if err != nil {
		return 0, false
	}
	for _, p := range st.GetPeers() {
		if p.GetPeerId() == peerID {
			return p.GetScore(), true
		}
	}
	return 0, false
}

func (n *node) stop() {
	if n.stream != nil {
		n.stream.Close()
	}
	if n.client != nil {
		n.client.Close()
	}
	if n.agent != nil {
		n.agent.Stop()
	}
	if n.validator != nil {
		n.validator.Stop()
	}
}

func waitFor(ctx context.Context, what string, cond func() bool) error {
	if err := localagent.WaitFor(ctx, cond); err != nil {
		return fmt.Errorf("waiting for %s: %w", what, err)
	}
	return nil
}
