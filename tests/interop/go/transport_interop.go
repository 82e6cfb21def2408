// go-peer transport-interop: the ping test of libp2p/test-plans transport-interop,
// configured by the framework's environment variables (transport, security, muxer,
// is_dialer, ip, redis_addr, test_timeout_seconds). tcp/noise/yamux only. The two redis
// commands it needs (RPUSH, BLPOP) go over a minimal RESP client: no redis module.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

const listenerAddrKey = "listenerAddr"

// ---- a minimal RESP (redis) client ------------------------------------------------

type redisConn struct {
	c net.Conn
	r *bufio.Reader
}

// Retries until ctx ends: the framework starts redis and both peers at once.
func dialRedis(ctx context.Context, addr string) (*redisConn, error) {
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			return &redisConn{c: c, r: bufio.NewReader(c)}, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("redis at %s: %w", addr, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Sends one command and reads its reply: an int64, a string, nil or a []any of those.
func (r *redisConn) do(deadline time.Time, args ...string) (any, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	r.c.SetDeadline(deadline)
	if _, err := r.c.Write([]byte(b.String())); err != nil {
		return nil, err
	}
	return r.reply()
}

func (r *redisConn) line() (string, error) {
	l, err := r.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	if len(l) < 3 || !strings.HasSuffix(l, "\r\n") {
		return "", fmt.Errorf("redis: malformed line %q", l)
	}
	return l[:len(l)-2], nil
}

func (r *redisConn) reply() (any, error) {
	l, err := r.line()
	if err != nil {
		return nil, err
	}
	body := l[1:]
	switch l[0] {
	case '+':
		return body, nil
	case '-':
		return nil, errors.New("redis: " + body)
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$', '*':
		n, err := strconv.Atoi(body)
		if err != nil || n < -1 || n > 1<<20 {
			return nil, fmt.Errorf("redis: bad length %q", body)
		}
		if n == -1 {
			return nil, nil
		}
		if l[0] == '$' {
			buf := make([]byte, n+2)
			if _, err := io.ReadFull(r.r, buf); err != nil {
				return nil, err
			}
			return string(buf[:n]), nil
		}
		items := make([]any, n)
		for i := range items {
			if items[i], err = r.reply(); err != nil {
				return nil, err
			}
		}
		return items, nil
	}
	return nil, fmt.Errorf("redis: unknown reply %q", l)
}

// ---- the test ---------------------------------------------------------------------

type interopConfig struct {
	dialer    bool
	ip        string
	redisAddr string
	timeout   time.Duration
}

func interopConfigFromEnv() (interopConfig, error) {
	for name, want := range map[string]string{"transport": "tcp", "security": "noise", "muxer": "yamux"} {
		if got := os.Getenv(name); got != want {
			return interopConfig{}, fmt.Errorf("%s=%q is not supported (go-peer supports %s=%s only)", name, got, name, want)
		}
	}
	c := interopConfig{ip: "0.0.0.0", redisAddr: "redis:6379", timeout: 180 * time.Second}
	switch d := os.Getenv("is_dialer"); d {
	case "true", "false":
		c.dialer = d == "true"
	default:
		return c, fmt.Errorf("is_dialer=%q must be true or false", d)
	}
	if v := os.Getenv("ip"); v != "" {
		c.ip = v
	}
	if v := os.Getenv("redis_addr"); v != "" {
		c.redisAddr = v
	}
	if v := os.Getenv("test_timeout_seconds"); v != "" {
		s, err := strconv.Atoi(v)
		if err != nil || s <= 0 {
			return c, fmt.Errorf("test_timeout_seconds=%q must be a positive integer", v)
		}
		c.timeout = time.Duration(s) * time.Second
	}
	return c, nil
}

// Exit status: 0 done, 1 failed or timed out, 2 bad environment.
func cmdTransportInterop() int {
	cfg, err := interopConfigFromEnv()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go-peer: transport-interop: %v\n", err)
		return 2
	}
	deadline := time.Now().Add(cfg.timeout)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	rc, err := dialRedis(ctx, cfg.redisAddr)
	if err != nil {
		logf("transport-interop: %v", err)
		return 1
	}
	defer rc.c.Close()
	if cfg.dialer {
		err = interopDial(ctx, rc, deadline)
	} else {
		err = interopListen(ctx, rc, cfg, deadline)
	}
	if err != nil {
		logf("transport-interop: %v", err)
		return 1
	}
	return 0
}

func interopDial(ctx context.Context, rc *redisConn, deadline time.Time) error {
	wait := int(time.Until(deadline).Seconds())
	if wait < 1 {
		wait = 1
	}
	v, err := rc.do(deadline.Add(5*time.Second), "BLPOP", listenerAddrKey, strconv.Itoa(wait))
	if err != nil {
		return fmt.Errorf("waiting for the listener: %w", err)
	}
	pair, ok := v.([]any)
	if !ok || len(pair) != 2 {
		return fmt.Errorf("no %s within %d s", listenerAddrKey, wait)
	}
	target, ok := pair[1].(string)
	if !ok {
		return errors.New("redis: unexpected BLPOP reply")
	}
	m, err := ma.NewMultiaddr(target)
	if err != nil {
		return fmt.Errorf("listener address %q: %w", target, err)
	}
	ai, err := peer.AddrInfoFromP2pAddr(m)
	if err != nil {
		return fmt.Errorf("listener address %q: %w", target, err)
	}
	h, err := makeHost(hostOptions{})
	if err != nil {
		return err
	}
	defer h.Close()
	logf("transport-interop: dialing %s", target)
	start := time.Now() // handshakeStartInstant
	if err := h.Connect(ctx, *ai); err != nil {
		return fmt.Errorf("dial %s: %w", target, err)
	}
	pctx, pcancel := context.WithCancel(ctx)
	res := <-ping.Ping(pctx, h, ai.ID)
	pcancel()
	if res.Error != nil {
		return fmt.Errorf("ping %s: %w", target, res.Error)
	}
	total := time.Since(start)
	result, _ := json.Marshal(map[string]float64{
		"handshakePlusOneRTTMillis": float64(total.Microseconds()) / 1000,
		"pingRTTMilllis":            float64(res.RTT.Microseconds()) / 1000, // the framework's three l's
	})
	out.line(string(result))
	return nil
}

func interopListen(ctx context.Context, rc *redisConn, cfg interopConfig, deadline time.Time) error {
	// the framework's SIGTERM may come as soon as the address is out: catch it from now on
	sctx, stop := signalContext()
	defer stop()
	family := "ip4"
	if strings.Contains(cfg.ip, ":") {
		family = "ip6"
	}
	h, err := makeHost(hostOptions{listen: []string{fmt.Sprintf("/%s/%s/tcp/0", family, cfg.ip)}})
	if err != nil {
		return err
	}
	defer h.Close()
	addrs := h.Addrs()
	if len(addrs) == 0 {
		return errors.New("no listen address")
	}
	// a non-loopback address first (what a peer in another container can dial)
	chosen := addrs[0]
	for _, a := range addrs {
		if !manet.IsIPLoopback(a) {
			chosen = a
			break
		}
	}
	announced := fmt.Sprintf("%s/p2p/%s", chosen, h.ID())
	if _, err := rc.do(deadline, "RPUSH", listenerAddrKey, announced); err != nil {
		return fmt.Errorf("publishing %s: %w", announced, err)
	}
	logf("transport-interop: listening on %s", announced)
	// the framework ends the listener once the dialer is done: SIGTERM is a clean end,
	// the test timeout a failure
	select {
	case <-sctx.Done():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("listener not done after test_timeout_seconds=%d", int(cfg.timeout.Seconds()))
	}
}
