//go:build linux || darwin

package tundev

import (
	"fmt"
	"sync"

	"github.com/songgao/water"
)

// waterDevice adapts a water TUN interface, one packet per Read.
type waterDevice struct {
	ifce *water.Interface
	name string
	mtu  int

	readMu    sync.Mutex
	writeMu   sync.Mutex
	closeOnce sync.Once
	closeErr  error
}

var _ Device = (*waterDevice)(nil)

// openWater creates a TUN interface with water and sets its MTU.
func openWater(name string, mtu int) (Device, error) {
	cfg := water.Config{DeviceType: water.TUN}
	cfg.PlatformSpecificParams = waterParams(name)
	ifce, err := water.New(cfg)
	if err != nil {
		return nil, err
	}
	d := &waterDevice{ifce: ifce, name: ifce.Name(), mtu: mtu}
	if err := setMTU(d.name, mtu); err != nil {
		ifce.Close()
		return nil, fmt.Errorf("set MTU %d on %s: %w", mtu, d.name, err)
	}
	return d, nil
}

// Read implements Device: it reads exactly one packet into bufs[0][offset:].
func (d *waterDevice) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if err := checkBatch(len(bufs), len(sizes), offset); err != nil {
		return 0, err
	}
	if len(bufs) == 0 {
		return 0, nil
	}
	if err := checkOffset(bufs[0], offset); err != nil {
		return 0, err
	}
	d.readMu.Lock()
	defer d.readMu.Unlock()
	n, err := d.ifce.Read(bufs[0][offset:])
	if err != nil {
		return 0, fmt.Errorf("tundev: read %s (water): %w", d.name, err)
	}
	sizes[0] = n
	return 1, nil
}

// Write implements Device: one write system call per packet.
func (d *waterDevice) Write(bufs [][]byte, offset int) (int, error) {
	if err := checkBatch(len(bufs), len(bufs), offset); err != nil {
		return 0, err
	}
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	for i, b := range bufs {
		if err := checkOffset(b, offset); err != nil {
			return i, err
		}
		if _, err := d.ifce.Write(b[offset:]); err != nil {
			return i, fmt.Errorf("tundev: write %s (water): %w", d.name, err)
		}
	}
	return len(bufs), nil
}

// BatchSize implements Device; water moves one packet per call.
func (d *waterDevice) BatchSize() int { return 1 }

// MTU implements Device; it is the MTU set by Open.
func (d *waterDevice) MTU() int { return d.mtu }

// Name implements Device.
func (d *waterDevice) Name() string { return d.name }

// Driver implements Device.
func (d *waterDevice) Driver() string { return DriverWater }

// Close implements Device.
func (d *waterDevice) Close() error {
	d.closeOnce.Do(func() {
		if err := d.ifce.Close(); err != nil {
			d.closeErr = fmt.Errorf("tundev: close %s (water): %w", d.name, err)
		}
	})
	return d.closeErr
}
