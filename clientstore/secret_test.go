package clientstore

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

func testHasher(t *testing.T, fill byte) *Hasher {
	t.Helper()
	h, err := NewHasher(bytes.Repeat([]byte{fill}, 32))
	if err != nil {
		t.Fatalf("NewHasher(32 bytes) = %v, want nil", err)
	}
	return h
}

func TestGenerateSecretFormat(t *testing.T) {
	const n = 1000
	seen := make(map[string]bool, n)
	for i := 0; i < n; i++ {
		s, err := GenerateSecret()
		if err != nil {
			t.Fatalf("GenerateSecret() = %v", err)
		}
		if len(s) != 43 {
			t.Fatalf("GenerateSecret() = %q (%d chars), want 43 chars", s, len(s))
		}
		if strings.ContainsAny(s, "=+/") {
			t.Fatalf("GenerateSecret() = %q, want unpadded base64url (no '=', '+', '/')", s)
		}
		raw, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("GenerateSecret() = %q, not base64url: %v", s, err)
		}
		if len(raw) != SecretBytes {
			t.Fatalf("GenerateSecret() decodes to %d bytes, want %d", len(raw), SecretBytes)
		}
		if seen[s] {
			t.Fatalf("GenerateSecret() returned %q twice in %d calls", s, i+1)
		}
		seen[s] = true
	}
}

func TestNewHasherKeyLength(t *testing.T) {
	tests := []struct {
		keyLen  int
		wantErr bool
	}{
		{0, true},
		{1, true},
		{16, true},
		{31, true},
		{32, false},
		{64, false},
	}
	for _, tt := range tests {
		h, err := NewHasher(make([]byte, tt.keyLen))
		if tt.wantErr && (err == nil || h != nil) {
			t.Errorf("NewHasher(%d-byte key) = (%v, %v), want (nil, error)", tt.keyLen, h, err)
		}
		if !tt.wantErr && (err != nil || h == nil) {
			t.Errorf("NewHasher(%d-byte key) = (%v, %v), want a Hasher", tt.keyLen, h, err)
		}
	}
	if _, err := NewHasher(nil); err == nil {
		t.Error("NewHasher(nil) = nil error, want an error")
	}
}

// The Hasher must not alias the caller's key: zeroing or reusing the buffer
// afterwards must not change what it hashes.
func TestNewHasherCopiesKey(t *testing.T) {
	key := bytes.Repeat([]byte{1}, 32)
	h, err := NewHasher(key)
	if err != nil {
		t.Fatal(err)
	}
	before := h.Hash("s")
	for i := range key {
		key[i] = 0
	}
	if after := h.Hash("s"); after != before {
		t.Fatalf("Hash changed after the caller modified its key buffer: %q then %q", before, after)
	}
}

func TestHashFormat(t *testing.T) {
	h := testHasher(t, 1)
	a := h.Hash("secret-a")
	if !strings.HasPrefix(a, hmacPrefix) {
		t.Fatalf("Hash() = %q, want prefix %q", a, hmacPrefix)
	}
	if a != h.Hash("secret-a") {
		t.Error("Hash() is not deterministic for the same key and secret")
	}
	if a == h.Hash("secret-b") {
		t.Error("Hash() is the same for two different secrets")
	}
	if a == testHasher(t, 2).Hash("secret-a") {
		t.Error("Hash() is the same under two different keys")
	}
	if strings.Contains(a, "secret-a") {
		t.Errorf("Hash() = %q contains the secret", a)
	}
}

func TestVerify(t *testing.T) {
	h := testHasher(t, 1)
	other := testHasher(t, 2)
	const secret = "correct-horse-battery-staple"
	good := h.Hash(secret)
	enc := strings.TrimPrefix(good, hmacPrefix)

	tests := []struct {
		name   string
		hash   string
		secret string
		want   bool
	}{
		{"right secret", good, secret, true},
		{"wrong secret", good, "wrong", false},
		{"secret with extra byte", good, secret + "x", false},
		{"secret missing a byte", good, secret[:len(secret)-1], false},
		{"empty secret", good, "", false},
		{"empty hash", "", secret, false},
		{"empty hash, empty secret", "", "", false},
		{"prefix only", hmacPrefix, secret, false},
		{"unknown prefix", "$bcrypt$" + enc, secret, false},
		{"no prefix", enc, secret, false},
		{"prefix in other case", strings.ToUpper(hmacPrefix) + enc, secret, false},
		{"truncated by one char", good[:len(good)-1], secret, false},
		{"truncated to half", good[:len(hmacPrefix)+len(enc)/2], secret, false},
		{"over-long by one char", good + "A", secret, false},
		{"over-long with padding", good + "=", secret, false},
		{"garbage of the right length", hmacPrefix + strings.Repeat("!", len(enc)), secret, false},
		{"base64url alphabet of the right length", hmacPrefix + strings.Repeat("-", len(enc)), secret, false},
		{"non-ASCII of the right byte length", hmacPrefix + strings.Repeat("é", len(enc)/2) + "A", secret, false},
		{"hash made under another key", other.Hash(secret), secret, false},
		{"hash of the secret as the hash", secret, secret, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := h.Verify(tt.hash, tt.secret); got != tt.want {
				t.Fatalf("Verify(%q, %q) = %v, want %v", tt.hash, tt.secret, got, tt.want)
			}
		})
	}
}

// FuzzVerify: a stored hash may be damaged or hand-edited. Verify must never
// panic and must accept only the exact hash of the secret.
func FuzzVerify(f *testing.F) {
	h, err := NewHasher(bytes.Repeat([]byte{3}, 32))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(h.Hash("s"), "s")
	f.Add("", "")
	f.Add(hmacPrefix, "s")
	f.Add(hmacPrefix+strings.Repeat("A", 43), "s")
	f.Add(hmacPrefix+strings.Repeat("/", 44), "s")
	f.Fuzz(func(t *testing.T, hash, secret string) {
		if h.Verify(hash, secret) && hash != h.Hash(secret) {
			// Non-canonical base64 (unused trailing bits) could decode to the
			// same MAC; that is still the right MAC, so only a MAC mismatch
			// is a failure.
			dec, err := base64.RawStdEncoding.DecodeString(strings.TrimPrefix(hash, hmacPrefix))
			want, _ := base64.RawStdEncoding.DecodeString(strings.TrimPrefix(h.Hash(secret), hmacPrefix))
			if err != nil || !bytes.Equal(dec, want) {
				t.Fatalf("Verify(%q, %q) = true for a hash that is not the secret's", hash, secret)
			}
		}
	})
}
