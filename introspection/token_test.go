package introspection

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gatehousehq/gatehouse/clientstore"
)

// b64URLAlphabet is the alphabet of base64url, the token body's encoding.
const b64URLAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// testKey is deterministic key material for key id id.
func testKey(id uint32) []byte {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(int(id)*31 + i)
	}
	return key
}

// openNoPanic calls s.Open and turns a panic into a test failure that names
// the input.
func openNoPanic(t testing.TB, s *Sealer, tok string) (c Claims, err error) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("Open(%q) panicked: %v", tok, p)
		}
	}()
	return s.Open(tok)
}

// tokenKeyID returns the key id a token's header names.
func tokenKeyID(t testing.TB, tok string) uint32 {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(tok, TokenPrefix))
	if err != nil || len(raw) < headerLen {
		t.Fatalf("token %q does not decode to a header: %v", tok, err)
	}
	return binary.BigEndian.Uint32(raw[1:headerLen])
}

func TestSealOpenRoundTrip(t *testing.T) {
	s := testSealer(t, 7, fixedNow)
	many := make([]string, clientstore.MaxAudiences)
	for i := range many {
		many[i] = fmt.Sprintf("https://api%d.example.com", i)
	}
	tests := []struct {
		name   string
		claims Claims
	}{
		{"typical", Claims{
			ClientID: "svc-orders", Generation: 1, Scope: testScope,
			Audience: []string{testAudience}, IssuedAt: fixedNow.Unix(), ExpiresAt: fixedNow.Add(time.Hour).Unix(),
		}},
		{"no audience", Claims{ClientID: "a", Generation: 3, Scope: "x", IssuedAt: 1, ExpiresAt: 2}},
		{"empty scope", Claims{ClientID: "a", Generation: 1, Audience: []string{"aud"}, IssuedAt: 10, ExpiresAt: 20}},
		{"max audiences", Claims{ClientID: "c", Generation: 2, Scope: "s", Audience: many, IssuedAt: 5, ExpiresAt: 6}},
		{"extreme numbers", Claims{
			ClientID: strings.Repeat("i", clientstore.MaxIDLength), Generation: math.MaxUint64,
			Scope: strings.Repeat("s", 1000), Audience: []string{"a", "b"}, IssuedAt: math.MinInt64, ExpiresAt: math.MaxInt64,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.claims
			tok, err := s.Seal(&c)
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			if !strings.HasPrefix(tok, TokenPrefix) {
				t.Errorf("token %q does not start with %q", tok, TokenPrefix)
			}
			if c.ID == (TokenID{}) {
				t.Error("Seal left Claims.ID zero, want it set from the nonce")
			}
			got, err := s.Open(tok)
			if err != nil {
				t.Fatalf("Open of a freshly sealed token: %v", err)
			}
			if !reflect.DeepEqual(got, c) {
				t.Errorf("round trip changed the claims:\n got %+v\nwant %+v", got, c)
			}
		})
	}
}

func TestSealFreshNonceEachTime(t *testing.T) {
	s := testSealer(t, 7, fixedNow)
	c1 := Claims{ClientID: "a", Scope: "s", IssuedAt: 1, ExpiresAt: 2}
	c2 := c1
	t1, _ := s.Seal(&c1)
	t2, _ := s.Seal(&c2)
	if t1 == t2 {
		t.Error("two seals of the same claims gave the same token, want distinct tokens")
	}
	if c1.ID == c2.ID {
		t.Error("two seals of the same claims gave the same token id (jti), want distinct ids")
	}
}

