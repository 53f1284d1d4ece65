package caddymodule

// Cluster tests: two real Caddy processes (this test binary re-executed
// as `caddy run`, each with its own admin endpoint and ports) sharing one
// real etcd (Debian's etcd-server, see clientstore/etcdtest). What has to
// reach the other node is polled for, never slept for, with a deadline
// (etcdtest.Propagation) that only a failure reaches; the time it took is
// logged.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/gatehousehq/gatehouse/clientstore"
	"github.com/gatehousehq/gatehouse/clientstore/etcdtest"
)

// childConfigEnv makes the test binary run Caddy with the named Caddyfile
// instead of the tests.
const childConfigEnv = "GATEHOUSE_TEST_CADDY_CONFIG"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(childConfigEnv); cfg != "" {
		os.Args = []string{"caddy", "run", "--config", cfg, "--adapter", "caddyfile"}
		caddycmd.Main()
		return
	}
	os.Exit(m.Run())
}

// clusterIssuer is the same on every node: tokens and JWTs of one node are
// the cluster's.
const clusterIssuer = "https://auth.cluster.test"

// caddyNode is one Caddy process.
type caddyNode struct {
	t     *testing.T
	name  string
	admin string // http://127.0.0.1:port
	base  string // the site: gatehouse_server, and /api/* protected
	cmd   *exec.Cmd
	dir   string
}

// startNode runs Caddy with gatehouse on storage (the lines of the
// storage option) and waits until its health check answers 200.
func startCaddyNode(t *testing.T, name string, storage ...string) *caddyNode {
	t.Helper()
	return startCaddyNodeReady(t, name, adminHealthPath, storage...)
}

// startCaddyNodeReady is startCaddyNode waiting for 200 from the admin
// API's ready path instead.
func startCaddyNodeReady(t *testing.T, name, ready string, storage ...string) *caddyNode {
	t.Helper()
	n := &caddyNode{t: t, name: name, dir: t.TempDir()}
	adminPort, httpPort := etcdtest.FreePort(t), etcdtest.FreePort(t)
	n.admin = fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	n.base = fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	caddyfile := fmt.Sprintf(`{
	admin 127.0.0.1:%d
	http_port %d
	https_port %d
	persist_config off
	gatehouse {
		%s
		issuer %s
		token_ttl 1h
	}
}
http://127.0.0.1:%d {
	bind 127.0.0.1
	handle /api/* {
		gatehouse_protect {
			scope orders:read
		}
		respond "ok {gatehouse.client_id}"
	}
	gatehouse_server
}
`, adminPort, httpPort, etcdtest.FreePort(t), strings.Join(storage, "\n\t\t"), clusterIssuer, httpPort)
	n.cmd = startCaddyChild(t, n.dir, caddyfile, n.admin+ready)
	t.Cleanup(func() {
		n.stop()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(n.dir, "caddy.log"))
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			t.Logf("log of node %s:\n%s", name, b)
		}
	})
	return n
}

// startCaddyChild runs this test binary as a Caddy process (see TestMain)
// on caddyfile, with its home, data, config and caddy.log in dir, and
// waits until health answers 200. The child dies with the test process.
func startCaddyChild(tb testing.TB, dir, caddyfile, health string) *exec.Cmd {
	tb.Helper()
	return startCaddyBinary(tb, "", dir, caddyfile, health)
}

