//go:build unix

package clientstore

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperDBEnv tells the test binary, re-executed as a child process, to run
// TestHelperProcessWriter against the bbolt file it names.
const helperDBEnv = "GATEHOUSE_HELPER_DB"

// TestHelperProcessWriter is not a test of its own: it is the child side of
// TestCreateSurvivesKill. Without helperDBEnv it does nothing.
func TestHelperProcessWriter(t *testing.T) {
	path := os.Getenv(helperDBEnv)
	if path == "" {
		return
	}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	store, err := OpenBolt(path, time.Second)
	if err != nil {
		fail(err)
	}
	c, err := NewCache(ctx, store)
	if err != nil {
		fail(err)
	}
	_, secret, err := c.Create(ctx, &Client{ID: "durable", Scope: "read"})
	if err != nil {
		fail(err)
	}
	// os.Stdout is unbuffered: once the parent reads ACK, Create has
	// returned.
	fmt.Printf("SECRET %s\nACK\n", secret)
	// Block until killed. Reading stdin (rather than select{}) also ends
	// the child if the parent dies without killing it.
	_, _ = io.Copy(io.Discard, os.Stdin)
	os.Exit(3)
}

// An acknowledged Create survives the process being killed with SIGKILL:
// no Close, no deferred flush, nothing but what bbolt committed.
func TestCreateSurvivesKill(t *testing.T) {
	path := testDBPath(t)

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcessWriter$", "-test.count=1", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), helperDBEnv+"="+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting helper: %v", err)
	}
	waited := false
	t.Cleanup(func() {
		stdin.Close()
		if !waited {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})

	// Read until ACK; EOF first means the child failed.
	var secret string
	acked := false
	sc := bufio.NewScanner(stdout)
	for !acked && sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "SECRET "):
			secret = strings.TrimPrefix(line, "SECRET ")
		case line == "ACK":
			acked = true
		}
	}
	if !acked {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		waited = true
		t.Fatalf("helper exited without ACK (scan error %v); stderr:\n%s", sc.Err(), stderr.String())
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatalf("killing helper: %v", err)
	}
	_ = cmd.Wait()
	waited = true
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("helper ended with %v, want it killed by SIGKILL while holding the store open; stderr:\n%s",
			cmd.ProcessState, stderr.String())
	}

	s := openTestBolt(t, path)
	c, err := NewCache(context.Background(), s)
	if err != nil {
		t.Fatalf("NewCache after kill = %v", err)
	}
	got, ok := c.Get("durable")
	if !ok {
		t.Fatal("client acknowledged before SIGKILL is missing after reopen")
	}
	if got.Scope != "read" || got.Generation == 0 {
		t.Errorf("client after kill = scope %q generation %d, want %q and a generation", got.Scope, got.Generation, "read")
	}
	if _, ok := c.Authenticate("durable", secret); !ok {
		t.Error("secret acknowledged before SIGKILL does not authenticate after reopen")
	}
}
