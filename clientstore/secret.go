package clientstore

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"strings"
)

// SecretBytes is the entropy of a server-generated client secret: 256 bits.
const SecretBytes = 32

// hmacPrefix marks a secret hash made by Hasher.
const hmacPrefix = "$hmac-sha256$"

// GenerateSecret returns a new client secret with 256 bits of entropy,
// base64url-encoded without padding (43 characters).
func GenerateSecret() (string, error) {
	var b [SecretBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Hasher hashes and verifies client secrets with HMAC-SHA-256 under a
// server-side key. Server-generated secrets carry 256 bits of entropy, so a
// keyed fast hash resists offline guessing as well as a slow hash would,
// while keeping token issuance cheap; the key (kept in the store, never in a
// client record) means a leaked client record alone is not enough to even
// try.
type Hasher struct {
	key []byte
}

// NewHasher returns a Hasher keyed with key (at least 32 bytes).
func NewHasher(key []byte) (*Hasher, error) {
	if len(key) < 32 {
		return nil, errors.New("secret hashing key must be at least 32 bytes")
	}
	return &Hasher{key: append([]byte(nil), key...)}, nil
}

// Hash returns the encoded keyed hash of secret.
func (h *Hasher) Hash(secret string) string {
	sum := h.mac(secret)
	return hmacPrefix + base64.RawStdEncoding.EncodeToString(sum[:])
}

// Verify reports whether secret matches the encoded hash, in constant time
// with respect to the secret. Besides the Hasher's own HMAC hashes it
// verifies hashes imported from Ory Hydra (PBKDF2-SHA256 and bcrypt, see
// CheckImportedHash). An empty, unknown or out-of-bounds hash never
// matches.
func (h *Hasher) Verify(hash, secret string) bool {
	enc, ok := strings.CutPrefix(hash, hmacPrefix)
	if !ok {
		if p, ok := parsePBKDF2(hash); ok {
			return p.verify(secret)
		}
		return isBcrypt(hash) && verifyBcrypt(hash, secret)
	}
	var want [sha256.Size]byte
	if len(enc) != base64.RawStdEncoding.EncodedLen(sha256.Size) {
		return false
	}
	if n, err := base64.RawStdEncoding.Decode(want[:], []byte(enc)); err != nil || n != sha256.Size {
		return false
	}
	got := h.mac(secret)
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

func (h *Hasher) mac(secret string) [sha256.Size]byte {
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte(secret))
	var out [sha256.Size]byte
	m.Sum(out[:0])
	return out
}
