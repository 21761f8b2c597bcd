// Package tundev hides the platform's TUN device behind a small batch-shaped
// interface, so the rest of the node can be tested against an in-memory fake
// (tuntest.Memory).
//
// The Device interface deliberately has the same shape as wireguard-go's
// tun.Device: packets are read and written in batches, and every packet
// buffer keeps some headroom (the offset) in front of the packet so that a
// transport header can later be written in place without copying.
package tundev

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Device is a TUN device read and written in batches. Same shape as
// wireguard-go's tun.Device on purpose.
//
// Read may be called from one goroutine while Write is called from another;
// concurrent calls of the same method are serialized by the implementations
// in this package.
type Device interface {
	// Read reads up to len(bufs) packets; packet i lands in bufs[i][offset:]
	// and its length in sizes[i]. len(sizes) must be at least len(bufs).
	// Returns the count. After Close it returns an error matching
	// os.ErrClosed.
	Read(bufs [][]byte, sizes []int, offset int) (int, error)
	// Write writes bufs[i][offset:] for each i (bufs may be modified in
	// place: the offload driver coalesces). Returns the count written.
	Write(bufs [][]byte, offset int) (int, error)
	// BatchSize is the maximum number of packets per Read or Write.
	BatchSize() int
	// MTU is the device's current MTU.
	MTU() int
	// Name is the actual interface name (the kernel may have chosen it).
	Name() string
	// Driver is "water", "offload", "netstack" or "memory".
	Driver() string
	// Close closes the device and unblocks a pending Read.
	Close() error
}

// VirtioHeaderLen is the size of the virtio-net header that the offload
// driver writes in front of each packet, inside the caller's headroom.
const VirtioHeaderLen = 10

// Driver names. Open takes the kernel's (auto, water, offload), OpenNetstack
// makes a netstack device. DriverMemory is the in-memory fake's and is not
// one of them.
const (
	DriverAuto     = "auto"
	DriverWater    = "water"
	DriverOffload  = "offload"
	DriverNetstack = "netstack"
	DriverMemory   = "memory"
)

// Drivers returns the names a node may be given, default first. Every other
// package that names drivers (the mesh file's interface.driver, the -driver
// flag) asks this list instead of keeping its own.
func Drivers() []string { return []string{DriverAuto, DriverWater, DriverOffload, DriverNetstack} }

// CheckDriver reports whether Open accepts driver. It says nothing of the
// platform: offload is a known name on darwin too, where Open reports
// ErrUnsupported.
func CheckDriver(driver string) error {
	if !slices.Contains(Drivers(), driver) {
		return fmt.Errorf("unknown driver %q; use one of %s", driver, strings.Join(Drivers(), ", "))
	}
	return nil
}

// The MTU range of the device; this file is their one owner, the mesh file
// check and the reload ask CheckMTU. MinMTU is the largest of the
// platforms' minimums, so that one mesh file comes up on every host: Linux's
// tun driver takes 68 to 65535 (SIOCSIFMTU refuses 67 and 65536, measured
// with both drivers), darwin's ifioctl 72 (IF_MINMTU: a TCP/IP header and
// the smallest MSS) to 65535. MaxMTU is the largest IP packet. MinMTUIPv6 is
// the IPv6 minimum link MTU (RFC 8200): below it Linux refuses every IPv6
// address on the device (measured: 1279 refused, 1280 taken), so the link
// could not be configured.
const (
	MinMTU     = 72
	MinMTUIPv6 = 1280
	MaxMTU     = 65535
)

// CheckMTU reports whether a device of this MTU can be opened and, when it
// carries IPv6 (ipv6), be given its IPv6 addresses and routes.
func CheckMTU(mtu int, ipv6 bool) error {
	switch {
	case mtu < MinMTU:
		return fmt.Errorf("%d is below the minimum %d", mtu, MinMTU)
	case mtu > MaxMTU:
		return fmt.Errorf("%d is above the maximum %d", mtu, MaxMTU)
	case ipv6 && mtu < MinMTUIPv6:
		return fmt.Errorf("%d is below %d, the IPv6 minimum", mtu, MinMTUIPv6)
	}
	return nil
}

// ErrUnsupported is returned (wrapped) by Open when the requested driver is
// not available on this platform.
var ErrUnsupported = errors.New("driver not supported on this platform")

// Open creates a TUN device.
//
// driver is "auto" (offload on Linux when the kernel supports IFF_VNET_HDR
// with TSO, else water), "water" (github.com/songgao/water: one packet per
// Read), or "offload" (Linux only: golang.zx2c4.com/wireguard/tun, which
// uses IFF_VNET_HDR with TSO/USO, splitting GSO super-packets on Read and
// coalescing on Write, so Read may return many MTU-sized packets per call).
// With the offload driver, Read needs len(bufs) >= BatchSize() to receive a
// whole super-packet, and Write needs offset >= VirtioHeaderLen.
//
// Open does not assign addresses or bring the link up, but it sets the MTU.
// On darwin name must be empty or utunN. Errors name the device and driver.
func Open(name, driver string, mtu int) (Device, error) {
	if err := CheckMTU(mtu, false); err != nil {
		return nil, fmt.Errorf("tundev: open %q (driver %s): MTU %w", name, driver, err)
	}
	if err := CheckDriver(driver); err != nil {
		return nil, fmt.Errorf("tundev: open %q: %w", name, err)
	}
	if driver == DriverNetstack {
		return nil, fmt.Errorf("tundev: open %q: driver netstack has no kernel device: use OpenNetstack", name)
	}
	dev, err := openPlatform(name, driver, mtu)
	if err != nil {
		return nil, fmt.Errorf("tundev: open %q (driver %s): %w", name, driver, err)
	}
	return dev, nil
}

// checkBatch validates the arguments shared by Read and Write.
func checkBatch(nbufs, nsizes, offset int) error {
	if offset < 0 {
		return fmt.Errorf("tundev: negative offset %d", offset)
	}
	if nsizes < nbufs {
		return fmt.Errorf("tundev: %d sizes for %d buffers", nsizes, nbufs)
	}
	return nil
}

// checkOffset reports an error if buf has no room after offset.
func checkOffset(buf []byte, offset int) error {
	if offset > len(buf) {
		return fmt.Errorf("tundev: offset %d beyond buffer of %d bytes", offset, len(buf))
	}
	return nil
}