// Access tokens are opaque to their holders (README, "How it works"):
// nothing the token carries can be read from it.
func TestTokenIsOpaque(t *testing.T) {
	e := newEnv(t)
	cl := e.newClient("svc-orders-reader")
	tok := e.issue(cl).AccessToken

	if !strings.HasPrefix(tok, TokenPrefix) {
		t.Fatalf("token %q does not start with %q", tok, TokenPrefix)
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(tok, TokenPrefix))
	if err != nil {
		t.Fatalf("token body is not base64url without padding: %v", err)
	}
	secrets := []string{cl.ID, "orders:read", "orders:write", testAudience, "api.example.com", "team-a"}
	for _, s := range secrets {
		if strings.Contains(tok, s) {
			t.Errorf("token text contains %q in clear", s)
		}
		if bytes.Contains(raw, []byte(s)) {
			t.Errorf("decoded token bytes contain %q in clear", s)
		}
	}
}

// Every change of one character of the body must be refused. The known
// exception (reported separately): base64url decoding is not strict, so
// changing only the unused low bits of the last character decodes to the
// very same bytes; such mutations are skipped here because they do not
// change what is authenticated.
func TestOpenRefusesEveryCharacterChange(t *testing.T) {
	s := testSealer(t, 7, fixedNow)
	// Client ids of different lengths give sealed lengths ≡ 0, 1, 2 mod 3,
	// so the last base64 character carries 0, 4 or 2 unused bits.
	for _, id := range []string{"a", "ab", "abc"} {
		c := Claims{ClientID: id, Generation: 1, Scope: "s", Audience: []string{"x"}, IssuedAt: 1, ExpiresAt: 2}
		tok, err := s.Seal(&c)
		if err != nil {
			t.Fatalf("Seal: %v", err)
		}
		body := tok[len(TokenPrefix):]
		orig, _ := base64.RawURLEncoding.DecodeString(body)
		tested := 0
		for i := 0; i < len(body); i++ {
			for _, r := range b64URLAlphabet {
				ch := byte(r)
				if ch == body[i] {
					continue
				}
				mutBody := body[:i] + string(ch) + body[i+1:]
				if dec, err := base64.RawURLEncoding.DecodeString(mutBody); err == nil && bytes.Equal(dec, orig) {
					continue // same bytes: only unused padding bits changed (see above)
				}
				tested++
				got, err := openNoPanic(t, s, TokenPrefix+mutBody)
				switch {
				case err == nil:
					t.Fatalf("client %q: changing body[%d] %q→%q was accepted (claims %+v), want ErrTampered or ErrMalformed",
						id, i, body[i], ch, got)
				case errors.Is(err, ErrTampered), errors.Is(err, ErrMalformed):
				case errors.Is(err, ErrUnknownKey) && i >= 1 && i <= 6:
					// Characters 1..6 carry the key id bytes 1..4.
				default:
					t.Fatalf("client %q: changing body[%d] %q→%q: got error %v, want ErrTampered or ErrMalformed", id, i, body[i], ch, err)
				}
			}
		}
		if tested < len(body)*60 {
			t.Errorf("client %q: only %d mutations tested, want nearly all %d", id, tested, len(body)*63)
		}
	}
}

// Exactly one spelling of a token opens: no slack in the last base64
// character's unused bits, no skipped CR/LF.
func TestOpenRefusesNonCanonicalEncodings(t *testing.T) {
	s := testSealer(t, 7, fixedNow)
	for _, id := range []string{"a", "ab", "abc"} {
		c := Claims{ClientID: id, Scope: "s", Audience: []string{"x"}, IssuedAt: 1, ExpiresAt: 2}
		tok, err := s.Seal(&c)
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range b64URLAlphabet {
			if mut := tok[:len(tok)-1] + string(ch); mut != tok {
				if _, err := s.Open(mut); err == nil {
					t.Errorf("client %q: last char %q→%q accepted", id, tok[len(tok)-1], ch)
				}
			}
		}
		for _, nl := range []string{"\n", "\r"} {
			if _, err := s.Open(tok[:10] + nl + tok[10:]); err == nil {
				t.Errorf("client %q: %q inserted accepted", id, nl)
			}
		}
	}
}

