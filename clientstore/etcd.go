package clientstore

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// Defaults of EtcdConfig.
const (
	DefaultEtcdPrefix         = "/gatehouse/"
	DefaultEtcdDialTimeout    = 5 * time.Second
	DefaultEtcdRequestTimeout = 5 * time.Second
	DefaultEtcdHeartbeat      = 500 * time.Millisecond
)

// Key layout under the prefix. Every Gatehouse key lives under one of
// these, so several deployments share an etcd with different prefixes.
const (
	etcdMeta        = "meta/"
	etcdClients     = "clients/"
	etcdKeys        = "keys/"
	etcdRevocations = "revocations/"
)

// etcdPageSize bounds one range read of a snapshot or listing, so a large
// store never needs one huge gRPC message.
const etcdPageSize = 500

// etcdMaxTxnOps stays under etcd's default --max-txn-ops (128).
const etcdMaxTxnOps = 100

// EtcdConfig says how to reach etcd and where Gatehouse's keys live.
type EtcdConfig struct {
	Endpoints []string
	// Prefix of every key, normalized to end with "/". Default
	// DefaultEtcdPrefix.
	Prefix   string
	Username string
	Password string
	// TLS for https endpoints (nil: plain http endpoints, or the system
	// roots when an endpoint is https).
	TLS *tls.Config
	// DialTimeout bounds connecting; RequestTimeout bounds every read and
	// write, after which it fails with ErrUnavailable.
	DialTimeout    time.Duration
	RequestTimeout time.Duration
	// Heartbeat is how often a quiet watch asks etcd to confirm that the
	// view is current (progress notification). Default 500ms.
	Heartbeat time.Duration
	// Logger receives the etcd client's own errors (nil: none).
	Logger *zap.Logger
}

// EtcdStore is the etcd implementation of Store, for several Gatehouse
// nodes sharing clients, keys and revocations. Records are the same JSON
// as BoltStore's; a client's Revision is its key's mod revision, so
// conditional writes are transactions comparing it, and a Watcher reports
// every change to every node.
type EtcdStore struct {
	cli       *clientv3.Client
	prefix    string
	endpoints []string
	timeout   time.Duration
	heartbeat time.Duration
}

// NormalizeEtcdPrefix returns the prefix as EtcdStore uses it: default
// DefaultEtcdPrefix, always ending with "/" so that "/a" never shares keys
// with "/ab".
func NormalizeEtcdPrefix(p string) string {
	if p == "" {
		return DefaultEtcdPrefix
	}
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p
}

// OpenEtcd connects to etcd and checks (or records) the schema version
// under the prefix. It fails if etcd cannot be reached within the dial and
// request timeouts (see NewEtcd and ReadSnapshotFile for starting without).
func OpenEtcd(ctx context.Context, cfg EtcdConfig) (*EtcdStore, error) {
	s, err := NewEtcd(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.Init(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// NewEtcd returns a store on etcd without contacting it: Init checks the
// schema when etcd answers. A node starting from its local snapshot while
// etcd is unreachable needs the store for its watch and later writes.
func NewEtcd(cfg EtcdConfig) (*EtcdStore, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("etcd: no endpoints")
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultEtcdDialTimeout
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultEtcdRequestTimeout
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultEtcdHeartbeat
	}
	tlsCfg := cfg.TLS
	for _, ep := range cfg.Endpoints {
		if strings.HasPrefix(ep, "https://") && tlsCfg == nil {
			tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = zap.NewNop()
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            cfg.Endpoints,
		Username:             cfg.Username,
		Password:             cfg.Password,
		TLS:                  tlsCfg,
		DialTimeout:          cfg.DialTimeout,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		Logger:               logger,
		DialOptions: []grpc.DialOption{
			// Reconnect within a second or two after etcd comes back,
			// instead of gRPC's default backoff of up to two minutes.
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
				MinConnectTimeout: cfg.DialTimeout,
			}),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("etcd %v: %w", cfg.Endpoints, err)
	}
	return &EtcdStore{
		cli: cli, prefix: NormalizeEtcdPrefix(cfg.Prefix), endpoints: cfg.Endpoints,
		timeout: cfg.RequestTimeout, heartbeat: cfg.Heartbeat,
	}, nil
}

// Init records the schema version under the prefix, or refuses data
// written by a newer Gatehouse; ErrUnavailable if etcd does not answer.
func (s *EtcdStore) Init(ctx context.Context) error {
	key := s.prefix + etcdMeta + "schema_version"
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, strconv.Itoa(SchemaVersion))).
		Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return s.fail("connecting", err)
	}
	if resp.Succeeded {
		return nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 1 {
		got, err := strconv.Atoi(string(kvs[0].Value))
		if err != nil {
			return fmt.Errorf("etcd %s: unreadable schema version %q", key, kvs[0].Value)
		}
		if got > SchemaVersion {
			return fmt.Errorf("etcd %s: schema version %d is newer than this Gatehouse supports (%d)", key, got, SchemaVersion)
		}
	}
	return nil
}

