package tundev

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// openPlatform opens a Linux TUN with the requested driver. "auto" tries
// offload first and falls back to water when the kernel refuses
// IFF_VNET_HDR/TSO (the offload device then reports a batch size of 1).
func openPlatform(name, driver string, mtu int) (Device, error) {
	if len(name) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("interface name longer than %d bytes", unix.IFNAMSIZ-1)
	}
	switch driver {
	case DriverWater:
		return openWater(name, mtu)
	case DriverOffload:
		return openOffload(name, mtu)
	}
	dev, errOffload := openOffload(name, mtu)
	if errOffload == nil {
		if dev.BatchSize() > 1 {
			return dev, nil
		}
		// The kernel took IFF_VNET_HDR but not TSO: water is just as good
		// and simpler. Closing deletes the interface, so the name is free.
		if err := dev.Close(); err != nil {
			return nil, fmt.Errorf("closing offload device without TSO: %w", err)
		}
	}
	dev, errWater := openWater(name, mtu)
	if errWater != nil {
		if errOffload != nil {
			return nil, errors.Join(fmt.Errorf("offload: %w", errOffload), fmt.Errorf("water: %w", errWater))
		}
		return nil, fmt.Errorf("water: %w", errWater)
	}
	return dev, nil
}
