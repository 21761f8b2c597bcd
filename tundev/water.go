//go:build linux || darwin

package tundev

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/songgao/water"
	"golang.org/x/sys/unix"
)

// waterBatch is how many packets one Read may return on Linux, where the
// TUN file descriptor is non-blocking and drained until it runs dry.
const waterBatch = 64

// waterDevice adapts a water TUN interface: one packet per read(2), up to
// waterBatch of them per Read on Linux.
type waterDevice struct {
	ifce *water.Interface
	name string
	mtu  int
	// raw is the descriptor under water's file on Linux, read directly so
	// one wake-up returns every queued packet; nil elsewhere (darwin's utun
	// prefixes each packet with a header that water strips).
	raw syscall.RawConn

	readMu    sync.Mutex
	writeMu   sync.Mutex
	closed    atomic.Bool
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
	if f, ok := ifce.ReadWriteCloser.(*os.File); ok && runtime.GOOS == "linux" {
		if rc, err := f.SyscallConn(); err == nil {
			d.raw = rc
		}
	}
	if err := setMTU(d.name, mtu); err != nil {
		ifce.Close()
		return nil, fmt.Errorf("set MTU %d on %s: %w", mtu, d.name, err)
	}
	return d, nil
}

// Read implements Device: on Linux every packet queued (up to len(bufs)),
// elsewhere exactly one into bufs[0][offset:].
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
	if d.raw != nil {
		return d.readMany(bufs, sizes, offset)
	}
	n, err := d.ifce.Read(bufs[0][offset:])
	if err != nil {
		return 0, fmt.Errorf("tundev: read %s (water): %w", d.name, err)
	}
	sizes[0] = n
	return 1, nil
}

// readMany waits until the TUN is readable, then reads packets until it
// would block or bufs are full: still one read(2) per packet (a TUN has no
// batch read without offloads), but the whole burst goes on together, so
// the UDP side can send it with one system call.
func (d *waterDevice) readMany(bufs [][]byte, sizes []int, offset int) (int, error) {
	n := 0
	var rerr error
	err := d.raw.Read(func(fd uintptr) bool {
		for n < len(bufs) {
			if err := checkOffset(bufs[n], offset); err != nil {
				rerr = err
				return true
			}
			m, err := unix.Read(int(fd), bufs[n][offset:])
			if err == unix.EINTR {
				continue
			}
			if err == unix.EAGAIN {
				break
			}
			if err != nil {
				rerr = err
				return true
			}
			sizes[n] = m
			n++
		}
		return n > 0 // nothing yet: wait for the poller
	})
	if n > 0 {
		return n, nil
	}
	if err == nil {
		err = rerr
	}
	// The raw descriptor reports a closed file as the poller's own error;
	// callers expect os.ErrClosed, as from os.File.
	if errors.Is(err, os.ErrClosed) || d.closed.Load() {
		return 0, fmt.Errorf("tundev: read %s (water): %w", d.name, os.ErrClosed)
	}
	return 0, fmt.Errorf("tundev: read %s (water): %w", d.name, err)
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
func (d *waterDevice) BatchSize() int {
	if d.raw != nil {
		return waterBatch
	}
	return 1
}

// MTU implements Device; it is the MTU set by Open.
func (d *waterDevice) MTU() int { return d.mtu }

// Name implements Device.
func (d *waterDevice) Name() string { return d.name }

// Driver implements Device.
func (d *waterDevice) Driver() string { return DriverWater }

// Close implements Device.
func (d *waterDevice) Close() error {
	d.closeOnce.Do(func() {
		d.closed.Store(true)
		if err := d.ifce.Close(); err != nil {
			d.closeErr = fmt.Errorf("tundev: close %s (water): %w", d.name, err)
		}
	})
	return d.closeErr
}