// Prefix is the key prefix of this store.
func (s *EtcdStore) Prefix() string { return s.prefix }

// Endpoints are the etcd endpoints of this store.
func (s *EtcdStore) Endpoints() []string { return s.endpoints }

// Client is the etcd client (tests use it to compact and inspect).
func (s *EtcdStore) Client() *clientv3.Client { return s.cli }

// Close closes the connection to etcd.
func (s *EtcdStore) Close() error { return s.cli.Close() }

func (s *EtcdStore) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// fail wraps an etcd error: a caller's own cancellation stays what it is,
// everything else (timeouts, no connection, no leader, auth) means the
// store cannot be used now.
func (s *EtcdStore) fail(what string, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%w: etcd %s: %s: %v", ErrUnavailable, strings.Join(s.endpoints, ","), what, err)
}

func (s *EtcdStore) clientKey(id string) string { return s.prefix + etcdClients + id }

// putClient writes c in one transaction whose condition is the existence
// and revision check, so no other writer can come between them.
func (s *EtcdStore) putClient(ctx context.Context, c *Client, mustExist bool, rev uint64) error {
	key := s.clientKey(c.ID)
	stored := *c
	stored.Revision = 0 // the key's mod revision is the revision
	val, err := encodeClient(&stored)
	if err != nil {
		return err
	}
	var cmp clientv3.Cmp
	switch {
	case !mustExist:
		cmp = clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
	case rev != 0:
		cmp = clientv3.Compare(clientv3.ModRevision(key), "=", int64(rev))
	default:
		cmp = clientv3.Compare(clientv3.CreateRevision(key), ">", 0)
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, string(val))).
		Else(clientv3.OpGet(key, clientv3.WithKeysOnly())).Commit()
	if err != nil {
		return s.fail("writing client "+c.ID, err)
	}
	if !resp.Succeeded {
		exists := len(resp.Responses[0].GetResponseRange().Kvs) > 0
		switch {
		case !mustExist:
			return ErrExists
		case !exists:
			return ErrNotFound
		default:
			return ErrRevisionMismatch
		}
	}
	c.Revision = uint64(resp.Header.Revision)
	return nil
}

// CreateClient implements Store.
func (s *EtcdStore) CreateClient(ctx context.Context, c *Client) error {
	return s.putClient(ctx, c, false, 0)
}

// UpdateClient implements Store.
func (s *EtcdStore) UpdateClient(ctx context.Context, c *Client) error {
	return s.putClient(ctx, c, true, 0)
}

// UpdateClientIf implements Store.
func (s *EtcdStore) UpdateClientIf(ctx context.Context, c *Client, rev uint64) error {
	return s.putClient(ctx, c, true, rev)
}

// DeleteClient implements Store.
func (s *EtcdStore) DeleteClient(ctx context.Context, id string) error {
	return s.DeleteClientIf(ctx, id, 0)
}

