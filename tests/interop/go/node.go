// node: a long-running host driven by stdin commands (gossip and dht subcommands).
package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// A stdin line longer than this ends the control channel (as in p2pmq's agent).
const maxCommandLine = 1 << 20

type node struct {
	ctx    context.Context
	cancel context.CancelFunc
	h      host.Host
	kad    *kad    // nil unless a DHT runs
	gossip *gossip // nil unless gossipsub runs

	published atomic.Uint64
	received  atomic.Uint64
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "go-peer: "+format+"\n", args...)
}

func newNode(o options) (*node, error) {
	var key crypto.PrivKey
	if o.has("key") {
		k, err := loadKey(o.str("key", ""))
		if err != nil {
			return nil, err
		}
		key = k
	}
	h, err := makeHost(hostOptions{listen: []string{o.str("listen", defaultListen)}, key: key, agent: o.str("agent", "")})
	if err != nil {
		return nil, err
	}
	ctx, cancel := signalContext()
	return &node{ctx: ctx, cancel: cancel, h: h}, nil
}

func (n *node) close() {
	n.cancel()
	if n.kad != nil {
		n.kad.d.Close()
	}
	n.h.Close()
}

// One command at a time, in order, so answers come in the order asked. Returns at
// stdin EOF or SIGTERM/SIGINT.
func (n *node) commandLoop() {
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(os.Stdin)
		sc.Buffer(make([]byte, 64<<10), maxCommandLine)
		for sc.Scan() {
			select {
			case lines <- strings.TrimRight(sc.Text(), "\r"):
			case <-n.ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-n.ctx.Done():
			return
		case line, ok := <-lines:
			if !ok {
				return
			}
			if err := n.handle(line); err != nil {
				emitError(fmt.Sprintf("%s: %v", line, err))
			}
		}
	}
}

func (n *node) handle(line string) error {
	verb, rest, _ := strings.Cut(line, " ")
	if verb == "" {
		return nil // blank line
	}
	arg := strings.TrimSpace(rest)
	if n.gossip != nil {
		if ok, err := n.gossip.handle(verb, rest); ok {
			return err
		}
	}
	if n.kad != nil {
		if ok, err := n.kad.handle(n.ctx, verb, arg); ok {
			return err
		}
	}
	switch verb {
	case "connect":
		id, err := connect(n.ctx, n.h, arg)
		if err != nil {
			return err
		}
		out.emit(map[string]any{"event": "connected", "peer": id.String()})
	case "handle":
		// a no-op handler: the protocol list changes, so identify pushes it
		if arg == "" {
			return fmt.Errorf("usage: handle PROTOCOL")
		}
		n.h.SetStreamHandler(protocol.ID(arg), func(s network.Stream) { s.Close() })
		out.emit(map[string]any{"event": "handled", "protocol": arg})
	case "protocols":
		// what identify (and its pushes) told us a peer speaks
		id, err := peer.Decode(arg)
		if err != nil {
			return fmt.Errorf("bad peer id %q: %w", arg, err)
		}
		ps, err := n.h.Peerstore().GetProtocols(id)
		if err != nil {
			return err
		}
		list := []string{}
		for _, p := range ps {
			list = append(list, string(p))
		}
		out.emit(map[string]any{"event": "protocols", "peer": id.String(), "protocols": list})
	case "stats":
		n.emitStats()
	default:
		return fmt.Errorf("unknown command %q", verb)
	}
	return nil
}

func (n *node) emitStats() {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := ru.Utime.Nano()/1e6 + ru.Stime.Nano()/1e6
	stats := map[string]any{
		"event":      "stats",
		"cpu_ms":     cpu,
		"rss_kb":     currentRssKb(),
		"max_rss_kb": ru.Maxrss, // KiB on Linux
		"published":  n.published.Load(),
		"received":   n.received.Load(),
	}
	if n.gossip != nil {
		stats["duplicates"] = n.gossip.mesh.duplicates.Load()
		stats["ihave_sent"] = n.gossip.mesh.ihaveSent.Load()
		stats["iwant_asked"] = n.gossip.mesh.iwantAsked.Load()
	}
	out.emit(stats)
}

// Resident set size from /proc/self/statm (pages), 0 where it cannot be read.
func currentRssKb() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize()) / 1024
}
