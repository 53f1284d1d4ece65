package clientstore

import "syscall"

// releaseResident drops the pages of the read-only, shared file mapping
// of size bytes at addr from the process's resident set
// (madvise(MADV_DONTNEED)): the next read of one faults it back in from
// the page cache or the file, with the same contents. The mapping must
// stay in place during the call. It reports whether the kernel did it.
func releaseResident(addr uintptr, size int64) bool {
	if addr == 0 || size <= 0 {
		return false
	}
	_, _, errno := syscall.Syscall(syscall.SYS_MADVISE, addr, uintptr(size), syscall.MADV_DONTNEED)
	return errno == 0
}

// arenaMap maps n bytes of anonymous, private memory for the client
// arena: outside the Go heap, zero-filled, resident only once written.
// Should the kernel refuse, the chunk is an ordinary Go slice (mapped is
// false).
func arenaMap(n int) (mem []byte, mapped bool) {
	mem, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return make([]byte, n), false
	}
	return mem, true
}

// arenaRelease gives the pages of a freed, mapped arena chunk back to the
// operating system; they read as zeros and come back when written. The
// mapping stays: a late reader may still read from it.
func arenaRelease(mem []byte) { _ = syscall.Madvise(mem, syscall.MADV_DONTNEED) }
