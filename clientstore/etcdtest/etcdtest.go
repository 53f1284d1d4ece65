// Package etcdtest runs a real etcd server for tests: Debian's etcd-server
// (/usr/bin/etcd) on loopback ports, with its data in a test's temporary
// directory, killed when the test ends. Without the binary a test is
// skipped, unless GATEHOUSE_REQUIRE_ETCD=1 (CI), where it fails. It also
// has a TCP proxy that tests cut to take one node off etcd.
package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// RequireEnv names the variable that turns a missing etcd binary from a
// skip into a failure.
const RequireEnv = "GATEHOUSE_REQUIRE_ETCD"

// Binary finds the etcd server binary: $GATEHOUSE_ETCD_BIN, else etcd in
// PATH, else /usr/bin/etcd.
func Binary() string {
	if p := os.Getenv("GATEHOUSE_ETCD_BIN"); p != "" {
		return p
	}
	if p, err := exec.LookPath("etcd"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/etcd"); err == nil {
		return "/usr/bin/etcd"
	}
	return ""
}

// Server is one etcd member on loopback.
type Server struct {
	t          testing.TB
	bin, dir   string
	clientPort int
	peerPort   int
	// Endpoint is the client URL, http://127.0.0.1:<port>.
	Endpoint string

	mu  sync.Mutex
	cmd *exec.Cmd
	log *os.File
}

// Start starts etcd with an empty data directory and waits until it is
// healthy. It is stopped when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary()
	if bin == "" {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("etcd binary not found and %s=1: install Debian's etcd-server (apt-get install -y etcd-server)", RequireEnv)
		}
		t.Skipf("etcd binary not found (install etcd-server, or set GATEHOUSE_ETCD_BIN); %s=1 makes this a failure", RequireEnv)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // a free port can be taken between picking and binding
		s := &Server{t: t, bin: bin, dir: t.TempDir(), clientPort: FreePort(t), peerPort: FreePort(t)}
		s.Endpoint = fmt.Sprintf("http://127.0.0.1:%d", s.clientPort)
		if lastErr = s.start(); lastErr == nil {
			t.Cleanup(s.Stop)
			return s
		}
		s.Stop()
	}
	t.Fatalf("starting etcd: %v", lastErr)
	return nil
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	peer := fmt.Sprintf("http://127.0.0.1:%d", s.peerPort)
	log, err := os.OpenFile(filepath.Join(s.dir, "etcd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin,
		"--name", "gatehouse-test",
		"--data-dir", filepath.Join(s.dir, "data"),
		"--listen-client-urls", s.Endpoint, "--advertise-client-urls", s.Endpoint,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "gatehouse-test="+peer, "--initial-cluster-state", "new",
		"--logger", "zap", "--log-outputs", "stderr",
	)
	cmd.Stdout, cmd.Stderr = log, log
	DieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		log.Close()
		return err
	}
	s.cmd, s.log = cmd, log
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			s.cmd = nil
			return fmt.Errorf("etcd exited: %v; log:\n%s", err, s.logTail())
		default:
		}
		if s.healthy() {
			go func() { <-exited }()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("etcd not healthy after 30s; log:\n%s", s.logTail())
}

func (s *Server) healthy() bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(s.Endpoint + "/health")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode == 200 && strings.Contains(string(b), `"health":"true"`)
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "etcd.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Stop kills etcd (SIGKILL: as abrupt as a crash or a cut cable) and
// waits until its client port refuses connections.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	for i := 0; i < 200; i++ {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.clientPort), 100*time.Millisecond)
		if err != nil {
			break
		}
		c.Close()
		time.Sleep(10 * time.Millisecond)
	}
	s.cmd = nil
	s.log.Close()
}

// Restart starts etcd again on the same ports and data after Stop.
func (s *Server) Restart() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("restarting etcd: %v", err)
	}
}

// Client returns a client of this server, closed when the test ends.
func (s *Server) Client() *clientv3.Client {
	s.t.Helper()
	return ClientFor(s.t, s.Endpoint)
}

// ClientFor returns an etcd client for endpoint, closed when the test
// ends.
func ClientFor(t testing.TB, endpoint string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Compact compacts etcd's history up to the current revision, so that a
// watcher behind it can no longer resume, and returns that revision.
func (s *Server) Compact() int64 {
	s.t.Helper()
	cli := s.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A write, so the compacted revision is past anything a watcher saw.
	resp, err := cli.Put(ctx, "/etcdtest/compact-marker", time.Now().String())
	if err != nil {
		s.t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		s.t.Fatalf("compacting etcd: %v", err)
	}
	return resp.Header.Revision
}

// Proxy forwards TCP connections to a target; Cut takes it (and so one
// node) off the target and Restore brings it back, on the same address.
type Proxy struct {
	t      testing.TB
	target string
	// Addr is where the proxy listens, 127.0.0.1:<port>.
	Addr string

	mu    sync.Mutex
	l     net.Listener
	conns map[net.Conn]struct{}
}

// NewProxy starts a proxy to target (host:port), stopped when the test
// ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p := &Proxy{t: t, target: strings.TrimPrefix(target, "http://"), conns: map[net.Conn]struct{}{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.Addr = l.Addr().String()
	p.serve(l)
	t.Cleanup(p.Cut)
	return p
}

// URL is the proxy's address as an etcd endpoint.
func (p *Proxy) URL() string { return "http://" + p.Addr }

func (p *Proxy) serve(l net.Listener) {
	p.l = l
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
}

func (p *Proxy) forward(c net.Conn) {
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.l == nil { // cut meanwhile
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	c.Close()
	up.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// Cut closes the listener and every connection: the node behind the proxy
// sees etcd as unreachable.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.l != nil {
		p.l.Close()
		p.l = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// Restore listens again on the same address.
func (p *Proxy) Restore() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.l != nil {
		return
	}
	var l net.Listener
	var err error
	for i := 0; i < 100; i++ {
		if l, err = net.Listen("tcp", p.Addr); err == nil || !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatalf("proxy: listening again on %s: %v", p.Addr, err)
	}
	p.serve(l)
}

// Propagation bounds how long a test lets a change made on one node take
// to be in force on another. Nodes converge in milliseconds (the watch
// delivers the change); the bound has slack for a loaded two-core machine
// running the race detector, and is reached only when a test fails. Tests
// log how long it took.
const Propagation = 10 * time.Second

// Within polls cond every 10 ms until it holds and returns how long that
// took, failing t if it still does not hold after d.
func Within(t testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}
