//go:build !linux

package clientstore

// releaseResident is a no-op where MADV_DONTNEED on a shared file mapping
// is not known to keep its contents: the pages stay resident until the
// kernel reclaims them.
func releaseResident(uintptr, int64) bool { return false }

// arenaMap returns an ordinary Go slice for the client arena: off-heap
// chunks are Linux-only (see resident_linux.go).
func arenaMap(n int) ([]byte, bool) { return make([]byte, n), false }

// arenaRelease is never called: no chunk is mapped.
func arenaRelease([]byte) {}