// sealedRaw builds a token from raw bytes: a header naming version and key
// id, then filler up to n bytes.
func sealedRaw(version byte, keyID uint32, n int) string {
	raw := make([]byte, n)
	raw[0] = version
	binary.BigEndian.PutUint32(raw[1:5], keyID)
	for i := headerLen; i < n; i++ {
		raw[i] = byte(i)
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
}

func TestOpenRefusesMalformed(t *testing.T) {
	const keyID = 7
	s := testSealer(t, keyID, fixedNow)
	c := Claims{ClientID: "svc", Generation: 1, Scope: "s", Audience: []string{"x"}, IssuedAt: 1, ExpiresAt: 2}
	valid, err := s.Seal(&c)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	body := valid[len(TokenPrefix):]
	// The largest token still within MaxTokenLength, and one past it.
	atLimit := sealedRaw(tokenVersion, keyID, (MaxTokenLength-len(TokenPrefix))/4*3)
	overLimit := sealedRaw(tokenVersion, keyID, (MaxTokenLength-len(TokenPrefix))/4*3+1)
	if len(atLimit) != MaxTokenLength || len(overLimit) <= MaxTokenLength {
		t.Fatalf("test set-up: token lengths %d and %d, want %d and more", len(atLimit), len(overLimit), MaxTokenLength)
	}

	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"empty", "", ErrMalformed},
		{"prefix only", TokenPrefix, ErrMalformed},
		{"prefix without underscore", "gat" + body, ErrMalformed},
		{"upper-case prefix", "GAT_" + body, ErrMalformed},
		{"wrong prefix", "ghp_" + body, ErrMalformed},
		{"no prefix", body, ErrMalformed},
		{"double prefix", TokenPrefix + valid, ErrMalformed},
		{"leading space", " " + valid, ErrMalformed},
		{"trailing space", valid + " ", ErrMalformed},
		{"padding appended", valid + "=", ErrMalformed},
		{"standard base64 characters", TokenPrefix + strings.NewReplacer("-", "+", "_", "/").Replace(body) + "+/", ErrMalformed},
		{"not base64", TokenPrefix + "!!!!****????", ErrMalformed},
		{"non-ASCII", TokenPrefix + "äöü" + body, ErrMalformed},
		{"NUL byte", TokenPrefix + "\x00" + body[1:], ErrMalformed},
		{"header only", sealedRaw(tokenVersion, keyID, headerLen), ErrMalformed},
		{"one byte short of minimum", sealedRaw(tokenVersion, keyID, minSealedLen-1), ErrMalformed},
		{"minimum length, forged", sealedRaw(tokenVersion, keyID, minSealedLen), ErrTampered},
		{"unknown version", sealedRaw(tokenVersion+1, keyID, 80), ErrMalformed},
		{"version zero", sealedRaw(0, keyID, 80), ErrMalformed},
		{"unknown key id", sealedRaw(tokenVersion, keyID+1, 80), ErrUnknownKey},
		{"exactly MaxTokenLength, forged", atLimit, ErrTampered},
		{"over MaxTokenLength", overLimit, ErrMalformed},
		{"far over MaxTokenLength", TokenPrefix + strings.Repeat(body, 1+MaxTokenLength/len(body)), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := openNoPanic(t, s, tt.token)
			if !errors.Is(err, tt.want) {
				t.Errorf("Open: got error %v, want %v", err, tt.want)
			}
		})
	}
}

func TestOpenRefusesTruncation(t *testing.T) {
	s := testSealer(t, 7, fixedNow)
	c := Claims{ClientID: "svc", Generation: 1, Scope: testScope, Audience: []string{testAudience}, IssuedAt: 1, ExpiresAt: 2}
	tok, err := s.Seal(&c)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	minBody := base64.RawURLEncoding.EncodedLen(minSealedLen)
	for n := 0; n < len(tok); n++ {
		cut := tok[:n]
		_, err := openNoPanic(t, s, cut)
		switch {
		case n-len(TokenPrefix) < minBody:
			// Too short to hold even header, nonce and tag.
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("Open(token[:%d]): got %v, want ErrMalformed", n, err)
			}
		case !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTampered):
			t.Errorf("Open(token[:%d]): got %v, want ErrMalformed or ErrTampered", n, err)
		}
	}
}

