//go:build unix

package config

import (
	"io/fs"
	"os"
	"syscall"
)

// openNonBlocking opens path read-only without waiting for a writer when it
// is a FIFO (the caller refuses non-regular files after fstat).
func openNonBlocking(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
}

// fileOwner returns the uid owning fi.
func fileOwner(fi fs.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}
