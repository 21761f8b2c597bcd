package tundev

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"golang.zx2c4.com/wireguard/tun"
)

// offloadDevice adapts wireguard-go's Linux TUN, which speaks IFF_VNET_HDR:
// Read splits GSO super-packets into MTU-sized packets and Write coalesces
// TCP/UDP segments (GRO) in place before handing them to the kernel.
type offloadDevice struct {
	dev   tun.Device
	name  string
	batch int
	mtu   atomic.Int64

	readMu    sync.Mutex
	writeMu   sync.Mutex
	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
	events    sync.WaitGroup
}

var _ Device = (*offloadDevice)(nil)

// openOffload creates the TUN with tun.CreateTUN (which sets the MTU) and
// starts draining its event channel, which must never block.
func openOffload(name string, mtu int) (Device, error) {
	dev, err := tun.CreateTUN(name, mtu)
	if err != nil {
		return nil, err
	}
	actual, err := dev.Name()
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("reading interface name: %w", err)
	}
	d := &offloadDevice{dev: dev, name: actual, batch: max(dev.BatchSize(), 1)}
	d.mtu.Store(int64(mtu))
	d.events.Add(1)
	go d.drainEvents()
	return d, nil
}

// drainEvents consumes the device's events until Close closes the channel,
// tracking MTU changes made behind our back.
func (d *offloadDevice) drainEvents() {
	defer d.events.Done()
	for ev := range d.dev.Events() {
		if ev&tun.EventMTUUpdate == 0 {
			continue
		}
		if m, err := d.dev.MTU(); err == nil && m > 0 {
			d.mtu.Store(int64(m))
		}
	}
}

// Read implements Device. One call may return up to len(bufs) packets split
// from a single GSO super-packet; len(bufs) should be at least BatchSize.
func (d *offloadDevice) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if err := checkBatch(len(bufs), len(sizes), offset); err != nil {
		return 0, err
	}
	if len(bufs) == 0 {
		return 0, nil
	}
	for _, b := range bufs {
		if err := checkOffset(b, offset); err != nil {
			return 0, err
		}
	}
	d.readMu.Lock()
	defer d.readMu.Unlock()
	if d.closed.Load() {
		return 0, fmt.Errorf("tundev: read %s (offload): %w", d.name, os.ErrClosed)
	}
	n, err := d.dev.Read(bufs, sizes, offset)
	if err != nil {
		if d.closed.Load() {
			// Closing also stops wireguard-go's netlink listener, whose
			// error may surface here instead of os.ErrClosed.
			err = os.ErrClosed
		}
		return n, fmt.Errorf("tundev: read %s (offload): %w", d.name, err)
	}
	return n, nil
}

// Write implements Device. The virtio-net header is written into the
// VirtioHeaderLen bytes before each packet, and packets may be coalesced in
// place, so bufs is modified. On success it returns len(bufs); on error the
// packets that failed are unknown and it returns 0.
func (d *offloadDevice) Write(bufs [][]byte, offset int) (int, error) {
	if err := checkBatch(len(bufs), len(bufs), offset); err != nil {
		return 0, err
	}
	if offset < VirtioHeaderLen {
		return 0, fmt.Errorf("tundev: write %s (offload): offset %d below the %d-byte virtio header", d.name, offset, VirtioHeaderLen)
	}
	if len(bufs) == 0 {
		return 0, nil
	}
	for _, b := range bufs {
		if offset >= len(b) {
			return 0, fmt.Errorf("tundev: write %s (offload): empty packet (offset %d, buffer %d bytes)", d.name, offset, len(b))
		}
	}
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	// wireguard-go's Write returns a byte count, not a packet count.
	if _, err := d.dev.Write(bufs, offset); err != nil {
		return 0, fmt.Errorf("tundev: write %s (offload): %w", d.name, err)
	}
	return len(bufs), nil
}

// BatchSize implements Device.
func (d *offloadDevice) BatchSize() int { return d.batch }

// MTU implements Device.
func (d *offloadDevice) MTU() int { return int(d.mtu.Load()) }

// Name implements Device.
func (d *offloadDevice) Name() string { return d.name }

// Driver implements Device.
func (d *offloadDevice) Driver() string { return DriverOffload }

// Close implements Device; it waits for the event drainer to stop.
func (d *offloadDevice) Close() error {
	d.closeOnce.Do(func() {
		d.closed.Store(true)
		if err := d.dev.Close(); err != nil {
			d.closeErr = fmt.Errorf("tundev: close %s (offload): %w", d.name, err)
		}
		d.events.Wait()
	})
	return d.closeErr
}