func TestOpenUnknownKeyOfAnotherStore(t *testing.T) {
	a, b := newEnv(t), newEnv(t)
	tok := a.issue(a.newClient("svc")).AccessToken
	if tokenKeyID(t, tok) == b.sealer.activeID() {
		t.Skip("the two stores drew the same random key id (1 in 2^32)")
	}
	if _, err := b.sealer.Open(tok); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Open of another store's token: got %v, want ErrUnknownKey", err)
	}
	// The same holds for a whole Authority: the token is refused before its
	// client is even looked up.
	b.newClient("svc")
	if _, err := b.auth.Check(tok); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Check of another store's token: got %v, want ErrUnknownKey", err)
	}
}

// Sealing keys live in the store, so tokens survive a restart.
func TestSealerKeysPersistAcrossReopen(t *testing.T) {
	e := newEnv(t)
	cl := e.newClient("svc")
	tok := e.issue(cl).AccessToken
	before, err := e.sealer.Open(tok)
	if err != nil {
		t.Fatalf("Open before reopen: %v", err)
	}
	activeBefore := e.sealer.activeID()

	e.reopen()
	if e.sealer.activeID() != activeBefore {
		t.Errorf("active key id after reopen = %d, want %d (the persisted key)", e.sealer.activeID(), activeBefore)
	}
	after, err := e.sealer.Open(tok)
	if err != nil {
		t.Fatalf("Open after reopen: got %v, want the token to still open", err)
	}
	if !reflect.DeepEqual(after, before) {
		t.Errorf("claims after reopen = %+v, want %+v", after, before)
	}
	r := e.check(t, tok)
	if r.Client.ID != cl.ID {
		t.Errorf("Check after reopen: client %q, want %q", r.Client.ID, cl.ID)
	}
}

func TestSealerKeyRotation(t *testing.T) {
	old := sealKey{ID: 1, Key: testKey(1), Created: fixedNow.Add(-30 * 24 * time.Hour)}
	cur := sealKey{ID: 2, Key: testKey(2), Created: fixedNow}
	oldOnly, err := newSealer([]sealKey{old})
	if err != nil {
		t.Fatalf("newSealer(old): %v", err)
	}
	c := Claims{ClientID: "svc", Generation: 1, Scope: "s", Audience: []string{"x"}, IssuedAt: 1, ExpiresAt: 2}
	oldTok, err := oldOnly.Seal(&c)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}

	for _, tt := range []struct {
		name string
		ring []sealKey
	}{
		{"newest last", []sealKey{old, cur}},
		{"newest first", []sealKey{cur, old}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ring, err := newSealer(tt.ring)
			if err != nil {
				t.Fatalf("newSealer: %v", err)
			}
			if ring.activeID() != cur.ID {
				t.Errorf("active key = %d, want the newest key %d", ring.activeID(), cur.ID)
			}
			got, err := ring.Open(oldTok)
			if err != nil {
				t.Fatalf("Open of a token sealed under the older key: %v, want it to open", err)
			}
			if !reflect.DeepEqual(got, c) {
				t.Errorf("claims of the old token = %+v, want %+v", got, c)
			}
			nc := c
			newTok, err := ring.Seal(&nc)
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			if id := tokenKeyID(t, newTok); id != cur.ID {
				t.Errorf("new token names key %d, want the newest key %d", id, cur.ID)
			}
			// A sealer that only knows the old key cannot open it.
			if _, err := oldOnly.Open(newTok); !errors.Is(err, ErrUnknownKey) {
				t.Errorf("old-only sealer opening a new-key token: got %v, want ErrUnknownKey", err)
			}
		})
	}
}

