package clientstore

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"strings"
	"time"
)

// packed is a client as the cache keeps it: every field in one string. A
// *Client struct alone is over 300 bytes before its strings, maps and
// slices; a typical client packs into under 200 bytes all told, and a
// gateway holds a hundred thousand of them. Being one pointer-free string,
// it also costs the garbage collector nothing to scan.
//
// Layout: the client_id (length-prefixed), then the revision and the
// generation as 8 bytes each at a fixed distance from it, so the hot path
// reads the revision without decoding, then flags and the other fields.
// A string is a uvarint n followed by n/2 bytes if n is even, or the
// well-known value packedConsts[n/2] if n is odd; a secret hash of this
// cache's own (HMAC-SHA-256) is n = 2*len(packedConsts)+1 followed by the
// 32 bytes of the MAC rather than its 56-character text; a list is a
// uvarint count+1 (0: nil) followed by its strings; a time is a varint of
// Unix seconds and a uvarint of nanoseconds.
type packed string

// packedConsts are values many clients share, packed as a small number.
var packedConsts = [...]string{
	GrantClientCredentials, AuthMethodBasic, AuthMethodPost, AuthMethodPrivateKeyJWT, "none",
	TokenStrategyOpaque, TokenStrategyJWT,
}

const (
	packedDisabled = 1 << iota
	packedIntrospect
	packedMetadata     // metadata present (not nil): its compact JSON is the last field
	packedNoPrevExpiry // PreviousSecretExpiresAt is zero and left out
)

// packedHMAC is the string code of an HMAC secret hash given as its MAC.
const packedHMAC = uint64(2*len(packedConsts) + 1)

// pack encodes cl. Its metadata is packed as compact JSON: the same bytes
// json.Marshal gives for the map.
func pack(cl *Client) (packed, error) {
	var md []byte
	var flags byte
	if cl.Disabled {
		flags |= packedDisabled
	}
	if cl.Introspect {
		flags |= packedIntrospect
	}
	if cl.PreviousSecretExpiresAt.IsZero() {
		flags |= packedNoPrevExpiry
	}
	if cl.Metadata != nil {
		flags |= packedMetadata
		var err error
		if md, err = json.Marshal(cl.Metadata); err != nil {
			return "", fieldErr("metadata", "not serializable: %v", err)
		}
	}
	b := make([]byte, 0, 160+len(cl.ID)+len(cl.Scope)+len(cl.SecretHash)+len(md)+len(cl.JWKS)+len(cl.HydraExtra))
	b = packStr(b, cl.ID)
	b = binary.LittleEndian.AppendUint64(b, cl.Revision)
	b = binary.LittleEndian.AppendUint64(b, cl.Generation)
	b = append(b, flags)
	for _, s := range [...]string{cl.Name, cl.Scope, cl.Owner, cl.TokenEndpointAuthMethod, cl.AccessTokenStrategy,
		cl.JWKSURI, string(cl.JWKS), string(cl.HydraExtra)} {
		b = packStr(b, s)
	}
	b = packHash(packHash(b, cl.SecretHash), cl.PreviousSecretHash)
	times := []time.Time{cl.PreviousSecretExpiresAt, cl.CreatedAt, cl.UpdatedAt}
	if flags&packedNoPrevExpiry != 0 {
		times = times[1:]
	}
	for _, t := range times {
		b = binary.AppendVarint(b, t.Unix())
		b = binary.AppendUvarint(b, uint64(t.Nanosecond()))
	}
	b = packList(b, cl.GrantTypes)
	b = packList(b, cl.Audience)
	b = append(b, md...)
	return packed(b), nil
}

func packStr(b []byte, s string) []byte {
	for i, c := range packedConsts {
		if s == c {
			return binary.AppendUvarint(b, uint64(2*i+1))
		}
	}
	return append(binary.AppendUvarint(b, 2*uint64(len(s))), s...)
}