// DeleteClientIf implements Store.
func (s *EtcdStore) DeleteClientIf(ctx context.Context, id string, rev uint64) error {
	key := s.clientKey(id)
	cmp := clientv3.Compare(clientv3.CreateRevision(key), ">", 0)
	if rev != 0 {
		cmp = clientv3.Compare(clientv3.ModRevision(key), "=", int64(rev))
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Txn(ctx).If(cmp).Then(clientv3.OpDelete(key)).
		Else(clientv3.OpGet(key, clientv3.WithKeysOnly())).Commit()
	if err != nil {
		return s.fail("deleting client "+id, err)
	}
	if !resp.Succeeded {
		if len(resp.Responses[0].GetResponseRange().Kvs) == 0 {
			return ErrNotFound
		}
		return ErrRevisionMismatch
	}
	return nil
}

func decodeEtcdClient(kv *mvccpb.KeyValue) (*Client, error) {
	c, err := decodeClient(kv.Value)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kv.Key, err)
	}
	c.Revision = uint64(kv.ModRevision)
	return c, nil
}

// GetClient implements Store.
func (s *EtcdStore) GetClient(ctx context.Context, id string) (*Client, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.clientKey(id))
	if err != nil {
		return nil, s.fail("reading client "+id, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, ErrNotFound
	}
	return decodeEtcdClient(resp.Kvs[0])
}

// forRange calls fn for every key with the given prefix, in key order,
// page by page, all pages at the revision of the first (0: the current
// one). It returns that revision.
func (s *EtcdStore) forRange(ctx context.Context, prefix string, rev int64, fn func(*mvccpb.KeyValue) error) (int64, error) {
	end := clientv3.GetPrefixRangeEnd(prefix)
	from := prefix
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(etcdPageSize)}
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		rctx, cancel := s.ctx(ctx)
		resp, err := s.cli.Get(rctx, from, opts...)
		cancel()
		if err != nil {
			return 0, s.fail("reading "+prefix, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			if err := fn(kv); err != nil {
				return 0, err
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return rev, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// ForEachClient implements Store.
func (s *EtcdStore) ForEachClient(ctx context.Context, fn func(*Client) error) error {
	_, err := s.forRange(ctx, s.prefix+etcdClients, 0, func(kv *mvccpb.KeyValue) error {
		c, err := decodeEtcdClient(kv)
		if err != nil {
			return err
		}
		return fn(c)
	})
	return err
}

// LoadOrCreateKey implements Store: create-if-absent in one transaction,
// so of several nodes starting at once exactly one key is created and all
// of them use it.
func (s *EtcdStore) LoadOrCreateKey(ctx context.Context, name string, create func() ([]byte, error)) ([]byte, error) {
	key := s.prefix + etcdKeys + name
	rctx, cancel := s.ctx(ctx)
	resp, err := s.cli.Get(rctx, key)
	cancel()
	if err != nil {
		return nil, s.fail("reading key "+name, err)
	}
	if len(resp.Kvs) == 1 {
		return resp.Kvs[0].Value, nil
	}
	fresh, err := create()
	if err != nil {
		return nil, fmt.Errorf("creating key %s: %w", name, err)
	}
	wctx, cancel := s.ctx(ctx)
	defer cancel()
	tx, err := s.cli.Txn(wctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(fresh))).
		Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return nil, s.fail("creating key "+name, err)
	}
	if tx.Succeeded {
		return fresh, nil
	}
	kvs := tx.Responses[0].GetResponseRange().Kvs
	if len(kvs) != 1 {
		return nil, fmt.Errorf("key %s: created and deleted meanwhile", name)
	}
	return kvs[0].Value, nil // another node was first: use its key
}

// SwapKey implements Store.
func (s *EtcdStore) SwapKey(ctx context.Context, name string, old, next []byte) error {
	key := s.prefix + etcdKeys + name
	cmp := clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
	if old != nil {
		cmp = clientv3.Compare(clientv3.Value(key), "=", string(old))
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, string(next))).Commit()
	if err != nil {
		return s.fail("writing key "+name, err)
	}
	if !resp.Succeeded {
		return ErrKeyChanged
	}
	return nil
}

// Revoke implements Store. Revocations carry their expiry (8 bytes, as in
// bbolt) and are pruned by PruneRevocations; no lease per token.
func (s *EtcdStore) Revoke(ctx context.Context, tokenID string, until time.Time) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	if _, err := s.cli.Put(ctx, s.prefix+etcdRevocations+tokenID, string(encodeUntil(until))); err != nil {
		return s.fail("recording a revocation", err)
	}
	return nil
}

