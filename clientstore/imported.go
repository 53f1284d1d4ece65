package clientstore

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/pbkdf2"
)

// Secret hashes imported from Ory Hydra. Hydra stores client secrets as
// PBKDF2-HMAC-SHA256 by default (ory/x hasherx) and as bcrypt when
// configured so; a migrated client keeps its secret by importing the hash.
//
// PBKDF2, as hasherx writes it:
//
//	$pbkdf2-sha256$i=<iterations>,l=<key length>$<salt>$<key>
//
// with salt and key in unpadded standard base64. Hydra uses a 16-byte salt
// and a 32-byte key. Bcrypt is the usual modular-crypt string ($2a$, $2b$ or
// $2y$, cost, 22 characters of salt, 31 of hash).
const pbkdf2Prefix = "$pbkdf2-sha256$"

// Bounds on imported hashes. A hash's parameters decide how much work one
// verification costs, and every failed token request pays it, so absurd
// parameters (whether from a typo or a tampered record) are refused
// instead of turning the token endpoint into a CPU sink.
const (
	MaxPBKDF2Iterations = 2_000_000
	MaxBcryptCost       = 14
	minPBKDF2KeyLen     = 16
	maxPBKDF2KeyLen     = 64
	minPBKDF2SaltLen    = 8
	maxPBKDF2SaltLen    = 128
	maxBcryptSecretLen  = 72 // bcrypt reads no further; Hydra refuses longer
)

var strictStdB64 = base64.RawStdEncoding.Strict()

// pbkdf2Hash is a parsed $pbkdf2-sha256$ hash.
type pbkdf2Hash struct {
	iter int
	salt []byte
	key  []byte
}

// parsePBKDF2 parses a Hydra PBKDF2-SHA256 hash, strictly: the declared key
// length must match the key, and the numbers must be plain decimals.
func parsePBKDF2(hash string) (pbkdf2Hash, bool) {
	rest, ok := strings.CutPrefix(hash, pbkdf2Prefix)
	if !ok {
		return pbkdf2Hash{}, false
	}
	parts := strings.Split(rest, "$")
	if len(parts) != 3 {
		return pbkdf2Hash{}, false
	}
	params, ok := strings.CutPrefix(parts[0], "i=")
	if !ok {
		return pbkdf2Hash{}, false
	}
	iterStr, lenStr, ok := strings.Cut(params, ",l=")
	if !ok {
		return pbkdf2Hash{}, false
	}
	iter, ok := decimal(iterStr)
	if !ok || iter < 1 || iter > MaxPBKDF2Iterations {
		return pbkdf2Hash{}, false
	}
	keyLen, ok := decimal(lenStr)
	if !ok || keyLen < minPBKDF2KeyLen || keyLen > maxPBKDF2KeyLen {
		return pbkdf2Hash{}, false
	}
	salt, err := strictStdB64.DecodeString(parts[1])
	if err != nil || len(salt) < minPBKDF2SaltLen || len(salt) > maxPBKDF2SaltLen {
		return pbkdf2Hash{}, false
	}
	key, err := strictStdB64.DecodeString(parts[2])
	if err != nil || len(key) != keyLen {
		return pbkdf2Hash{}, false
	}
	return pbkdf2Hash{iter: iter, salt: salt, key: key}, true
}

// decimal parses a small non-negative decimal without sign or leading
// zeros, so that one hash has exactly one spelling.
func decimal(s string) (int, bool) {
	if s == "" || len(s) > 9 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

func (p pbkdf2Hash) verify(secret string) bool {
	got := pbkdf2.Key([]byte(secret), p.salt, p.iter, len(p.key), sha256.New)
	return subtle.ConstantTimeCompare(got, p.key) == 1
}

// isBcrypt reports whether hash looks like a bcrypt hash of a version
// Hydra writes (golang.org/x/crypto/bcrypt writes $2a$).
func isBcrypt(hash string) bool {
	return len(hash) == 60 && (strings.HasPrefix(hash, "$2a$") || strings.HasPrefix(hash, "$2b$") || strings.HasPrefix(hash, "$2y$"))
}

// bcryptCost returns the cost of a well-formed bcrypt hash within bounds.
func bcryptCost(hash string) (int, bool) {
	if !isBcrypt(hash) {
		return 0, false
	}
	cost, err := bcrypt.Cost([]byte(hash))
	if err != nil || cost < bcrypt.MinCost || cost > MaxBcryptCost {
		return 0, false
	}
	return cost, true
}

func verifyBcrypt(hash, secret string) bool {
	if len(secret) > maxBcryptSecretLen {
		return false
	}
	if _, ok := bcryptCost(hash); !ok {
		return false
	}
	// CompareHashAndPassword compares in constant time.
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(secret)) == nil
}

// importedParams names the parameters that set how long verifying an
// imported hash takes ("bcrypt 10", "pbkdf2 25000 32"); ok is false for
// anything else (Gatehouse's own hashes).
func importedParams(hash string) (params string, ok bool) {
	if p, ok := parsePBKDF2(hash); ok {
		return fmt.Sprintf("pbkdf2 %d %d", p.iter, len(p.key)), true
	}
	if cost, ok := bcryptCost(hash); ok {
		return fmt.Sprintf("bcrypt %d", cost), true
	}
	return "", false
}

// CheckImportedHash validates a client_secret_hash brought over from Ory
// Hydra: PBKDF2-SHA256 in hasherx's format or bcrypt ($2a$/$2b$/$2y$),
// with parameters inside Gatehouse's bounds. The error names the field and
// never repeats the hash.
func CheckImportedHash(hash string) error {
	switch {
	case strings.HasPrefix(hash, pbkdf2Prefix):
		if _, ok := parsePBKDF2(hash); !ok {
			return fieldErr("client_secret_hash", "malformed PBKDF2 hash: want $pbkdf2-sha256$i=<1..%d>,l=<%d..%d>$<salt, unpadded base64, %d..%d bytes>$<key, unpadded base64, l bytes>",
				MaxPBKDF2Iterations, minPBKDF2KeyLen, maxPBKDF2KeyLen, minPBKDF2SaltLen, maxPBKDF2SaltLen)
		}
		return nil
	case isBcrypt(hash):
		if _, ok := bcryptCost(hash); !ok {
			return fieldErr("client_secret_hash", "malformed bcrypt hash or cost outside %d..%d", bcrypt.MinCost, MaxBcryptCost)
		}
		return nil
	case strings.HasPrefix(hash, hmacPrefix):
		return fieldErr("client_secret_hash", "Gatehouse HMAC hashes are bound to their store's key and cannot be imported; omit the hash to get a new secret")
	}
	return fieldErr("client_secret_hash", "unsupported hash format (supported: Hydra's $pbkdf2-sha256$… and bcrypt $2a$/$2b$/$2y$)")
}