// packHash packs a secret hash: an HMAC one as its MAC.
func packHash(b []byte, hash string) []byte {
	enc, ok := strings.CutPrefix(hash, hmacPrefix)
	if !ok || len(enc) != base64.RawStdEncoding.EncodedLen(sha256.Size) {
		return packStr(b, hash)
	}
	var mac [sha256.Size]byte
	if n, err := base64.RawStdEncoding.Strict().Decode(mac[:], []byte(enc)); err != nil || n != len(mac) {
		return packStr(b, hash) // not in the form Hasher.Hash writes: kept as it is
	}
	return append(binary.AppendUvarint(b, packedHMAC), mac[:]...)
}

func packList(b []byte, l []string) []byte {
	if l == nil {
		return append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(l))+1)
	for _, s := range l {
		b = packStr(b, s)
	}
	return b
}

// unpacker reads a packed client. Packed clients are made by pack only,
// in this process, never read from a store or the network: a malformed one
// is a bug, and reads past its end panic.
type unpacker struct {
	s string
	i int
}

func (u *unpacker) uvarint() uint64 {
	var x uint64
	for shift := 0; ; shift += 7 {
		c := u.s[u.i]
		u.i++
		x |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return x
		}
	}
}

func (u *unpacker) str() string {
	n := u.uvarint()
	if n == packedHMAC {
		mac := u.s[u.i : u.i+sha256.Size]
		u.i += sha256.Size
		return hmacPrefix + base64.RawStdEncoding.EncodeToString([]byte(mac))
	}
	if n&1 == 1 {
		return packedConsts[n/2]
	}
	s := u.s[u.i : u.i+int(n/2)] // shares the packed string's memory
	u.i += int(n / 2)
	return s
}

func (u *unpacker) list() []string {
	n := u.uvarint()
	if n == 0 {
		return nil
	}
	l := make([]string, n-1)
	for i := range l {
		l[i] = u.str()
	}
	return l
}

func (u *unpacker) time() time.Time {
	v := u.uvarint()
	sec := int64(v >> 1) // zigzag, as binary.AppendVarint writes it
	if v&1 != 0 {
		sec = ^sec
	}
	return time.Unix(sec, int64(u.uvarint())).UTC()
}

func (u *unpacker) u64() uint64 {
	b := u.s[u.i : u.i+8]
	u.i += 8
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

// id is the packed client's client_id, without allocating: it shares p's
// memory.
func (p packed) id() string {
	u := unpacker{s: string(p)}
	return u.str()
}

// revision is the packed client's revision, read without decoding the
// rest of it.
func (p packed) revision() uint64 {
	u := unpacker{s: string(p)}
	u.str()
	return u.u64()
}

// client decodes p into a Client of the caller's own. Its strings share
// p's memory (strings are immutable); its slices, metadata and raw JSON
// are its own.
func (p packed) client() *Client {
	u := unpacker{s: string(p)}
	c := &Client{ID: u.str(), Revision: u.u64(), Generation: u.u64()}
	flags := u.s[u.i]
	u.i++
	c.Disabled, c.Introspect = flags&packedDisabled != 0, flags&packedIntrospect != 0
	c.Name, c.Scope, c.Owner = u.str(), u.str(), u.str()
	c.TokenEndpointAuthMethod, c.AccessTokenStrategy, c.JWKSURI = u.str(), u.str(), u.str()
	if s := u.str(); s != "" {
		c.JWKS = json.RawMessage(s)
	}
	if s := u.str(); s != "" {
		c.HydraExtra = json.RawMessage(s)
	}
	c.SecretHash, c.PreviousSecretHash = u.str(), u.str()
	if flags&packedNoPrevExpiry == 0 {
		c.PreviousSecretExpiresAt = u.time()
	}
	c.CreatedAt, c.UpdatedAt = u.time(), u.time()
	c.GrantTypes, c.Audience = u.list(), u.list()
	if flags&packedMetadata != 0 {
		if err := c.Metadata.UnmarshalJSON([]byte(u.s[u.i:])); err != nil {
			panic("clientstore: packed metadata does not decode: " + err.Error()) // pack encoded it from a map
		}
	}
	return c
}
