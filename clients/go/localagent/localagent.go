// Package localagent starts `p2pmq agent` processes on loopback for tests and examples: each
// with OS-chosen ports, its output kept in a log, ended by pid on Stop.
package localagent

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Agent is a running `p2pmq agent`.
type Agent struct {
	Name        string
	GRPCAddress string // host:port of its gRPC API
	Addr        string // its first libp2p listen multiaddr, with /p2p/PEERID
	PeerID      string
	LogPath     string

	cmd    *exec.Cmd
	log    *os.File
	exited chan struct{}
}

// FastGossip makes small test networks converge quickly.
var FastGossip = []string{"--gossip", "heartbeat_interval=200ms", "--gossip", "heartbeat_initial_delay=100ms"}

var (
	grpcLine   = regexp.MustCompile(`^grpc (\S+:\d+)$`)
	listenLine = regexp.MustCompile(`^listening (\S+/p2p/(\S+))$`)
)

// Start runs `bin agent --listen /ip4/127.0.0.1/tcp/0 --grpc 127.0.0.1:0 extra...` in dir (its
// log is dir/NAME.log) and returns once the agent printed its gRPC and listen addresses, or
// fails when startTimeout passes first.
func Start(bin, name, dir string, startTimeout time.Duration, extra ...string) (*Agent, error) {
	// The agent runs in dir: a relative bin must not be resolved from there.
	if strings.Contains(bin, "/") {
		abs, err := filepath.Abs(bin)
		if err != nil {
			return nil, err
		}
		bin = abs
	}
	logPath := filepath.Join(dir, name+".log")
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	args := append([]string{"agent", "--listen", "/ip4/127.0.0.1/tcp/0", "--grpc", "127.0.0.1:0"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	fmt.Fprintf(log, "$ %s %s\n", bin, strings.Join(args, " "))
	out, err := cmd.StdoutPipe()
	if err != nil {
		log.Close()
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	a := &Agent{Name: name, LogPath: logPath, cmd: cmd, log: log, exited: make(chan struct{})}

	ready := make(chan struct{})
	var once sync.Once
	go func() { // copies the output into the log, noting the addresses on the way
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(log, line)
			if m := grpcLine.FindStringSubmatch(line); m != nil && a.GRPCAddress == "" {
				a.GRPCAddress = m[1]
			} else if m := listenLine.FindStringSubmatch(line); m != nil && a.Addr == "" {
				a.Addr, a.PeerID = m[1], m[2]
			}
			if a.GRPCAddress != "" && a.Addr != "" {
				once.Do(func() { close(ready) })
			}
		}
		_, _ = io.Copy(log, out)
		_ = cmd.Wait()
		close(a.exited)
	}()
	select {
	case <-ready:
		return a, nil
	case <-a.exited:
		a.log.Close()
		return nil, fmt.Errorf("%s exited before printing its addresses (log %s)", name, logPath)
	case <-time.After(startTimeout):
		a.Stop()
		return nil, fmt.Errorf("%s printed no addresses within %v (log %s)", name, startTimeout, logPath)
	}
}

// Stop sends SIGTERM, then SIGKILL after 15 s, and waits for the process.
func (a *Agent) Stop() {
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.exited:
	case <-time.After(15 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.exited
	}
	a.log.Close()
}

// WaitFor polls cond every 50 ms until it returns true or ctx ends (returning ctx's error).
func WaitFor(ctx context.Context, cond func() bool) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}
