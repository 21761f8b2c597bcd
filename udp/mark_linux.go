package udp

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// setMark sets SO_MARK on pc's socket, which needs CAP_NET_ADMIN.
func setMark(pc *net.UDPConn, port uint16, mark uint32) error {
	rc, err := pc.SyscallConn()
	if err != nil {
		return fmt.Errorf("udp: set mark %d on port %d: %w", mark, port, err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		// The kernel reads the option as a u32: the conversion keeps the bits.
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark))
	}); err != nil {
		return fmt.Errorf("udp: set mark %d on port %d: %w", mark, port, err)
	}
	if serr != nil {
		return fmt.Errorf("udp: set mark %d on port %d: SO_MARK: %w", mark, port, serr)
	}
	return nil
}