// startCaddyBinary is startCaddyChild with a Caddy binary of its own (the
// README's build, say) instead of this test binary, if bin is not "".
func startCaddyBinary(tb testing.TB, bin, dir, caddyfile, health string) *exec.Cmd {
	tb.Helper()
	cfg := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cfg, []byte(caddyfile), 0o600); err != nil {
		tb.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "caddy.log"))
	if err != nil {
		tb.Fatal(err)
	}
	defer log.Close()
	self, err := os.Executable() // not os.Args[0]: other tests of the package run caddy commands that change it
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(self)
	if bin != "" {
		cmd = exec.Command(bin, "run", "--config", cfg, "--adapter", "caddyfile")
	}
	cmd.Env = append(os.Environ(), childConfigEnv+"="+cfg, "HOME="+dir,
		"XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	cmd.Stdout, cmd.Stderr = log, log
	etcdtest.DieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(health)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return cmd
			}
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_, _ = cmd.Process.Wait()
			b, _ := os.ReadFile(log.Name())
			tb.Fatalf("caddy in %s not up within 30s (last: %v); its log:\n%s", dir, err, b[max(0, len(b)-6000):])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (n *caddyNode) stop() {
	if n.cmd != nil && n.cmd.Process != nil {
		_ = n.cmd.Process.Kill()
		_, _ = n.cmd.Process.Wait()
		n.cmd = nil
	}
}

func etcdStorage(endpoint, prefix string) []string {
	return []string{"storage etcd {", "\tendpoints " + endpoint, "\tprefix " + prefix, "\tdial_timeout 2s", "\trequest_timeout 1s", "}"}
}

