package introspection

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore"
	"golang.org/x/crypto/chacha20poly1305"
)

// TokenPrefix starts every Gatehouse access token, so secret scanners and
// humans can recognize one. The rest is base64url without padding.
const TokenPrefix = "gat_"

// MaxTokenLength bounds what the codec even tries to decode.
const MaxTokenLength = 4096

const (
	tokenVersion = 1
	headerLen    = 1 + 4 // version, key id
	nonceLen     = chacha20poly1305.NonceSizeX
	minSealedLen = headerLen + nonceLen + chacha20poly1305.Overhead
)

var strictB64 = base64.RawURLEncoding.Strict()

// sealKeysName names the token-sealing key ring in the store.
const sealKeysName = "token-seal-keys"

// Errors of token checks. They say why a token was refused, for logs and
// metrics; clients only ever learn "invalid_token".
var (
	// ErrInvalidToken is wrapped by every reason below: the token is not
	// good for any request (RFC 6750 §3.1 invalid_token).
	ErrInvalidToken = errors.New("invalid token")

	ErrMalformed     = fmt.Errorf("%w: malformed", ErrInvalidToken)
	ErrUnknownKey    = fmt.Errorf("%w: sealed under an unknown key", ErrInvalidToken)
	ErrTampered      = fmt.Errorf("%w: failed authentication", ErrInvalidToken)
	ErrExpired       = fmt.Errorf("%w: expired", ErrInvalidToken)
	ErrRevoked       = fmt.Errorf("%w: revoked", ErrInvalidToken)
	ErrUnknownClient = fmt.Errorf("%w: its client does not exist", ErrInvalidToken)
	ErrDisabled      = fmt.Errorf("%w: its client is disabled", ErrInvalidToken)
)

// Claims are what an access token carries, sealed (encrypted and
// authenticated) so that holders cannot read or alter them.
type Claims struct {
	ClientID   string
	Generation uint64 // the client's generation at issuance
	Scope      string
	Audience   []string
	IssuedAt   int64 // Unix seconds
	ExpiresAt  int64 // Unix seconds
	ID         TokenID
}

// TokenID identifies one token: the first 16 bytes of its random nonce.
type TokenID [16]byte

// String is the token's jti.
func (id TokenID) String() string { return base64.RawURLEncoding.EncodeToString(id[:]) }

// ParseTokenID parses a jti made by TokenID.String.
func ParseTokenID(s string) (TokenID, bool) {
	var id TokenID
	if len(s) != base64.RawURLEncoding.EncodedLen(len(id)) {
		return id, false
	}
	n, err := strictB64.Decode(id[:], []byte(s))
	return id, err == nil && n == len(id)
}

// sealKey is one token-sealing key of the ring.
type sealKey struct {
	ID      uint32    `json:"id"`
	Key     []byte    `json:"key"`
	Created time.Time `json:"created"`
}

// Sealer mints and opens access tokens with XChaCha20-Poly1305. The key id
// travels in the clear inside the token so keys can rotate: tokens sealed
// under an older key of the ring still open. The ring can change while the
// Sealer serves (a rotation here or on another node): readers load it with
// one atomic read.
type Sealer struct {
	ring atomic.Pointer[sealRing]
	bufs sync.Pool
}

// sealRing is one version of the key ring.
type sealRing struct {
	active uint32
	keys   map[uint32]sealKeyAEAD
	list   []sealKey
	raw    []byte // as stored
}

type sealKeyAEAD struct {
	aead interface {
		Seal(dst, nonce, plaintext, additionalData []byte) []byte
		Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error)
	}
}

// LoadSealer loads the token-sealing key ring from store, creating it on
// first start. Tokens therefore survive restarts.
func LoadSealer(ctx context.Context, store clientstore.Store) (*Sealer, error) {
	raw, err := store.LoadOrCreateKey(ctx, sealKeysName, func() ([]byte, error) {
		k, err := newSealKey(time.Now())
		if err != nil {
			return nil, err
		}
		return json.Marshal([]sealKey{k})
	})
	if err != nil {
		return nil, err
	}
	s := newEmptySealer()
	return s, s.SetRing(raw)
}

func newSealKey(now time.Time) (sealKey, error) {
	k := sealKey{Key: make([]byte, chacha20poly1305.KeySize), Created: now.UTC()}
	var id [4]byte
	if _, err := rand.Read(id[:]); err != nil {
		return k, err
	}
	k.ID = binary.BigEndian.Uint32(id[:])
	_, err := rand.Read(k.Key)
	return k, err
}

func newEmptySealer() *Sealer {
	s := &Sealer{}
	s.bufs.New = func() any { b := make([]byte, 0, 512); return &b }
	return s
}

func newSealer(ring []sealKey) (*Sealer, error) {
	raw, err := json.Marshal(ring)
	if err != nil {
		return nil, err
	}
	s := newEmptySealer()
	return s, s.SetRing(raw)
}