func TestNewSealerRefusesBadKeys(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33} {
		if _, err := newSealer([]sealKey{{ID: 1, Key: make([]byte, n)}}); err == nil {
			t.Errorf("newSealer with a %d-byte key: got nil error, want one (XChaCha20 needs 32)", n)
		}
	}
}

func TestLoadSealerRefusesUnreadableRing(t *testing.T) {
	tests := []struct {
		name   string
		stored string
	}{
		{"not JSON", "not json"},
		{"empty ring", "[]"},
		{"null", "null"},
		{"short key", `[{"id":1,"key":"AAAA","created":"2030-01-01T00:00:00Z"}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			st, err := clientstore.OpenBolt(t.TempDir()+"/g.db", 0)
			if err != nil {
				t.Fatalf("OpenBolt: %v", err)
			}
			defer st.Close()
			if _, err := st.LoadOrCreateKey(ctx, sealKeysName, func() ([]byte, error) { return []byte(tt.stored), nil }); err != nil {
				t.Fatalf("storing the ring: %v", err)
			}
			if s, err := LoadSealer(ctx, st); err == nil {
				t.Errorf("LoadSealer of ring %q: got a sealer (active %d), want an error", tt.stored, s.activeID())
			}
		})
	}
}

func TestParseTokenID(t *testing.T) {
	var id TokenID
	for i := range id {
		id[i] = byte(0xF0 + i)
	}
	got, ok := ParseTokenID(id.String())
	if !ok || got != id {
		t.Errorf("ParseTokenID(%q) = %v, %v; want %v, true", id.String(), got, ok, id)
	}
	for _, s := range []string{"", "AAAA", id.String() + "A", id.String()[:21], "!!!!!!!!!!!!!!!!!!!!!!", id.String() + "=="} {
		if _, ok := ParseTokenID(s); ok {
			t.Errorf("ParseTokenID(%q) = ok, want refused", s)
		}
	}
}

// Canonical claim bytes (the only ones appendClaims makes) parse back to the
// same claims and re-encode to the same bytes.
func TestClaimsEncodingCanonical(t *testing.T) {
	for _, c := range []Claims{
		{},
		{ClientID: "svc", Generation: 1, Scope: testScope, Audience: []string{testAudience}, IssuedAt: 1, ExpiresAt: 3601},
		{ClientID: "x", Generation: math.MaxUint64, IssuedAt: -1, ExpiresAt: math.MinInt64, Audience: []string{"", "b"}},
	} {
		b := appendClaims(nil, &c)
		got, err := parseClaims(b)
		if err != nil {
			t.Errorf("parseClaims(appendClaims(%+v)): %v", c, err)
			continue
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("parseClaims round trip = %+v, want %+v", got, c)
		}
		if again := appendClaims(nil, &got); !bytes.Equal(again, b) {
			t.Errorf("re-encoding gave %x, want %x", again, b)
		}
		// Every strict prefix and any trailing byte is refused.
		for n := 0; n < len(b); n++ {
			if _, err := parseClaims(b[:n]); err == nil {
				t.Errorf("parseClaims of %d of %d bytes: got nil error, want refused", n, len(b))
			}
		}
		if _, err := parseClaims(append(b[:len(b):len(b)], 0)); err == nil {
			t.Error("parseClaims with a trailing byte: got nil error, want refused")
		}
	}
}

func TestParseClaimsRefusesTooManyAudiences(t *testing.T) {
	c := Claims{ClientID: "svc", Audience: make([]string, clientstore.MaxAudiences+1)}
	if _, err := parseClaims(appendClaims(nil, &c)); err == nil {
		t.Errorf("parseClaims with %d audiences: got nil error, want refused (max %d)", len(c.Audience), clientstore.MaxAudiences)
	}
	c.Audience = c.Audience[:clientstore.MaxAudiences]
	if _, err := parseClaims(appendClaims(nil, &c)); err != nil {
		t.Errorf("parseClaims with %d audiences: %v, want accepted", len(c.Audience), err)
	}
}
