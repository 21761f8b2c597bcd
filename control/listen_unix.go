//go:build unix

package control

import (
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"

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

// checkDir refuses a socket directory that someone other than root or this
// process's user could write to, or that is not a directory.
func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("not a directory")
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("mode %04o lets group or others write to it; use a directory only root can write, such as %s", perm, DefaultDir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if me := os.Geteuid(); st.Uid != 0 && int(st.Uid) != me {
			return fmt.Errorf("owned by uid %d, neither root nor this process's user (uid %d)", st.Uid, me)
		}
	}
	return nil
}