// RecordOnce implements OnceRecorder across the cluster: created only if
// absent, or overwritten only if expired and unchanged since read, so two
// nodes can never both record the same unexpired id.
func (s *EtcdStore) RecordOnce(ctx context.Context, id string, until, now time.Time) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	key := s.prefix + etcdRevocations + id
	val := string(encodeUntil(until))
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, val)).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return s.fail("recording a one-time id", err)
	}
	if resp.Succeeded {
		return nil
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	if len(kvs) == 0 {
		return ErrUsed // deleted meanwhile by a prune: someone else's race; refuse
	}
	if old, ok := decodeUntil(kvs[0].Value); ok && !old.Before(now) {
		return ErrUsed
	}
	resp, err = s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", kvs[0].ModRevision)).
		Then(clientv3.OpPut(key, val)).
		Commit()
	if err != nil {
		return s.fail("recording a one-time id", err)
	}
	if !resp.Succeeded {
		return ErrUsed
	}
	return nil
}

// ForEachRevocation implements Store.
func (s *EtcdStore) ForEachRevocation(ctx context.Context, fn func(string, time.Time) error) error {
	p := s.prefix + etcdRevocations
	_, err := s.forRange(ctx, p, 0, func(kv *mvccpb.KeyValue) error {
		until, ok := decodeUntil(kv.Value)
		if !ok {
			return nil
		}
		return fn(strings.TrimPrefix(string(kv.Key), p), until)
	})
	return err
}

