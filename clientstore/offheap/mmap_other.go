//go:build !linux

package offheap

// mapChunk returns an ordinary Go slice: mapped chunks are Linux-only.
func mapChunk(n int) ([]byte, bool) { return make([]byte, n), false }

// unmapPages is never called: no chunk is mapped.
func unmapPages([]byte) {}
