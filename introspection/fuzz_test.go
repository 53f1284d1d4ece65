package introspection

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/gatehousehq/gatehouse/clientstore"
)

// FuzzOpen feeds arbitrary strings to Sealer.Open, the first thing every
// presented bearer token meets. It must never panic, must refuse with one of
// its sentinel errors, and whatever it accepts must be a sensible token.
func FuzzOpen(f *testing.F) {
	s := testSealer(f, 7, fixedNow)
	c := Claims{ClientID: "svc", Generation: 1, Scope: testScope, Audience: []string{testAudience}, IssuedAt: 1, ExpiresAt: 3601}
	valid, err := s.Seal(&c)
	if err != nil {
		f.Fatalf("Seal: %v", err)
	}
	body := valid[len(TokenPrefix):]
	flip := func(i int) string {
		b := []byte(valid)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	for _, seed := range []string{
		valid,
		flip(len(TokenPrefix)),     // version
		flip(len(TokenPrefix) + 3), // key id
		flip(len(TokenPrefix) + 10),
		flip(len(valid) - 1),
		valid[:len(valid)-1],
		valid[:len(valid)/2],
		valid + "A",
		valid[:len(TokenPrefix)+5] + "\n" + valid[len(TokenPrefix)+5:],
		"",
		TokenPrefix,
		TokenPrefix + "AQ",
		TokenPrefix + "====",
		body,
		"Bearer " + valid,
		TokenPrefix + strings.Repeat("A", MaxTokenLength),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		got, err := openNoPanic(t, s, tok)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTampered) && !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("Open(%q): error %v is none of ErrMalformed, ErrTampered, ErrUnknownKey", tok, err)
			}
			return
		}
		// Only tokens this sealer made authenticate.
		if got.ClientID == "" {
			t.Fatalf("Open(%q) accepted claims without a client id: %+v", tok, got)
		}
		if !strings.HasPrefix(tok, TokenPrefix) || len(tok) > MaxTokenLength {
			t.Fatalf("Open accepted %q, which lacks the prefix or exceeds MaxTokenLength", tok)
		}
		again := got
		resealed, err := s.Seal(&again)
		if err != nil {
			t.Fatalf("re-sealing accepted claims: %v", err)
		}
		back, err := s.Open(resealed)
		if err != nil {
			t.Fatalf("re-sealed claims do not open: %v", err)
		}
		back.ID = got.ID
		if !reflect.DeepEqual(back, got) {
			t.Fatalf("re-seal round trip changed claims:\n got %+v\nwant %+v", back, got)
		}
	})
}

// FuzzParseBearer feeds arbitrary Authorization header values to
// ParseBearer (RFC 6750 §2.1).
func FuzzParseBearer(f *testing.F) {
	for _, seed := range []string{
		"Bearer abc", "bearer abc==", "BEARER    gat_AQID", "Basic xyz", "Bearer", "Bearer ",
		"Bearerabc", "Bearer a b", "Bearer a=b", "Bearer \x00", "Bearer\tabc", "",
		"Bearer " + strings.Repeat("a", MaxTokenLength), "Bearer " + strings.Repeat("a", MaxTokenLength+1),
		"Bearer AZaz09-._~+/=", "Bearer ä",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, h string) {
		tok, err := ParseBearer(h)
		if err != nil {
			if tok != "" {
				t.Fatalf("ParseBearer(%q) failed (%v) but returned %q", h, err, tok)
			}
			if (h == "") != errors.Is(err, ErrNoCredentials) {
				t.Fatalf("ParseBearer(%q): got %v; ErrNoCredentials is for the empty value only", h, err)
			}
			if h != "" && !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("ParseBearer(%q): got %v, want ErrBadCredentials", h, err)
			}
			return
		}
		if tok == "" || len(tok) > MaxTokenLength {
			t.Fatalf("ParseBearer(%q) = %q: want 1 to %d characters", h, tok, MaxTokenLength)
		}
		if !strings.HasSuffix(h, tok) || !strings.EqualFold(h[:6], "bearer") {
			t.Fatalf("ParseBearer(%q) = %q: not the tail of a Bearer credential", h, tok)
		}
		body := strings.TrimRight(tok, "=")
		if body == "" {
			t.Fatalf("ParseBearer(%q) = %q: padding only", h, tok)
		}
		for i := 0; i < len(body); i++ {
			if !isB64TokenChar(body[i]) {
				t.Fatalf("ParseBearer(%q) = %q: character %q is not a b64token character", h, tok, body[i])
			}
		}
		if again, err := ParseBearer("Bearer " + tok); err != nil || again != tok {
			t.Fatalf("re-parsing %q gave %q, %v", tok, again, err)
		}
	})
}

// FuzzParseClaims feeds arbitrary bytes to the decoder of the sealed
// payload. Only authenticated bytes ever reach it, but it must still never
// panic, and what it accepts must re-encode to a canonical form that parses
// back to the same claims.
//
// It does not require the input bytes back: binary.Uvarint and Varint accept
// non-minimal encodings (0x80 0x00 is 0), so several byte strings parse to
// one Claims. That is harmless here, because appendClaims only ever writes
// minimal ones and the AEAD authenticates them; TestClaimsEncodingCanonical
// checks the byte-exact round trip of what appendClaims writes.
func FuzzParseClaims(f *testing.F) {
	for _, c := range []Claims{
		{},
		{ClientID: "svc", Generation: 1, Scope: testScope, Audience: []string{testAudience}, IssuedAt: 1, ExpiresAt: 3601},
		{ClientID: "x", Generation: math.MaxUint64, IssuedAt: math.MinInt64, ExpiresAt: math.MaxInt64, Audience: []string{"", "a", "b"}},
	} {
		f.Add(appendClaims(nil, &c))
	}
	f.Add([]byte{})
	f.Add([]byte{0x80, 0x00, 0, 0, 0, 0, 0})                                        // non-minimal generation
	f.Add([]byte{1, 2, 2, 0xff, 0xff, 0xff, 0xff, 0x0f})                            // huge client id length
	f.Add([]byte{1, 2, 2, 0, 0, 33})                                                // too many audiences
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}) // overflowing varint
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseClaims(b)
		if err != nil {
			return
		}
		enc := appendClaims(nil, &c)
		if len(enc) > len(b) {
			t.Fatalf("canonical encoding (%d bytes) is longer than the accepted input (%d bytes): %x", len(enc), len(b), b)
		}
		back, err := parseClaims(enc)
		if err != nil {
			t.Fatalf("parseClaims(%x) accepted %+v, but its re-encoding %x does not parse: %v", b, c, enc, err)
		}
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("re-encoding changed the claims:\n got %+v\nwant %+v", back, c)
		}
		if again := appendClaims(nil, &back); !bytes.Equal(again, enc) {
			t.Fatalf("the canonical encoding is not stable: %x then %x", enc, again)
		}
		if len(c.Audience) > clientstore.MaxAudiences {
			t.Fatalf("accepted %d audiences, more than %d", len(c.Audience), clientstore.MaxAudiences)
		}
	})
}
