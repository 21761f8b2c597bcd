//go:build !linux

package udp

import (
	"errors"
	"fmt"
	"net"
)

// setMark fails: SO_MARK is Linux's, and only the Linux routing of an exit
// needs the mark. (wireguard-go maps it to SO_USER_COOKIE on FreeBSD and
// SO_RTABLE on OpenBSD, where route setup would have to match.)
func setMark(_ *net.UDPConn, port uint16, mark uint32) error {
	return fmt.Errorf("udp: set mark %d on port %d: %w", mark, port, errors.ErrUnsupported)
}
