// go-peer: one go-libp2p node for p2pmq's interoperability tests, the go twin of
// ../peer.mjs. Subcommands and output mirror the C++ `p2pmq` binary:
//
//	go-peer listen [--key FILE] [--echo] [--listen MA] [--agent A]
//	go-peer ping MA [--count N] [--timeout S]
//	go-peer identify MA [--timeout S]
//	go-peer gossip [...]   the `p2pmq agent --stdio` line protocol (gossip.go)
//	go-peer dht [...]      the dht commands of `p2pmq agent --stdio` (dht.go)
//	go-peer transport-interop   libp2p/test-plans transport-interop, configured by its
//	                            environment variables (transport_interop.go)
//
// TCP + Noise + Yamux only, 127.0.0.1 unless --listen says otherwise. See
// ../README.md, "reference peers: go and rust".
package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	idpb "github.com/libp2p/go-libp2p/p2p/protocol/identify/pb"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/libp2p/go-msgio/pbio"
	ma "github.com/multiformats/go-multiaddr"
)

const (
	defaultListen   = "/ip4/127.0.0.1/tcp/0"
	echoProtocol    = "/p2pmq/echo/1.0.0"
	identifyProto   = "/ipfs/id/1.0.0"
	dialTimeout     = 30 * time.Second
	identifyMaxSize = 64 << 10
)

const usage = `usage:
  go-peer listen [--key FILE] [--echo] [--listen MA] [--agent A]
  go-peer ping MA [--count N] [--timeout S]
  go-peer identify MA [--timeout S]
  go-peer gossip [--bootstrap MA]... [--topic T]... [--key FILE] [--listen MA]
                 [--D n --Dlo n --Dhi n --Dout n --Dscore n --Dlazy n --heartbeat-ms n --flood-publish 0|1]
                 [--msgid p2pmq|stock] [--px 0|1] [--accept-px-threshold n] [--direct MA]... [--dht off|server|client] [--dht-protocol P]
  go-peer dht [--mode server|client] [--bootstrap MA]... [--protocol P] [--key FILE] [--listen MA] [--query-timeout S]
  go-peer transport-interop   (environment: transport security muxer is_dialer ip redis_addr test_timeout_seconds)`

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// ---- arguments ---------------------------------------------------------------

type options struct {
	pos    []string
	values map[string][]string
}

var boolFlags = map[string]bool{"echo": true}

func parseArgs(args []string) (options, error) {
	o := options{values: map[string][]string{}}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "--") {
			o.pos = append(o.pos, a)
			continue
		}
		name := a[2:]
		if boolFlags[name] {
			o.values[name] = append(o.values[name], "1")
			continue
		}
		if i+1 >= len(args) {
			return o, usageError{fmt.Sprintf("option %s needs a value", a)}
		}
		i++
		o.values[name] = append(o.values[name], args[i])
	}
	return o, nil
}

func (o options) has(name string) bool { return len(o.values[name]) > 0 }

// the last value of an option, or dflt
func (o options) str(name, dflt string) string {
	if v := o.values[name]; len(v) > 0 {
		return v[len(v)-1]
	}
	return dflt
}

func (o options) all(name string) []string { return o.values[name] }

func (o options) uint(name string, dflt int) (int, error) {
	if !o.has(name) {
		return dflt, nil
	}
	s := o.str(name, "")
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		return 0, usageError{fmt.Sprintf("--%s must be a non-negative integer, got %s", name, s)}
	}
	return v, nil
}

// ---- keys --------------------------------------------------------------------

var hexText = regexp.MustCompile(`^([0-9a-fA-F]{2})+$`)

// Key file: the binary libp2p protobuf PrivateKey (p2pmq's format), or hex text of
// it, of a 32-byte Ed25519 seed or of a 64-byte raw Ed25519 key (seed || public).
func loadKey(path string) (crypto.PrivKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	text := strings.Join(strings.Fields(string(raw)), "")
	if hexText.MatchString(text) {
		b, _ := hex.DecodeString(text)
		switch len(b) {
		case ed25519.SeedSize:
			return crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(b))
		case ed25519.PrivateKeySize:
			return crypto.UnmarshalEd25519PrivateKey(b)
		}
		return crypto.UnmarshalPrivateKey(b)
	}
	k, err := crypto.UnmarshalPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("key file %s: neither hex nor a libp2p protobuf private key (%v)", path, err)
	}
	return k, nil
}

