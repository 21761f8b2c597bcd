//go:build !linux && !darwin

package tundev

// openPlatform reports that no TUN driver is wired up on this platform.
func openPlatform(name, driver string, mtu int) (Device, error) {
	return nil, ErrUnsupported
}
