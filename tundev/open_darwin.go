package tundev

import "fmt"

// openPlatform opens a darwin TUN: "auto" means water; offload is Linux-only.
func openPlatform(name, driver string, mtu int) (Device, error) {
	if driver == DriverOffload {
		return nil, fmt.Errorf("offload: %w", ErrUnsupported)
	}
	return openWater(name, mtu)
}