// SetRing switches to the key ring stored as raw: on load, after a
// rotation, and when the store reports that another node rotated.
func (s *Sealer) SetRing(raw []byte) error {
	var list []sealKey
	if err := json.Unmarshal(raw, &list); err != nil || len(list) == 0 {
		return fmt.Errorf("token-sealing keys unreadable: %v", err)
	}
	r := &sealRing{keys: make(map[uint32]sealKeyAEAD, len(list)), list: list, raw: raw}
	var newest time.Time
	for i, k := range list {
		aead, err := chacha20poly1305.NewX(k.Key)
		if err != nil {
			return fmt.Errorf("token-sealing key %d: %w", k.ID, err)
		}
		r.keys[k.ID] = sealKeyAEAD{aead: aead}
		if i == 0 || k.Created.After(newest) {
			r.active, newest = k.ID, k.Created
		}
	}
	s.ring.Store(r)
	return nil
}

// activeID is the id of the key new tokens are sealed under.
func (s *Sealer) activeID() uint32 { return s.ring.Load().active }

// KeyIDs lists the ids of the ring's keys, the active one first.
func (s *Sealer) KeyIDs() []uint32 {
	r := s.ring.Load()
	ids := []uint32{r.active}
	for _, k := range r.list {
		if k.ID != r.active {
			ids = append(ids, k.ID)
		}
	}
	return ids
}

// Seal mints the token string for c. c.ID is set from the fresh nonce.
func (s *Sealer) Seal(c *Claims) (string, error) {
	ring := s.ring.Load()
	var hdr [headerLen + nonceLen]byte
	hdr[0] = tokenVersion
	binary.BigEndian.PutUint32(hdr[1:5], ring.active)
	nonce := hdr[headerLen:]
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	copy(c.ID[:], nonce)

	plain := appendClaims(make([]byte, 0, 128), c)
	sealed := ring.keys[ring.active].aead.Seal(append([]byte(nil), hdr[:]...), nonce, plain, hdr[:headerLen])
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(sealed), nil
}

// Open authenticates and decrypts a token. It checks integrity only; the
// caller judges expiry, revocation and the client.
func (s *Sealer) Open(token string) (Claims, error) {
	body, ok := strings.CutPrefix(token, TokenPrefix)
	if !ok || len(token) > MaxTokenLength {
		return Claims{}, ErrMalformed
	}
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	n := base64.RawURLEncoding.DecodedLen(len(body))
	buf := (*bp)[:0]
	if cap(buf) < 2*n {
		buf = make([]byte, 0, 2*n)
		*bp = buf
	}
	raw := buf[:n]
	// Strict decoding, and no skipped CR/LF: exactly one spelling of a
	// token opens, so anything keyed by the token string is sound.
	if m, err := strictB64.Decode(raw, []byte(body)); err != nil || m != n || n < minSealedLen ||
		base64.RawURLEncoding.EncodedLen(m) != len(body) {
		return Claims{}, ErrMalformed
	}
	if raw[0] != tokenVersion {
		return Claims{}, ErrMalformed
	}
	key, ok := s.ring.Load().keys[binary.BigEndian.Uint32(raw[1:5])]
	if !ok {
		return Claims{}, ErrUnknownKey
	}
	nonce := raw[headerLen : headerLen+nonceLen]
	plain, err := key.aead.Open(buf[n:n], nonce, raw[headerLen+nonceLen:], raw[:headerLen])
	if err != nil {
		return Claims{}, ErrTampered
	}
	c, err := parseClaims(plain)
	if err != nil {
		return Claims{}, ErrMalformed
	}
	copy(c.ID[:], nonce)
	return c, nil
}

// The sealed payload: uvarint generation, varint iat, varint exp, then
// length-prefixed client id and scope, a count and the audiences.
func appendClaims(b []byte, c *Claims) []byte {
	b = binary.AppendUvarint(b, c.Generation)
	b = binary.AppendVarint(b, c.IssuedAt)
	b = binary.AppendVarint(b, c.ExpiresAt)
	b = appendString(b, c.ClientID)
	b = appendString(b, c.Scope)
	b = binary.AppendUvarint(b, uint64(len(c.Audience)))
	for _, a := range c.Audience {
		b = appendString(b, a)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

var errShort = errors.New("short claims")

func parseClaims(b []byte) (Claims, error) {
	var c Claims
	var n int
	if c.Generation, n = binary.Uvarint(b); n <= 0 {
		return c, errShort
	}
	b = b[n:]
	if c.IssuedAt, n = binary.Varint(b); n <= 0 {
		return c, errShort
	}
	b = b[n:]
	if c.ExpiresAt, n = binary.Varint(b); n <= 0 {
		return c, errShort
	}
	b = b[n:]
	var err error
	if c.ClientID, b, err = readString(b); err != nil {
		return c, err
	}
	if c.Scope, b, err = readString(b); err != nil {
		return c, err
	}
	count, n := binary.Uvarint(b)
	if n <= 0 || count > clientstore.MaxAudiences {
		return c, errShort
	}
	b = b[n:]
	if count > 0 {
		c.Audience = make([]string, count)
		for i := range c.Audience {
			if c.Audience[i], b, err = readString(b); err != nil {
				return c, err
			}
		}
	}
	if len(b) != 0 {
		return c, errors.New("trailing bytes")
	}
	return c, nil
}

func readString(b []byte) (string, []byte, error) {
	l, n := binary.Uvarint(b)
	if n <= 0 || l > uint64(len(b)-n) {
		return "", nil, errShort
	}
	return string(b[n : n+int(l)]), b[n+int(l):], nil
}
