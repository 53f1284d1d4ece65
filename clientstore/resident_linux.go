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