// ---- host --------------------------------------------------------------------

func libp2pVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/libp2p/go-libp2p" {
				return d.Version
			}
		}
	}
	return "unknown"
}

type hostOptions struct {
	listen []string // none: no listener
	key    crypto.PrivKey
	agent  string
}

func makeHost(o hostOptions) (host.Host, error) {
	agent := o.agent
	if agent == "" {
		agent = "go-libp2p/" + libp2pVersion() + " (p2pmq interop go-peer)"
	}
	opts := []libp2p.Option{
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		// a test network on one machine: no resource limits, no relay
		libp2p.ResourceManager(&network.NullResourceManager{}),
		libp2p.DisableRelay(),
		libp2p.UserAgent(agent),
	}
	if o.key != nil {
		opts = append(opts, libp2p.Identity(o.key))
	}
	if len(o.listen) > 0 {
		opts = append(opts, libp2p.ListenAddrStrings(o.listen...))
	} else {
		opts = append(opts, libp2p.NoListenAddrs)
	}
	return libp2p.New(opts...)
}

// Prints `listening <ma>/p2p/<id>` for every listen address.
func printListening(h host.Host) error {
	addrs := h.Addrs()
	if len(addrs) == 0 {
		return errors.New("node has no listen address")
	}
	for _, a := range addrs {
		out.line(fmt.Sprintf("listening %s/p2p/%s", a, h.ID()))
	}
	return nil
}

func addrInfo(s string) (*peer.AddrInfo, error) {
	m, err := ma.NewMultiaddr(s)
	if err != nil {
		return nil, fmt.Errorf("bad multiaddr %s: %w", s, err)
	}
	ai, err := peer.AddrInfoFromP2pAddr(m)
	if err != nil {
		return nil, fmt.Errorf("multiaddr %s: %w (a /p2p/<id> suffix is required)", s, err)
	}
	return ai, nil
}

// Dials addr (with /p2p/<id>; Noise checks the remote proves that id).
func connect(ctx context.Context, h host.Host, s string) (peer.ID, error) {
	ai, err := addrInfo(s)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	if err := h.Connect(ctx, *ai); err != nil {
		return "", err
	}
	return ai.ID, nil
}

// ---- output ------------------------------------------------------------------

// stdout is shared by the command loop and the message goroutines: one line at a time.
type output struct{ mu sync.Mutex }

var out output

func (o *output) line(s string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	os.Stdout.WriteString(s + "\n")
}

func (o *output) emit(v map[string]any) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		b.Reset()
		fmt.Fprintf(&b, `{"event":"error","message":%q}`+"\n", err.Error())
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	os.Stdout.WriteString(b.String())
}

func emitError(msg string) { out.emit(map[string]any{"event": "error", "message": msg}) }

func nowMs() float64 { return float64(time.Now().UnixNano()) / 1e6 }

// ---- listen, ping, identify -----------------------------------------------------

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
}

func cmdListen(o options) error {
	var key crypto.PrivKey
	if o.has("key") {
		k, err := loadKey(o.str("key", ""))
		if err != nil {
			return err
		}
		key = k
	}
	h, err := makeHost(hostOptions{listen: []string{o.str("listen", defaultListen)}, key: key, agent: o.str("agent", "")})
	if err != nil {
		return err
	}
	defer h.Close()
	if o.has("echo") {
		h.SetStreamHandler(echoProtocol, func(s network.Stream) {
			// echo every byte; close our side at the remote's EOF
			if _, err := io.Copy(s, s); err != nil {
				s.Reset()
				return
			}
			s.Close()
		})
	}
	if err := printListening(h); err != nil {
		return err
	}
	ctx, stop := signalContext()
	defer stop()
	<-ctx.Done()
	return nil
}

