package caddymodule

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// adminTimeout bounds one admin API call (backups are not bounded: they
// stream as long as the file is).
const adminTimeout = time.Minute

// adminClient talks to Caddy's admin API over TCP or a unix socket, as
// caddycmd.AdminAPIRequest does, keeping error bodies readable.
type adminClient struct {
	base   string // scheme://host used in URLs
	http   *http.Client
	addr   string // for messages
	origin string // Origin header; none over a unix socket, as caddy's own commands do
}

func newAdminClient(cmd *cobra.Command) (*adminClient, error) {
	f := cmd.Flags()
	addr, _ := f.GetString("admin")
	cfg, _ := f.GetString("config")
	adapter, _ := f.GetString("adapter")
	addr, err := caddycmd.DetermineAdminAPIAddress(addr, nil, cfg, adapter)
	if err != nil {
		return nil, fmt.Errorf("finding the admin API: %w", err)
	}
	na, err := caddy.ParseNetworkAddress(addr)
	if err != nil || na.PortRangeSize() > 1 || na.IsFdNetwork() {
		return nil, fmt.Errorf("admin address %q: not one TCP address or unix socket", addr)
	}
	network, dial := na.Network, na.JoinHostPort(0)
	base, origin := "http://"+dial, "http://"+dial
	if na.IsUnixNetwork() {
		dial, _, _ = strings.Cut(dial, "|") // drop the socket's permission bits
		base, origin = "http://127.0.0.1", ""
	}
	transport := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, dial)
		},
	}
	return &adminClient{base: base, addr: addr, origin: origin, http: &http.Client{Transport: transport, Timeout: adminTimeout}}, nil
}

// open sends a request and returns the response of a 2xx answer, else an
// error carrying the server's message.
func (a *adminClient) open(method, path string, body io.Reader, h http.Header) (*http.Response, error) {
	req, err := http.NewRequest(method, a.base+path, body)
	if err != nil {
		return nil, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.origin != "" {
		req.Header.Set("Origin", a.origin)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin API: %w (is Caddy running with its admin endpoint at %s?)", err, a.addr)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct {
		Error string `json:"error"`
	}
	msg := strings.TrimSpace(string(b))
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	return nil, fmt.Errorf("%s %s: HTTP %d %s: %s", method, path, resp.StatusCode, http.StatusText(resp.StatusCode), msg)
}

// call is open for small JSON answers.
func (a *adminClient) call(method, path string, body io.Reader, h http.Header) (*http.Response, []byte, error) {
	resp, err := a.open(method, path, body, h)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}
