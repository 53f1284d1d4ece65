package offheap

import "syscall"

// mapChunk maps n bytes of anonymous, private memory: outside the Go
// heap, zero-filled, resident only once written. Should the kernel
// refuse, the chunk is an ordinary Go slice (mapped is false).
func mapChunk(n int) (mem []byte, mapped bool) {
	mem, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return make([]byte, n), false
	}
	return mem, true
}

// unmapPages gives the pages of a freed, mapped chunk back to the
// operating system (madvise(MADV_DONTNEED)); they read as zeros and come
// back when written. The mapping stays: a late reader may still read it.
func unmapPages(mem []byte) { _ = syscall.Madvise(mem, syscall.MADV_DONTNEED) }
