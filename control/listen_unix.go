//go:build unix

package control

import (
	"net"
	"sync"

	"golang.org/x/sys/unix"
)

var umaskMu sync.Mutex

func listenPrivate(path string) (net.Listener, error) {
	umaskMu.Lock()
	old := unix.Umask(0o177)
	ln, err := net.Listen("unix", path)
	unix.Umask(old)
	umaskMu.Unlock()
	return ln, err
}
