package tundev

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// setMTU sets the MTU of the interface called name with SIOCSIFMTU.
func setMTU(name string, mtu int) error {
	var ifr unix.IfreqMTU
	if len(name) >= len(ifr.Name) {
		return fmt.Errorf("interface name %q too long", name)
	}
	copy(ifr.Name[:], name)
	ifr.MTU = int32(mtu)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		return fmt.Errorf("socket for ioctl: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.IoctlSetIfreqMTU(fd, &ifr); err != nil {
		return fmt.Errorf("SIOCSIFMTU: %w", err)
	}
	return nil
}