// PruneRevocations implements Store. Each delete is conditional on the
// revocation being unchanged, so a revocation renewed meanwhile by
// another node stays; several nodes pruning at once do no harm.
func (s *EtcdStore) PruneRevocations(ctx context.Context, now time.Time) error {
	var ops []clientv3.Op
	var cmps []clientv3.Cmp
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		// One transaction per expired key would be many round trips; one
		// for a batch fails as a whole if any key changed, which is rare:
		// then the batch waits for the next prune.
		tctx, cancel := s.ctx(ctx)
		defer cancel()
		_, err := s.cli.Txn(tctx).If(cmps...).Then(ops...).Commit()
		ops, cmps = ops[:0], cmps[:0]
		if err != nil {
			return s.fail("pruning revocations", err)
		}
		return nil
	}
	_, err := s.forRange(ctx, s.prefix+etcdRevocations, 0, func(kv *mvccpb.KeyValue) error {
		if until, ok := decodeUntil(kv.Value); ok && until.Unix() < now.Unix() {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision))
			ops = append(ops, clientv3.OpDelete(string(kv.Key)))
			if len(ops) == etcdMaxTxnOps {
				return flush()
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

// Snapshot implements Snapshotter: every page is read at the revision of
// the first, so clients, keys and revocations are of one instant.
func (s *EtcdStore) Snapshot(ctx context.Context) (*Snapshot, error) {
	snap := &Snapshot{Keys: map[string][]byte{}, Revocations: map[string]time.Time{}}
	rev, err := s.forRange(ctx, s.prefix, 0, func(kv *mvccpb.KeyValue) error {
		ch, ok, err := s.change(kv, mvccpb.PUT)
		if err != nil || !ok {
			return err
		}
		switch ch.Kind {
		case ClientPut:
			snap.Clients = append(snap.Clients, ch.Client)
		case KeyPut:
			snap.Keys[ch.Name] = ch.Value
		case RevocationPut:
			snap.Revocations[ch.Name] = ch.Until
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	snap.Revision = rev
	return snap, nil
}

// change turns one etcd key-value (or deletion) under the prefix into a
// Change; ok is false for keys that are not data (meta) or not ours.
func (s *EtcdStore) change(kv *mvccpb.KeyValue, typ mvccpb.Event_EventType) (Change, bool, error) {
	rest, ok := strings.CutPrefix(string(kv.Key), s.prefix)
	if !ok {
		return Change{}, false, nil
	}
	del := typ == mvccpb.DELETE
	ch := Change{Revision: kv.ModRevision}
	switch {
	case strings.HasPrefix(rest, etcdClients):
		ch.Name = rest[len(etcdClients):]
		if del {
			ch.Kind = ClientDeleted
			return ch, true, nil
		}
		c, err := decodeEtcdClient(kv)
		if err != nil {
			return ch, false, err
		}
		ch.Kind, ch.Client = ClientPut, c
	case strings.HasPrefix(rest, etcdKeys):
		if del {
			return ch, false, nil // keys are never deleted; nothing to forget
		}
		ch.Kind, ch.Name, ch.Value = KeyPut, rest[len(etcdKeys):], bytes.Clone(kv.Value)
	case strings.HasPrefix(rest, etcdRevocations):
		ch.Name = rest[len(etcdRevocations):]
		if del {
			ch.Kind = RevocationDeleted
			return ch, true, nil
		}
		until, ok := decodeUntil(kv.Value)
		if !ok {
			return ch, false, nil
		}
		ch.Kind, ch.Until = RevocationPut, until
	default:
		return ch, false, nil
	}
	return ch, true, nil
}

// Watch implements Watcher with one etcd watch over the prefix. While the
// watch is quiet it asks etcd for a progress notification every heartbeat,
// so that fn hears, at least that often, that the view is current; only
// when quiet, because etcd servers before 3.4.24/3.5.8 may send a
// requested progress notification ahead of events still queued. The etcd
// client resumes a broken watch by itself from the last revision it
// delivered; if etcd has compacted that revision away, Watch fails with
// ErrCompacted.
func (s *EtcdStore) Watch(ctx context.Context, from int64, fn func(WatchBatch)) error {
	// WithRequireLeader: a member cut off from its cluster's leader ends
	// the watch instead of serving a view that silently stopped moving.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := s.cli.Watch(wctx, s.prefix, clientv3.WithPrefix(), clientv3.WithRev(from), clientv3.WithCreatedNotify())
	tick := time.NewTicker(s.heartbeat)
	defer tick.Stop()
	last := time.Now()
	seen := from - 1
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if time.Since(last) >= s.heartbeat {
				go func() {
					pctx, cancel := context.WithTimeout(wctx, s.heartbeat)
					defer cancel()
					_ = s.cli.RequestProgress(pctx) // best effort: silence shows as staleness
				}()
			}
		case resp, ok := <-wch:
			if !ok {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return errors.New("etcd watch closed")
			}
			if resp.CompactRevision != 0 {
				return fmt.Errorf("%w: etcd compacted to revision %d, past %d", ErrCompacted, resp.CompactRevision, seen+1)
			}
			if err := resp.Err(); err != nil {
				if errors.Is(err, rpctypes.ErrCompacted) {
					return fmt.Errorf("%w: %v", ErrCompacted, err)
				}
				return fmt.Errorf("etcd watch: %w", err)
			}
			if resp.Header.Revision < seen {
				// etcd restored from an older backup or replaced: what this
				// node knows is from another history.
				return fmt.Errorf("%w: etcd revision went back from %d to %d", ErrCompacted, seen, resp.Header.Revision)
			}
			last = time.Now()
			batch := WatchBatch{Revision: resp.Header.Revision}
			for _, ev := range resp.Events {
				ch, ok, err := s.change(ev.Kv, ev.Type)
				if err != nil {
					return err
				}
				seen = max(seen, ev.Kv.ModRevision)
				if ok {
					batch.Changes = append(batch.Changes, ch)
				}
			}
			seen = max(seen, resp.Header.Revision)
			fn(batch)
		}
	}
}

// Backup implements Backuper: a consistent snapshot (one etcd revision)
// written as a bbolt database file, so etcd backups inspect, restore and
// open like bbolt ones.
func (s *EtcdStore) Backup(w io.Writer, begin func(size int64)) (int64, error) {
	snap, err := s.Snapshot(context.Background())
	if err != nil {
		return 0, err
	}
	return writeBoltBackup(snap, w, begin)
}

// Interface guards.
var (
	_ Store        = (*EtcdStore)(nil)
	_ Watcher      = (*EtcdStore)(nil)
	_ Backuper     = (*EtcdStore)(nil)
	_ OnceRecorder = (*EtcdStore)(nil)
)