func (n *caddyNode) do(method, url, contentType, body string, header http.Header) (int, []byte, http.Header) {
	n.t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		n.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		n.t.Fatalf("node %s: %s %s: %v", n.name, method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

func (n *caddyNode) adminCall(method, path, body string, header http.Header) (int, []byte, http.Header) {
	n.t.Helper()
	return n.do(method, n.admin+path, "application/json", body, header)
}

// create makes a client through this node's admin API.
func (n *caddyNode) create(body string) createdClientJSON {
	n.t.Helper()
	status, b, _ := n.adminCall(http.MethodPost, adminClientsPath, body, nil)
	if status != http.StatusCreated {
		n.t.Fatalf("node %s: create client: %d %s", n.name, status, b)
	}
	var c createdClientJSON
	if err := json.Unmarshal(b, &c); err != nil {
		n.t.Fatal(err)
	}
	return c
}

// token asks this node's token endpoint; it returns the status and the
// access token (if any).
func (n *caddyNode) token(c createdClientJSON) (int, string) {
	n.t.Helper()
	status, b, _ := n.do(http.MethodPost, n.base+pathToken, "application/x-www-form-urlencoded",
		"grant_type=client_credentials", http.Header{"Authorization": {basicAuthz(c.ClientID, c.ClientSecret)}})
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.Unmarshal(b, &tok)
	return status, tok.AccessToken
}

func (n *caddyNode) mustToken(c createdClientJSON) string {
	n.t.Helper()
	status, tok := n.token(c)
	if status != 200 || tok == "" {
		n.t.Fatalf("node %s: token for %s: status %d, want 200", n.name, c.ClientID, status)
	}
	return tok
}

// api calls the protected route with tok and returns the status.
func (n *caddyNode) api(tok string) int {
	n.t.Helper()
	status, _, _ := n.do(http.MethodGet, n.base+"/api/orders", "", "", http.Header{"Authorization": {"Bearer " + tok}})
	return status
}

func (n *caddyNode) jwks() string {
	n.t.Helper()
	status, b, _ := n.do(http.MethodGet, n.base+pathJWKS, "", "", nil)
	if status != 200 {
		n.t.Fatalf("node %s: JWKS %d", n.name, status)
	}
	return string(b)
}

func (n *caddyNode) health() (int, healthReport) {
	n.t.Helper()
	status, b, _ := n.adminCall(http.MethodGet, adminHealthPath, "", nil)
	var h healthReport
	if err := json.Unmarshal(b, &h); err != nil {
		n.t.Fatalf("node %s: health: %d %s", n.name, status, b)
	}
	return status, h
}

// within polls cond until it holds, failing after d, and says how long it took.
func within(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	t.Logf("%s after %v", what, etcdtest.Within(t, d, what, cond))
}

const clusterClient = `{"scope":"orders:read","audience":["https://api.cluster.test"]}`

func TestClusterOfTwoNodes(t *testing.T) {
	srv := etcdtest.Start(t)
	proxy := etcdtest.NewProxy(t, srv.Endpoint) // B reaches etcd through it: cut to take B alone off
	a := startCaddyNode(t, "A", etcdStorage(srv.Endpoint, "/cluster/")...)
	b := startCaddyNode(t, "B", etcdStorage(proxy.URL(), "/cluster/")...)

	c := a.create(clusterClient)
	t.Run("created on A, token from B", func(t *testing.T) {
		var tok string
		within(t, etcdtest.Propagation, "client created on A usable on B", func() bool {
			status, tk := b.token(c)
			tok = tk
			return status == 200
		})
		if a.api(tok) != 200 || b.api(tok) != 200 {
			t.Fatal("a token minted on B is not accepted on both nodes")
		}
	})

	t.Run("revoked on A, refused on B (RFC 7009)", func(t *testing.T) {
		tok := b.mustToken(c)
		if b.api(tok) != 200 {
			t.Fatal("fresh token refused on B")
		}
		form := url.Values{"token": {tok}}.Encode()
		status, body, _ := a.do(http.MethodPost, a.base+pathRevoke, "application/x-www-form-urlencoded", form,
			http.Header{"Authorization": {basicAuthz(c.ClientID, c.ClientSecret)}})
		if status != 200 {
			t.Fatalf("revoke on A: %d %s", status, body)
		}
		within(t, etcdtest.Propagation, "revocation on A in force on B", func() bool { return b.api(tok) == 401 })
	})

	t.Run("disabled on B, refused on A", func(t *testing.T) {
		d := a.create(clusterClient)
		tok := a.mustToken(d)
		status, body, _ := b.adminCall(http.MethodPatch, clientPath(d.ClientID), `{"disabled":true}`, nil)
		if status != 200 {
			t.Fatalf("disable on B: %d %s", status, body)
		}
		within(t, etcdtest.Propagation, "client disabled on B refused on A", func() bool { return a.api(tok) == 401 })
		if status, _ := a.token(d); status == 200 {
			t.Error("A still issues tokens to a client disabled on B")
		}
	})

	t.Run("ETags are cluster-wide: If-Match stops a stale write on the other node", func(t *testing.T) {
		status, _, h := a.adminCall(http.MethodGet, clientPath(c.ClientID), "", nil)
		if status != 200 {
			t.Fatal(status)
		}
		etag := h.Get("ETag")
		if status, body, _ := b.adminCall(http.MethodPatch, clientPath(c.ClientID), `{"owner":"b"}`, http.Header{"If-Match": {etag}}); status != 200 {
			t.Fatalf("PATCH on B with the current ETag: %d %s", status, body)
		}
		// A may not have seen B's write yet: its memory check or etcd's
		// transaction refuses the old ETag either way.
		if status, body, _ := a.adminCall(http.MethodPatch, clientPath(c.ClientID), `{"owner":"a"}`, http.Header{"If-Match": {etag}}); status != http.StatusPreconditionFailed {
			t.Fatalf("PATCH on A with the ETag B already used: %d %s, want 412", status, body)
		}
	})

	t.Run("rotated keys: JWKS identical on both, old and new tokens valid", func(t *testing.T) {
		before := a.mustToken(c)
		oldJWKS := a.jwks()
		status, body, _ := a.adminCall(http.MethodPost, adminRotatePath, "", nil)
		if status != 200 {
			t.Fatalf("rotate on A: %d %s", status, body)
		}
		var rot struct {
			Kid  string   `json:"signing_kid"`
			Kids []string `json:"jwks_kids"`
		}
		if err := json.Unmarshal(body, &rot); err != nil || len(rot.Kids) != 2 {
			t.Fatalf("rotation answer %s: want the new and the previous kid", body)
		}
		within(t, etcdtest.Propagation, "B publishes the rotated JWKS", func() bool { return b.jwks() == a.jwks() })
		if a.jwks() == oldJWKS || !strings.Contains(a.jwks(), rot.Kids[1]) || !strings.Contains(a.jwks(), rot.Kid) {
			t.Fatalf("JWKS after rotation %s, want the new kid %s and the previous %s", a.jwks(), rot.Kid, rot.Kids[1])
		}
		after := b.mustToken(c)
		for name, tok := range map[string]string{"before": before, "after": after} {
			if a.api(tok) != 200 || b.api(tok) != 200 {
				t.Errorf("token minted %s the rotation refused on a node", name)
			}
		}
	})

	t.Run("B cut off, etcd compacted: B serves from memory, then resyncs", func(t *testing.T) {
		tok := b.mustToken(c)
		proxy.Cut()
		late := a.create(clusterClient)
		victim := a.mustToken(c)
		if status, _, _ := a.do(http.MethodPost, a.base+pathRevoke, "application/x-www-form-urlencoded", url.Values{"token": {victim}}.Encode(),
			http.Header{"Authorization": {basicAuthz(c.ClientID, c.ClientSecret)}}); status != 200 {
			t.Fatalf("revoke on A: %d", status)
		}
		srv.Compact()
		if b.api(tok) != 200 {
			t.Error("B stopped serving a valid token while cut off from etcd")
		}
		if status, body, _ := b.adminCall(http.MethodPost, adminClientsPath, clusterClient, nil); status != http.StatusServiceUnavailable {
			t.Errorf("admin write on the cut-off node: %d %s, want 503", status, body)
		}
		within(t, 30*time.Second, "B reports its view stale", func() bool { status, _ := b.health(); return status == 503 })
		_, before := b.health()

		proxy.Restore()
		within(t, 30*time.Second, "B catches up after the compaction", func() bool {
			status, _ := b.token(late)
			return status == 200 && b.api(victim) == 401
		})
		within(t, 30*time.Second, "B healthy again", func() bool { status, _ := b.health(); return status == 200 })
		if _, h := b.health(); h.Resyncs <= before.Resyncs {
			t.Errorf("resyncs %d, want more than %d after a compaction", h.Resyncs, before.Resyncs)
		}
	})

	t.Run("etcd down: both serve from memory, writes 503; back: converge", func(t *testing.T) {
		tok := a.mustToken(c)
		srv.Stop()
		for _, n := range []*caddyNode{a, b} {
			if n.api(tok) != 200 {
				t.Errorf("node %s: protected route refused a valid token while etcd is down", n.name)
			}
			if status, _ := n.token(c); status != 200 {
				t.Errorf("node %s: token issuance failed while etcd is down (%d)", n.name, status)
			}
			status, body, _ := n.adminCall(http.MethodPost, adminClientsPath, clusterClient, nil)
			if status != http.StatusServiceUnavailable || !strings.Contains(string(body), "storage is unavailable") {
				t.Errorf("node %s: admin write with etcd down: %d %s, want 503 naming the storage", n.name, status, body)
			}
			status, body, _ = n.do(http.MethodPost, n.base+pathRevoke, "application/x-www-form-urlencoded", url.Values{"token": {tok}}.Encode(),
				http.Header{"Authorization": {basicAuthz(c.ClientID, c.ClientSecret)}})
			if status != http.StatusServiceUnavailable || !strings.Contains(string(body), "temporarily_unavailable") {
				t.Errorf("node %s: revocation with etcd down: %d %s, want 503 temporarily_unavailable", n.name, status, body)
			}
		}
		within(t, 30*time.Second, "both report stale views", func() bool {
			sa, _ := a.health()
			sb, _ := b.health()
			return sa == 503 && sb == 503
		})

		srv.Restart()
		var e createdClientJSON
		within(t, 30*time.Second, "admin writes work again", func() bool {
			status, body, _ := a.adminCall(http.MethodPost, adminClientsPath, clusterClient, nil)
			if status == http.StatusCreated {
				_ = json.Unmarshal(body, &e)
			}
			return status == http.StatusCreated
		})
		within(t, 30*time.Second, "B converges", func() bool { status, _ := b.token(e); return status == 200 })
		within(t, 30*time.Second, "both healthy", func() bool {
			sa, _ := a.health()
			sb, _ := b.health()
			return sa == 200 && sb == 200
		})
		if a.api(tok) != 200 {
			t.Error("a token the outage could not revoke must still be valid")
		}
	})
}

// Moving a single node to a cluster, as the README documents it: back up
// the bbolt node, restore the file into the etcd cluster; tokens minted
// on the single node stay valid on every cluster node, and so do secrets.
func TestMigrateBoltToEtcd(t *testing.T) {
	srv := etcdtest.Start(t)
	single := startCaddyNode(t, "single", "storage bolt "+filepath.Join(t.TempDir(), "gatehouse.db"))
	c := single.create(clusterClient)
	jwtClient := single.create(`{"scope":"orders:read","access_token_strategy":"jwt"}`)
	tok, jwtTok := single.mustToken(c), single.mustToken(jwtClient)
	revoked := single.mustToken(c)
	if status, _, _ := single.do(http.MethodPost, single.base+pathRevoke, "application/x-www-form-urlencoded", url.Values{"token": {revoked}}.Encode(),
		http.Header{"Authorization": {basicAuthz(c.ClientID, c.ClientSecret)}}); status != 200 {
		t.Fatal("revoke on the single node")
	}
	backup := filepath.Join(t.TempDir(), "single.db")
	if out, errOut, err := runCLI(t, "", "backup", backup, "--admin", strings.TrimPrefix(single.admin, "http://")); err != nil {
		t.Fatalf("caddy gatehouse backup: %v\n%s%s", err, out, errOut)
	}
	single.stop()

	a := startCaddyNode(t, "A", etcdStorage(srv.Endpoint, "/migrated/")...)
	b := startCaddyNode(t, "B", etcdStorage(srv.Endpoint, "/migrated/")...)
	out, errOut, err := runCLI(t, "", "restore", backup, "--admin", strings.TrimPrefix(a.admin, "http://"))
	if err != nil {
		t.Fatalf("caddy gatehouse restore: %v\n%s%s", err, out, errOut)
	}
	if !strings.Contains(out, "2 clients") {
		t.Errorf("restore output %q, want it to count 2 clients", out)
	}
	for _, n := range []*caddyNode{a, b} {
		within(t, etcdtest.Propagation, "node "+n.name+" has the restored state", func() bool {
			return n.api(tok) == 200 && n.api(jwtTok) == 200 && n.api(revoked) == 401
		})
		if status, _ := n.token(c); status != 200 {
			t.Errorf("node %s: the migrated client's secret does not work (%d)", n.name, status)
		}
	}
	// A second restore would overwrite live clients: refused.
	if _, _, err := runCLI(t, "", "restore", backup, "--admin", strings.TrimPrefix(a.admin, "http://")); err == nil || !strings.Contains(err.Error(), "409") {
		t.Errorf("second restore: %v, want 409", err)
	}
	// The cluster's backup is a bbolt file with the same content.
	var buf bytes.Buffer
	status, body, _ := b.adminCall(http.MethodGet, adminBackupPath, "", nil)
	buf.Write(body)
	path := filepath.Join(t.TempDir(), "cluster.db")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil || status != 200 {
		t.Fatalf("backup of the cluster: %d %v", status, err)
	}
	if info, err := clientstore.InspectBackup(path); err != nil || info.Clients != 2 {
		t.Fatalf("cluster backup: %+v, %v; want a bbolt store with 2 clients", info, err)
	}
}
