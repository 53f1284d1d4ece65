package clientstore

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/pbkdf2"
)

// hydraPBKDF2 hashes secret the way Hydra does by default (ory/x hasherx
// PBKDF2: SHA-256, 16-byte salt, 32-byte key, unpadded standard base64).
func hydraPBKDF2(t testing.TB, secret string, iter int) string {
	t.Helper()
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		t.Fatal(err)
	}
	key := pbkdf2.Key([]byte(secret), salt, iter, 32, sha256.New)
	return fmt.Sprintf("$pbkdf2-sha256$i=%d,l=%d$%s$%s", iter, 32,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// hydraBcrypt hashes secret as Hydra does with its bcrypt hasher.
func hydraBcrypt(t testing.TB, secret string, cost int) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(secret), cost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func TestVerifyImportedHashes(t *testing.T) {
	h := testHasher(t, 1)
	const secret = "hydra-generated-secret-0123456789"
	pb := hydraPBKDF2(t, secret, 25000) // Hydra's default iteration count
	bc := hydraBcrypt(t, secret, bcrypt.MinCost)

	// The same hash under the other bcrypt version prefixes Hydra may
	// hold ($2b$ from newer libraries, $2y$ from PHP-made hashes).
	bcB := "$2b$" + strings.TrimPrefix(bc, "$2a$")
	bcY := "$2y$" + strings.TrimPrefix(bc, "$2a$")

	// Flip one bit of the derived key: same shape, wrong key.
	parts := strings.Split(pb, "$")
	key, _ := base64.RawStdEncoding.DecodeString(parts[4])
	key[0] ^= 1
	parts[4] = base64.RawStdEncoding.EncodeToString(key)
	pbWrongKey := strings.Join(parts, "$")

	tests := []struct {
		name, hash, secret string
		want               bool
	}{
		{"PBKDF2, right secret", pb, secret, true},
		{"PBKDF2, wrong secret", pb, secret + "x", false},
		{"PBKDF2, empty secret", pb, "", false},
		{"PBKDF2, tampered key", pbWrongKey, secret, false},
		{"bcrypt $2a$, right secret", bc, secret, true},
		{"bcrypt $2b$, right secret", bcB, secret, true},
		{"bcrypt $2y$, right secret", bcY, secret, true},
		{"bcrypt, wrong secret", bc, "wrong", false},
		{"bcrypt, secret with the 72 bytes bcrypt reads plus more", hydraBcrypt(t, strings.Repeat("a", 72), bcrypt.MinCost), strings.Repeat("a", 73), false},
		{"bcrypt with an unsupported version", "$2x$" + strings.TrimPrefix(bc, "$2a$"), secret, false},
		{"bcrypt truncated", bc[:59], secret, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := h.Verify(tt.hash, tt.secret); got != tt.want {
				t.Fatalf("Verify(%.20q…, secret) = %v, want %v", tt.hash, got, tt.want)
			}
		})
	}
	for _, ok := range []string{pb, bc, bcB, bcY} {
		if err := CheckImportedHash(ok); err != nil {
			t.Errorf("CheckImportedHash(%.20q…) = %v, want nil", ok, err)
		}
	}
}

func TestCheckImportedHashRejects(t *testing.T) {
	salt := base64.RawStdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 16))
	key := base64.RawStdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))
	pb := func(params, s, k string) string { return "$pbkdf2-sha256$" + params + "$" + s + "$" + k }
	good := pb("i=25000,l=32", salt, key)
	if err := CheckImportedHash(good); err != nil {
		t.Fatalf("CheckImportedHash(well-formed) = %v, want nil", err)
	}
	bc := hydraBcrypt(t, "s", bcrypt.MinCost)
	h := testHasher(t, 1)

	tests := []struct{ name, hash string }{
		{"empty", ""},
		{"plaintext", "hunter2"},
		{"Gatehouse HMAC hash (bound to another store's key)", testHasher(t, 2).Hash("s")},
		{"argon2id (Kratos, not Hydra)", "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$a2V5"},
		{"PBKDF2 with SHA-512", strings.Replace(good, "sha256", "sha512", 1)},
		{"PBKDF2 without parameters", "$pbkdf2-sha256$" + salt + "$" + key},
		{"PBKDF2 with zero iterations", pb("i=0,l=32", salt, key)},
		{"PBKDF2 with too many iterations", pb(fmt.Sprintf("i=%d,l=32", MaxPBKDF2Iterations+1), salt, key)},
		{"PBKDF2 iterations with a leading zero", pb("i=025000,l=32", salt, key)},
		{"PBKDF2 iterations with a sign", pb("i=+25000,l=32", salt, key)},
		{"PBKDF2 parameters swapped", pb("l=32,i=25000", salt, key)},
		{"PBKDF2 length differs from the key", pb("i=25000,l=31", salt, key)},
		{"PBKDF2 key too short", pb("i=25000,l=8", salt, base64.RawStdEncoding.EncodeToString(make([]byte, 8)))},
		{"PBKDF2 salt too short", pb("i=25000,l=32", base64.RawStdEncoding.EncodeToString(make([]byte, 4)), key)},
		{"PBKDF2 padded base64", pb("i=25000,l=32", salt+"==", key)},
		{"PBKDF2 URL-safe base64", pb("i=25000,l=32", strings.Repeat("_", 22), key)},
		{"PBKDF2 extra part", good + "$x"},
		{"PBKDF2 missing key", pb("i=25000,l=32", salt, "")},
		{"bcrypt cost above the bound", bc[:4] + fmt.Sprintf("%02d", MaxBcryptCost+1) + bc[6:]},
		{"bcrypt cost below the minimum", bc[:4] + "03" + bc[6:]},
		{"bcrypt with trailing data", bc + "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckImportedHash(tt.hash)
			wantFieldError(t, err, "client_secret_hash")
			if tt.hash != "" && strings.Contains(err.Error(), tt.hash) {
				t.Errorf("error %q repeats the hash", err)
			}
			if h.Verify(tt.hash, "s") {
				t.Errorf("Verify accepted a hash CheckImportedHash refuses")
			}
		})
	}
}

// FuzzCheckImportedHash: imported hashes are operator input and stored
// records may be damaged. Neither check may panic, and Verify never
// accepts a hash that CheckImportedHash refuses (apart from its own HMAC).
func FuzzCheckImportedHash(f *testing.F) {
	f.Add("$pbkdf2-sha256$i=1,l=16$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA", "s")
	f.Add("$pbkdf2-sha256$i=25000,l=32$AQEBAQEBAQEBAQEBAQEBAQ$AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI", "s")
	f.Add("$2a$04$abcdefghijklmnopqrstuu9dRJa4CZ.1XWQ5Tf7VJ1gmCRbzJKsVi", "s")
	f.Add("$2y$31$abcdefghijklmnopqrstuu9dRJa4CZ.1XWQ5Tf7VJ1gmCRbzJKsVi", "s")
	f.Add("$pbkdf2-sha256$i=999999999,l=64$AAAAAAAAAAA$AAAA", "")
	h, err := NewHasher(bytes.Repeat([]byte{5}, 32))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, hash, secret string) {
		if strings.HasPrefix(hash, pbkdf2Prefix) {
			// Bound the work a fuzzed iteration count may ask for.
			if p, ok := parsePBKDF2(hash); ok && p.iter > 1000 {
				return
			}
		}
		err := CheckImportedHash(hash)
		if err != nil && !strings.HasPrefix(hash, hmacPrefix) && h.Verify(hash, secret) {
			t.Fatalf("Verify accepted %q, which CheckImportedHash refuses: %v", hash, err)
		}
	})
}
