//go:build !linux

package clientstore

// releaseResident is a no-op where MADV_DONTNEED on a shared file mapping
// is not known to keep its contents: the pages stay resident until the
// kernel reclaims them.
func releaseResident(uintptr, int64) bool { return false }
