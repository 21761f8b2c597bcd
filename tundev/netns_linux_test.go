package tundev_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/peer-vpn/peer/tundev"
	"github.com/peer-vpn/peer/tundev/tuntest"
)

// requireRoot skips a test that needs root and the ip tool, except in CI,
// where their absence is a failure.
func requireRoot(t *testing.T) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root"
	} else if _, err := exec.LookPath("ip"); err != nil {
		why = "needs the ip tool"
	} else if _, err := os.Stat("/dev/net/tun"); err != nil {
		why = "needs /dev/net/tun"
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip(why)
}

func run(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

var nsCounter atomic.Int32

// enterNetns locks the calling goroutine to its thread and moves the thread
// into the named namespace. The returned function moves it back.
func enterNetns(t *testing.T, ns string) (leave func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	target, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(orig)
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		unix.Close(orig)
		runtime.UnlockOSThread()
		t.Fatalf("setns %s: %v", ns, err)
	}
	return func() {
		defer unix.Close(orig)
		// If the thread cannot go back, leave it locked: the runtime then
		// discards it when the goroutine ends.
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			t.Errorf("setns back: %v", err)
			return
		}
		runtime.UnlockOSThread()
	}
}

// inNetns creates a fresh network namespace, runs fn with the calling
// goroutine's thread inside it, and deletes the namespace afterwards.
// Devices created by fn belong to the namespace. (Subtests run on other
// goroutines: they use enterNetns themselves.)
func inNetns(t *testing.T, fn func(ns string)) {
	t.Helper()
	ns := fmt.Sprintf("tundevtest-%d-%d", os.Getpid(), nsCounter.Add(1))
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", ns, err, out)
		}
	})
	leave := enterNetns(t, ns)
	defer leave()
	fn(ns)
}

// udpSocket opens an IPv4 UDP socket inside ns bound to addr.
func udpSocket(t *testing.T, ns string, addr netip.AddrPort) int {
	t.Helper()
	leave := enterNetns(t, ns)
	defer leave()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()}); err != nil {
		t.Fatalf("bind %v in %s: %v", addr, ns, err)
	}
	return fd
}

func makeBufs(n, size int) ([][]byte, []int) {
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, size)
	}
	return bufs, make([]int, n)
}

// within fails the test if done is not closed before the guard expires. The
// guard only bounds a hang; no result depends on timing.
func within(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not return", what)
	}
}

// headroom is the offset these tests read and write at.
const headroom = tuntest.Headroom

// withHeadroom returns pkt preceded by headroom zero bytes.
func withHeadroom(pkt []byte) []byte {
	return append(make([]byte, headroom), pkt...)
}

// reader reads packets from dev until keep has accepted want packets, and
// reports the number of Read calls that returned packets. A guard closes
// the device if the packets never come, so a failure cannot hang.
func reader(t *testing.T, dev tundev.Device, want int, keep func(pkt []byte) bool) (calls int) {
	t.Helper()
	guard := time.AfterFunc(20*time.Second, func() { dev.Close() })
	defer guard.Stop()
	bufs, sizes := makeBufs(dev.BatchSize(), headroom+65535)
	got := 0
	for got < want {
		n, err := dev.Read(bufs, sizes, headroom)
		if err != nil {
			t.Fatalf("Read after %d of %d packets: %v", got, want, err)
		}
		if n > 1 {
			calls++ // a batch: count how many multi-packet reads we saw
		}
		for i := range n {
			if keep(bufs[i][headroom : headroom+sizes[i]]) {
				got++
			}
		}
	}
	return calls
}

var (
	tunAddr  = netip.MustParseAddr("192.0.2.1")
	peerAddr = netip.MustParseAddr("192.0.2.2")
)

// openInNetns opens a TUN in a fresh namespace, assigns tunAddr/24 and
// brings it up, then runs fn.
func openInNetns(t *testing.T, driver string, fn func(ns string, dev tundev.Device)) {
	inNetns(t, func(ns string) {
		dev, err := tundev.Open("peertest0", driver, 1400)
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := dev.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
				t.Errorf("Close: %v", err)
			}
		}()
		if dev.Name() != "peertest0" || dev.MTU() != 1400 {
			t.Fatalf("Name, MTU = %q, %d", dev.Name(), dev.MTU())
		}
		if want := driver; want != "auto" && dev.Driver() != want {
			t.Fatalf("Driver = %q, want %q", dev.Driver(), want)
		}
		out, err := exec.Command("ip", "-n", ns, "link", "show", "peertest0").CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("mtu 1400")) {
			t.Fatalf("ip link show: %v\n%s", err, out)
		}
		run(t, "ip", "-n", ns, "addr", "add", tunAddr.String()+"/24", "dev", "peertest0")
		run(t, "ip", "-n", ns, "link", "set", "peertest0", "up")
		fn(ns, dev)
	})
}

func TestRealDevice(t *testing.T) {
	requireRoot(t)
	for _, driver := range []string{"water", "offload", "auto"} {
		t.Run(driver, func(t *testing.T) {
			openInNetns(t, driver, func(ns string, dev tundev.Device) {
				t.Logf("driver %s, batch size %d", dev.Driver(), dev.BatchSize())
				t.Run("ping", func(t *testing.T) { testPing(t, dev) })
				t.Run("udp in", func(t *testing.T) { testUDPIn(t, ns, dev) })
				t.Run("udp out", func(t *testing.T) { testUDPOut(t, ns, dev) })
			})
		})
	}
}