func cmdPing(ctx context.Context, h host.Host, target string, o options) error {
	count, err := o.uint("count", 1)
	if err != nil {
		return err
	}
	id, err := connect(ctx, h, target)
	if err != nil {
		return err
	}
	for i := 1; i <= count; i++ {
		cctx, cancel := context.WithCancel(ctx)
		r := <-ping.Ping(cctx, h, id)
		cancel()
		if r.Error != nil {
			return fmt.Errorf("ping %d: %w", i, r.Error)
		}
		out.line(fmt.Sprintf("pong %d from %s rtt=%.3f ms", i, id, float64(r.RTT.Microseconds())/1000))
	}
	return nil
}

// Asks for identify on a stream of its own, so the answer is exactly what the
// remote sent (the host's own identify on connect keeps no observed address per peer).
func cmdIdentify(ctx context.Context, h host.Host, target string, _ options) error {
	id, err := connect(ctx, h, target)
	if err != nil {
		return err
	}
	s, err := h.NewStream(network.WithAllowLimitedConn(ctx, "identify"), id, identifyProto)
	if err != nil {
		return err
	}
	defer s.Close()
	var m idpb.Identify
	if err := pbio.NewDelimitedReader(s, identifyMaxSize).ReadMsg(&m); err != nil {
		return fmt.Errorf("reading identify: %w", err)
	}
	addrs := []string{}
	for _, b := range m.ListenAddrs {
		if a, err := ma.NewMultiaddrBytes(b); err == nil {
			addrs = append(addrs, a.String())
		}
	}
	var observed any
	if a, err := ma.NewMultiaddrBytes(m.ObservedAddr); err == nil && len(m.ObservedAddr) > 0 {
		observed = a.String()
	}
	var agent, proto any
	if m.AgentVersion != nil {
		agent = *m.AgentVersion
	}
	if m.ProtocolVersion != nil {
		proto = *m.ProtocolVersion
	}
	protocols := m.Protocols
	if protocols == nil {
		protocols = []string{}
	}
	out.emit(map[string]any{
		"peer":            id.String(),
		"agentVersion":    agent,
		"protocolVersion": proto,
		"protocols":       protocols,
		"listenAddrs":     addrs,
		"observedAddr":    observed,
	})
	return nil
}

// ---- main --------------------------------------------------------------------

func runClient(name string, fn func(context.Context, host.Host, string, options) error, o options) int {
	if len(o.pos) != 1 {
		fatalUsage("exactly one <multiaddr> is required")
	}
	timeoutS, err := o.uint("timeout", 120)
	if err != nil {
		fatalUsage(err.Error())
	}
	h, err := makeHost(hostOptions{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "go-peer: %v\n", err)
		return 1
	}
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(timeoutS)*time.Second)
	defer cancel()
	if err := fn(ctx, h, o.pos[0], o); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fatalUsage(ue.msg)
		}
		fmt.Fprintf(os.Stderr, "go-peer: %s %s failed: %v\n", name, o.pos[0], err)
		if ctx.Err() != nil {
			return 3
		}
		return 1
	}
	return 0
}

func fatalUsage(msg string) {
	fmt.Fprintf(os.Stderr, "go-peer: %s\n%s\n", msg, usage)
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		fatalUsage("missing subcommand")
	}
	cmd := os.Args[1]
	o, err := parseArgs(os.Args[2:])
	if err != nil {
		fatalUsage(err.Error())
	}
	switch cmd {
	case "ping":
		os.Exit(runClient(cmd, cmdPing, o))
	case "identify":
		os.Exit(runClient(cmd, cmdIdentify, o))
	case "transport-interop":
		os.Exit(cmdTransportInterop())
	}
	var run func(options) error
	switch cmd {
	case "listen":
		run = cmdListen
	case "gossip":
		run = cmdGossip
	case "dht":
		run = cmdDht
	default:
		fatalUsage("unknown subcommand " + cmd)
	}
	if err := run(o); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fatalUsage(ue.msg)
		}
		fmt.Fprintf(os.Stderr, "go-peer: %s: %v\n", cmd, err)
		os.Exit(1)
	}
	os.Exit(0)
}