// testPing writes an echo request to the TUN's own address and expects the
// kernel's echo reply back through the TUN.
func testPing(t *testing.T, dev tundev.Device) {
	const id = 0x5eed
	data := []byte("tundev ping payload")
	req := tuntest.ICMPEcho(peerAddr, tunAddr, id, 1, data)
	if n, err := dev.Write([][]byte{withHeadroom(req)}, headroom); err != nil || n != 1 {
		t.Fatalf("Write = %d, %v", n, err)
	}
	reader(t, dev, 1, func(p []byte) bool {
		if len(p) < 28 || p[0]>>4 != 4 || p[9] != 1 {
			return false
		}
		src, _ := netip.AddrFromSlice(p[12:16])
		dst, _ := netip.AddrFromSlice(p[16:20])
		icmp := p[20:]
		if src != tunAddr || dst != peerAddr || icmp[0] != 0 || binary.BigEndian.Uint16(icmp[4:]) != id {
			return false
		}
		if tuntest.Checksum(p[:20], 0) != 0xffff || tuntest.Checksum(icmp, 0) != 0xffff {
			t.Errorf("bad checksum in reply %x", p)
		}
		if !bytes.Equal(icmp[8:], data) {
			t.Errorf("reply data %q, want %q", icmp[8:], data)
		}
		return true
	})
}

// testUDPIn writes a batch of UDP datagrams of one flow (which the offload
// driver may coalesce) to a socket listening on the TUN's address.
func testUDPIn(t *testing.T, ns string, dev tundev.Device) {
	fd := udpSocket(t, ns, netip.AddrPortFrom(tunAddr, 4000))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 10}); err != nil {
		t.Fatal(err)
	}
	const count = 8
	bufs := make([][]byte, count)
	for i := range bufs {
		data := bytes.Repeat([]byte{byte('a' + i)}, 1000)
		bufs[i] = withHeadroom(tuntest.SetUDP4Checksum(tuntest.IPv4(tuntest.ProtoUDP, peerAddr, tunAddr, tuntest.UDP(5000, 4000, data))))
	}
	for start := 0; start < count; start += dev.BatchSize() {
		end := min(start+dev.BatchSize(), count)
		if n, err := dev.Write(bufs[start:end], headroom); err != nil || n != end-start {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	buf := make([]byte, 2000)
	for i := range count {
		n, from, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if sa, ok := from.(*unix.SockaddrInet4); !ok || sa.Addr != peerAddr.As4() || sa.Port != 5000 {
			t.Fatalf("datagram %d from %v", i, from)
		}
		if want := bytes.Repeat([]byte{byte('a' + i)}, 1000); !bytes.Equal(buf[:n], want) {
			t.Fatalf("datagram %d: %d bytes starting %q, want 1000 of %q", i, n, buf[:min(n, 4)], want[:1])
		}
	}
}

// testUDPOut sends from a socket in the namespace through the TUN. It uses
// UDP GSO so that, with the offload driver, the kernel hands the TUN one
// super-packet that Read must split into MTU-sized datagrams.
func testUDPOut(t *testing.T, ns string, dev tundev.Device) {
	fd := udpSocket(t, ns, netip.AddrPortFrom(tunAddr, 4001))
	const seg, count = 1000, 6
	if err := unix.SetsockoptInt(fd, unix.SOL_UDP, unix.UDP_SEGMENT, seg); err != nil {
		t.Fatal("UDP_SEGMENT:", err)
	}
	payload := make([]byte, seg*count)
	for i := range payload {
		payload[i] = byte(i / seg)
	}
	if err := unix.Sendto(fd, payload, 0, &unix.SockaddrInet4{Port: 6000, Addr: peerAddr.As4()}); err != nil {
		t.Fatal(err)
	}
	seen := make([]bool, count)
	batches := reader(t, dev, count, func(p []byte) bool {
		if len(p) < 28 || p[0]>>4 != 4 || p[9] != 17 || binary.BigEndian.Uint16(p[22:]) != 6000 {
			return false
		}
		data := p[28:]
		if len(data) != seg {
			t.Fatalf("datagram of %d bytes, want %d", len(data), seg)
		}
		i := int(data[0])
		if i >= count || seen[i] || !bytes.Equal(data, bytes.Repeat([]byte{byte(i)}, seg)) {
			t.Fatalf("unexpected datagram starting %x", data[:4])
		}
		if tuntest.Checksum(p[:20], 0) != 0xffff {
			t.Errorf("bad IPv4 checksum in datagram %d", i)
		}
		seen[i] = true
		return true
	})
	t.Logf("%d multi-packet reads", batches)
	if dev.Driver() == tundev.DriverOffload && dev.BatchSize() > 1 && batches == 0 {
		t.Error("offload driver never returned more than one packet per Read")
	}
}

func TestRealDeviceCloseUnblocksRead(t *testing.T) {
	requireRoot(t)
	for _, driver := range []string{"water", "offload"} {
		t.Run(driver, func(t *testing.T) {
			openInNetns(t, driver, func(ns string, dev tundev.Device) {
				done := make(chan struct{})
				var err error
				go func() {
					defer close(done)
					bufs, sizes := makeBufs(dev.BatchSize(), headroom+65535)
					for err == nil {
						_, err = dev.Read(bufs, sizes, headroom)
					}
				}()
				if cerr := dev.Close(); cerr != nil {
					t.Fatal(cerr)
				}
				within(t, done, "Read")
				if !errors.Is(err, os.ErrClosed) {
					t.Errorf("Read after Close: %v, want os.ErrClosed", err)
				}
			})
		})
	}
}

func TestOffloadWriteNeedsHeadroom(t *testing.T) {
	requireRoot(t)
	openInNetns(t, "offload", func(ns string, dev tundev.Device) {
		pkt := tuntest.ICMPEcho(peerAddr, tunAddr, 1, 1, nil)
		if _, err := dev.Write([][]byte{append(make([]byte, 4), pkt...)}, 4); err == nil {
			t.Fatal("Write with 4 bytes of headroom succeeded")
		}
	})
}
