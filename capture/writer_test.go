package capture

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/curve25519"
)

type readPacket struct {
	data  []byte
	ci    gopacket.CaptureInfo
	iface string
	drops uint64
}

type readBack struct {
	packets []readPacket
	ifaces  []pcapgo.NgInterface
	stats   map[int]pcapgo.NgInterfaceStatistics
}

// readNg reads a pcapng file with pcapgo's NgReader.
func readNg(t *testing.T, path string) readBack {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rb := readBack{stats: map[int]pcapgo.NgInterfaceStatistics{}}
	r, err := pcapgo.NewNgReader(f, pcapgo.NgReaderOptions{
		StatisticsCallback: func(id int, s pcapgo.NgInterfaceStatistics) { rb.stats[id] = s },
	})
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for {
		data, ci, opts, err := r.ReadPacketDataWithOptions()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		intf, err := r.Interface(ci.InterfaceIndex)
		if err != nil {
			t.Fatal(err)
		}
		p := readPacket{data: data, ci: ci, iface: intf.Name}
		if opts.DropCount != nil {
			p.drops = *opts.DropCount
		}
		rb.packets = append(rb.packets, p)
	}
	for i := 0; i < r.NInterfaces(); i++ {
		intf, _ := r.Interface(i)
		rb.ifaces = append(rb.ifaces, intf)
	}
	return rb
}

type block struct {
	typ  uint32
	body []byte // after type and length, before the trailing length
}

// blocks splits a little-endian pcapng file into blocks, checking lengths.
func blocks(t *testing.T, path string) []block {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []block
	for len(b) > 0 {
		if len(b) < 12 {
			t.Fatalf("%s: %d stray bytes at the end", path, len(b))
		}
		typ, n := binary.LittleEndian.Uint32(b), int(binary.LittleEndian.Uint32(b[4:]))
		if n < 12 || n%4 != 0 || n > len(b) || binary.LittleEndian.Uint32(b[n-4:]) != uint32(n) {
			t.Fatalf("%s: bad block length %d", path, n)
		}
		out = append(out, block{typ, b[8 : n-4]})
		b = b[n:]
	}
	return out
}

// secrets returns the WireGuard decryption-secrets payloads of a file and
// the number of packet blocks before the first one.
func secrets(t *testing.T, path string) (payloads []string, packetsBefore int) {
	packetsBefore = -1
	n := 0
	for _, bl := range blocks(t, path) {
		switch bl.typ {
		case 6:
			n++
		case 10:
			if binary.LittleEndian.Uint32(bl.body) != 0x57474b4c {
				t.Errorf("secrets type %#x", binary.LittleEndian.Uint32(bl.body))
			}
			l := binary.LittleEndian.Uint32(bl.body[4:])
			payloads = append(payloads, string(bl.body[8:8+l]))
			if packetsBefore < 0 {
				packetsBefore = n
			}
		}
	}
	return payloads, packetsBefore
}

func TestWriterRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cap.pcapng")
	w, err := NewWriter(Options{Path: path, Outer: true, Keys: true})
	if err != nil {
		t.Fatal(err)
	}
	type sent struct {
		data  []byte
		t     time.Time
		iface string
	}
	var want []sent
	at := t0
	inner := func(dir Direction, peer string, p []byte) {
		at = at.Add(1234567 * time.Nanosecond)
		w.Inner(at, dir, peer, p)
		want = append(want, sent{bytes.Clone(p), at, string(AppendLabel(nil, dir, peer))})
	}
	for i, p := range readCorpusFile(t, filepath.Join(testdata, "icmp4.pcap")) {
		inner(Direction(1+i%2), "beta", p.ip)
	}

	hs := newHandshake(t)
	w.StaticKey(at, hs.static)
	w.HandshakeKeys(at, "beta", hs.keys)
	src4, dst4 := netip.MustParseAddrPort("192.0.2.1:51820"), netip.MustParseAddrPort("198.51.100.2:51821")
	at = at.Add(time.Millisecond)
	w.Outer(at, ToPeer, src4, dst4, hs.initiation)
	want = append(want, sent{nil, at, WireOut})
	src6, dst6 := netip.MustParseAddrPort("[2001:db8::2]:51821"), netip.MustParseAddrPort("[2001:db8::1]:51820")
	keepalive := wg(4, 32)
	at = at.Add(time.Millisecond)
	w.Outer(at, FromPeer, src6, dst6, keepalive)
	want = append(want, sent{nil, at, WireIn})
	// A v4-mapped address (from a dual-stack socket) is written as IPv4.
	at = at.Add(time.Millisecond)
	w.Outer(at, ToPeer, netip.MustParseAddrPort("[::ffff:192.0.2.1]:51820"), dst4, keepalive)
	want = append(want, sent{nil, at, WireOut})

	for _, p := range readCorpusFile(t, filepath.Join(testdata, "tcp6.pcap"))[:4] {
		inner(ToPeer, "gamma", p.ip)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Dropped() != 0 {
		t.Errorf("dropped %d", w.Dropped())
	}

	rb := readNg(t, path)
	if len(rb.packets) != len(want) {
		t.Fatalf("read %d packets, wrote %d", len(rb.packets), len(want))
	}
	for i, p := range rb.packets {
		if !p.ci.Timestamp.Equal(want[i].t) {
			t.Errorf("packet %d: time %v, want %v", i, p.ci.Timestamp, want[i].t)
		}
		if p.iface != want[i].iface {
			t.Errorf("packet %d: interface %q, want %q", i, p.iface, want[i].iface)
		}
		if want[i].data != nil && !bytes.Equal(p.data, want[i].data) {
			t.Errorf("packet %d: data differs", i)
		}
	}
	for _, intf := range rb.ifaces {
		if intf.LinkType != layers.LinkTypeRaw {
			t.Errorf("interface %q: link type %v", intf.Name, intf.LinkType)
		}
	}
	var names []string
	for _, intf := range rb.ifaces {
		names = append(names, intf.Name)
	}
	if got := strings.Join(names, ","); got != "tun→beta,beta→tun,wire-out,wire-in,tun→gamma" {
		t.Errorf("interfaces %s", got)
	}

	// The outer packets carry the datagram behind correct headers: compare
	// with gopacket's own serialization, checksums included.
	checkOuter(t, rb.packets[6].data, src4, dst4, hs.initiation)
	checkOuter(t, rb.packets[7].data, src6, dst6, keepalive)
	checkOuter(t, rb.packets[8].data, src4, dst4, keepalive)

	// The keys are in a decryption-secrets block before the first wire packet.
	payloads, before := secrets(t, path)
	if !slices.Equal(payloads, hs.keyLog) {
		t.Errorf("secrets %q, want %q", payloads, hs.keyLog)
	}
	if before != 6 {
		t.Errorf("secrets block after %d packets, want 6 (just before the handshake)", before)
	}
	for id, s := range rb.stats {
		if s.PacketsDropped != 0 {
			t.Errorf("interface %d: %d dropped", id, s.PacketsDropped)
		}
	}
	if len(rb.stats) != len(rb.ifaces) {
		t.Errorf("%d statistics blocks for %d interfaces", len(rb.stats), len(rb.ifaces))
	}

	// The offline decoder labels the lines from the interface names.
	var out bytes.Buffer
	if err := decodeFile(&out, path, time.UTC); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"12:00:00.001234 tun→beta IPv4 10.99.0.1 > 10.99.0.2 ICMP echo-request",
		" beta→tun IPv4 10.99.0.2 > 10.99.0.1 ICMP echo-reply",
		" wire-out IPv4 192.0.2.1.51820 > 198.51.100.2.51821 UDP WireGuard handshake-initiation sender=0x",
		" wire-in IPv6 2001:db8::2.51821 > 2001:db8::1.51820 UDP WireGuard keepalive",
		" tun→gamma IPv6 fd99::1.",
	} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("decode output lacks %q:\n%s", s, out.String())
		}
	}

	t.Run("tshark", func(t *testing.T) {
		tshark := needTshark(t)
		out, err := exec.Command(tshark, "-r", path,
			"-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
			"-T", "fields", "-E", "occurrence=f",
			"-e", "frame.interface_name", "-e", "frame.time_epoch", "-e", "_ws.col.Protocol",
			"-e", "ip.checksum.status", "-e", "udp.checksum.status",
			"-e", "wg.type", "-e", "wg.static").Output()
		if err != nil {
			t.Fatalf("tshark: %v\n%s", err, out)
		}
		lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
		if len(lines) != len(want) {
			t.Fatalf("tshark read %d packets, want %d:\n%s", len(lines), len(want), out)
		}
		for i, line := range lines {
			f := strings.Split(line, "\t")
			if f[0] != want[i].iface {
				t.Errorf("tshark packet %d: interface %q, want %q", i, f[0], want[i].iface)
			}
			if ts := fmt.Sprintf("%d.%09d", want[i].t.Unix(), want[i].t.Nanosecond()); f[1] != ts {
				t.Errorf("tshark packet %d: time %s, want %s", i, f[1], ts)
			}
		}
		for i, wantType := range map[int]string{6: "1", 7: "4", 8: "4"} {
			f := strings.Split(lines[i], "\t")
			if f[2] != "WireGuard" || f[5] != wantType {
				t.Errorf("tshark packet %d not dissected as WireGuard type %s: %q", i, wantType, lines[i])
			}
			// Checksum status 1 is "Good" (0 bad, 2 unverified).
			if f[4] != "1" {
				t.Errorf("tshark packet %d: UDP checksum status %q", i, f[4])
			}
			if i != 7 && f[3] != "1" {
				t.Errorf("tshark packet %d: IPv4 checksum status %q", i, f[3])
			}
		}
		// Wireshark decrypted the handshake with the embedded keys alone:
		// the initiator's static key is only readable after decryption.
		if f := strings.Split(lines[6], "\t"); f[6] != hs.initiatorPublic {
			t.Errorf("handshake not decrypted from the embedded keys: static=%q, want %s", f[6], hs.initiatorPublic)
		}
	})
}

// checkOuter compares a written outer packet with gopacket's serialization
// of the same headers.
func checkOuter(t *testing.T, got []byte, src, dst netip.AddrPort, payload []byte) {
	t.Helper()
	udp := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
	var net gopacket.SerializableLayer
	if src.Addr().Is4() {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Flags: layers.IPv4DontFragment, Protocol: layers.IPProtocolUDP,
			SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
		udp.SetNetworkLayerForChecksum(ip)
		net = ip
	} else {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP,
			SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
		udp.SetNetworkLayerForChecksum(ip)
		net = ip
	}
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		net, udp, gopacket.Payload(payload))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, buf.Bytes()) {
		t.Errorf("outer packet %s > %s:\n got %x\nwant %x", src, dst, got[:48], buf.Bytes()[:48])
	}
}

func TestWriterRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rot.pcapng")
	const maxSize = 3000
	w, err := NewWriter(Options{Path: path, MaxSize: maxSize, MaxFiles: 3, Outer: true, Keys: true})
	if err != nil {
		t.Fatal(err)
	}
	pkts := readCorpusFile(t, filepath.Join(testdata, "tcp4.pcap"))
	keys := session(0)
	w.HandshakeKeys(t0, "beta", handshakeKeys(0))
	const n = 60
	for i := 0; i < n; i++ {
		p := pkts[i%len(pkts)].ip
		w.Inner(t0.Add(time.Duration(i)*time.Millisecond), Direction(1+i%2), "beta", p)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	// 60 packets of this mix fill more than 3 files: only the 3 newest remain.
	if len(names) != 3 || names[0] == "rot.pcapng" {
		t.Fatalf("files after rotation: %v", names)
	}
	last := -1
	for _, name := range names {
		p := filepath.Join(dir, name)
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > maxSize {
			t.Errorf("%s: %d bytes > %d", name, st.Size(), maxSize)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", name, st.Mode().Perm())
		}
		rb := readNg(t, p)
		if len(rb.ifaces) != 2 || rb.ifaces[0].Name != "tun→beta" || rb.ifaces[1].Name != "beta→tun" {
			t.Errorf("%s: interfaces %v", name, rb.ifaces)
		}
		if got, _ := secrets(t, p); len(got) != 1 || got[0] != keys {
			t.Errorf("%s: secrets %q", name, got)
		}
		if len(rb.stats) != 2 {
			t.Errorf("%s: %d statistics blocks", name, len(rb.stats))
		}
		for _, pk := range rb.packets {
			i := int(pk.ci.Timestamp.Sub(t0) / time.Millisecond)
			if last >= 0 && i != last+1 {
				t.Errorf("%s: packet %d follows %d", name, i, last)
			}
			last = i
		}
	}
	if last != n-1 {
		t.Errorf("last packet written is %d, want %d", last, n-1)
	}
}

// memFS is an in-memory fileSystem. Writes fail with ENOSPC once limit bytes
// have been written in total, and wait while gate is non-nil and open.
type memFS struct {
	mu      sync.Mutex
	files   map[string]*bytes.Buffer
	written int64
	limit   int64 // < 0: no limit
	entered chan struct{}
	gate    chan struct{}
	once    sync.Once
}

func newMemFS(limit int64) *memFS {
	return &memFS{files: map[string]*bytes.Buffer{}, limit: limit}
}

func (m *memFS) Create(name string) (io.WriteCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := new(bytes.Buffer)
	m.files[name] = b
	return &memFile{m, b}, nil
}

func (m *memFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.files, name)
	return nil
}

type memFile struct {
	m *memFS
	b *bytes.Buffer
}

func (f *memFile) Write(p []byte) (int, error) {
	if f.m.gate != nil {
		f.m.once.Do(func() { close(f.m.entered) })
		<-f.m.gate
	}
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if f.m.limit >= 0 && f.m.written+int64(len(p)) > f.m.limit {
		n := int(f.m.limit - f.m.written)
		f.b.Write(p[:n])
		f.m.written += int64(n)
		return n, &os.PathError{Op: "write", Path: "mem", Err: syscall.ENOSPC}
	}
	f.m.written += int64(len(p))
	return f.b.Write(p)
}

func (f *memFile) Close() error { return nil }

func (m *memFS) file(t *testing.T, name string) string {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.files[name]
	if !ok {
		t.Fatalf("no file %s", name)
	}
	p := filepath.Join(t.TempDir(), "copy.pcapng")
	if err := os.WriteFile(p, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestWriterDropsWhenQueueFull(t *testing.T) {
	fs := newMemFS(-1)
	fs.entered, fs.gate = make(chan struct{}), make(chan struct{})
	w, err := newWriter(Options{Path: "q.pcapng", QueueLen: 4}, fs)
	if err != nil {
		t.Fatal(err)
	}
	pkt := mustPacket(t, "icmp4.pcap", 0)
	w.Inner(t0, ToPeer, "beta", pkt)
	<-fs.entered // the writer goroutine is stuck writing the file header
	start := time.Now()
	for i := 1; i <= 14; i++ {
		w.Inner(t0.Add(time.Duration(i)), ToPeer, "beta", pkt) // 4 queued, 10 dropped
	}
	w.Inner(t0.Add(20), FromPeer, "beta", pkt) // dropped too, on another interface
	if d := time.Since(start); d > time.Second {
		t.Errorf("Inner blocked for %v", d)
	}
	if got := w.Dropped(); got != 11 {
		t.Errorf("Dropped() = %d, want 11", got)
	}
	close(fs.gate)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w.Inner(t0, ToPeer, "beta", pkt) // after Close: counted, no panic
	if got := w.Dropped(); got != 12 {
		t.Errorf("Dropped() after Close = %d, want 12", got)
	}

	rb := readNg(t, fs.file(t, "q.pcapng"))
	if len(rb.packets) != 5 {
		t.Fatalf("%d packets written, want 5", len(rb.packets))
	}
	var epbDrops uint64
	for _, p := range rb.packets {
		epbDrops += p.drops
	}
	if epbDrops != 10 {
		t.Errorf("epb_dropcount total %d, want 10", epbDrops)
	}
	if s := rb.stats[0]; s.PacketsDropped != 10 || s.PacketsReceived != 15 {
		t.Errorf("tun→beta statistics: %d dropped of %d, want 10 of 15", s.PacketsDropped, s.PacketsReceived)
	}
}

func TestWriterDiskFull(t *testing.T) {
	var logBuf lockedBuffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	fs := newMemFS(5000)
	w, err := newWriter(Options{Path: "full.pcapng", Log: log, QueueLen: 8}, fs)
	if err != nil {
		t.Fatal(err)
	}
	pkts := readCorpusFile(t, filepath.Join(testdata, "tcp4.pcap"))
	const n = 200
	for i := 0; i < n; i++ {
		w.Inner(t0.Add(time.Duration(i)), ToPeer, "beta", pkts[i%len(pkts)].ip)
		if i%4 == 0 {
			time.Sleep(time.Millisecond) // let the writer keep up, so most drops come from the error
		}
	}
	err = w.Close()
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Close = %v, want ENOSPC", err)
	}
	lines := logBuf.lines()
	if len(lines) != 1 || !strings.Contains(lines[0], "level=ERROR") || !strings.Contains(lines[0], "packet capture stopped") ||
		!strings.Contains(lines[0], "no space left on device") {
		t.Errorf("want exactly one clear error line, got:\n%s", strings.Join(lines, "\n"))
	}
	// Whatever made it to the file is still a readable capture prefix, and
	// every packet is either in it or counted as dropped.
	b, _ := os.ReadFile(fs.file(t, "full.pcapng"))
	r, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	read := 0
	for {
		if _, _, err := r.ReadPacketData(); err != nil {
			break
		}
		read++
	}
	if read == 0 || uint64(read)+w.Dropped() > n || w.Dropped() == 0 {
		t.Errorf("%d packets readable, %d dropped, of %d", read, w.Dropped(), n)
	}
	// After the failure, Inner does not queue: it only counts.
	before := w.Dropped()
	w.Inner(t0, ToPeer, "beta", pkts[0].ip)
	if w.Dropped() != before+1 {
		t.Error("Inner after failure not counted")
	}
}

func TestWriterOptionsOff(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plain.pcapng")
	w, err := NewWriter(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	w.StaticKey(t0, key(0xee))
	w.HandshakeKeys(t0, "beta", handshakeKeys(1))
	w.Outer(t0, ToPeer, netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("192.0.2.2:2"), wg(4, 32))
	w.Inner(t0, ToPeer, "beta", mustPacket(t, "icmp4.pcap", 0))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := secrets(t, path); len(got) != 0 {
		t.Errorf("keys written without Options.Keys: %q", got)
	}
	rb := readNg(t, path)
	if len(rb.packets) != 1 || len(rb.ifaces) != 1 || rb.ifaces[0].Name != "tun→beta" {
		t.Errorf("got %d packets on %v", len(rb.packets), rb.ifaces)
	}
}

func TestWriterOuterOddAddresses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "odd.pcapng")
	w, err := NewWriter(Options{Path: path, Outer: true})
	if err != nil {
		t.Fatal(err)
	}
	v4, v6 := netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("[2001:db8::1]:2")
	w.Outer(t0, ToPeer, netip.AddrPort{}, netip.AddrPort{}, wg(4, 32)) // unknown addresses
	w.Outer(t0, ToPeer, v4, v6, wg(4, 32))                             // mixed families: IPv6 with a mapped source
	w.Outer(t0, ToPeer, v4, v4, make([]byte, maxOuter+1))              // cannot fit in one IP packet
	w.Outer(t0, FromPeer, v4, v4, nil)                                 // empty datagram
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	rb := readNg(t, path)
	if len(rb.packets) != 3 || w.Dropped() != 1 {
		t.Fatalf("%d packets written, %d dropped; want 3 and 1", len(rb.packets), w.Dropped())
	}
	d := NewDecoder()
	for i, want := range []string{
		"IPv6 ::.0 > ::.0 UDP WireGuard keepalive",
		"IPv6 ::ffff:192.0.2.1.1 > 2001:db8::1.2 UDP WireGuard keepalive",
		"IPv4 192.0.2.1.1 > 192.0.2.1.1 UDP data=0 len=28",
	} {
		if got := string(d.Summarize(nil, rb.packets[i].data)); !strings.HasPrefix(got, want) {
			t.Errorf("packet %d: %q, want prefix %q", i, got, want)
		}
	}
}

func TestWriterEmptyCapture(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty.pcapng")
	w, err := NewWriter(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if rb := readNg(t, path); len(rb.packets) != 0 {
		t.Errorf("%d packets", len(rb.packets))
	}
	var out bytes.Buffer
	if err := DecodeFile(&out, path); err != nil || !strings.Contains(out.String(), "flows: 0") {
		t.Errorf("DecodeFile = %v\n%s", err, out.String())
	}
}

func TestNewWriterErrors(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{}, "no file name"},
		{Options{Path: "x", MaxSize: -1}, "negative maximum file size"},
		{Options{Path: "x", MaxFiles: -1}, "negative maximum file count"},
		{Options{Path: "x", QueueLen: -1}, "negative queue length"},
		{Options{Path: filepath.Join(dir, "no", "such", "dir", "x.pcapng")}, "no such file or directory"},
		{Options{Path: dir}, "is a directory, not a regular file"},
		// A FIFO would block the open, a device would be written to.
		{Options{Path: fifo}, "is a named pipe, not a regular file"},
		{Options{Path: "/dev/null"}, "is a character device, not a regular file"},
	} {
		w, err := NewWriter(tc.o)
		if err == nil {
			w.Close()
			t.Errorf("NewWriter(%+v) succeeded", tc.o)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewWriter(%+v) = %v, want %q", tc.o, err, tc.want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("refused paths left files behind: %v", entries)
	}
}

// TestWriterCreatesPrivateFiles checks that every capture file, rotated ones
// included, is a new regular file of mode 0600 whatever was at its path: an
// old file readable by others, or a symlink to a file the capture must not
// touch (as root, it would truncate any file on the system).
func TestWriterCreatesPrivateFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cap.pcapng")
	victim := filepath.Join(dir, "victim")
	const victimText = "not a capture\n"
	if err := os.WriteFile(victim, []byte(victimText), 0o644); err != nil {
		t.Fatal(err)
	}
	// What sits at the paths of the capture and its first two rotations.
	setup := map[string]func(p string) error{
		path:        func(p string) error { return os.WriteFile(p, []byte("old capture"), 0o644) },
		path + ".1": func(p string) error { return os.Symlink(victim, p) },
		path + ".2": func(p string) error { return os.Symlink("victim", p) }, // relative
	}
	for p, f := range setup {
		if err := f(p); err != nil {
			t.Fatal(err)
		}
	}
	old := syscall.Umask(0) // a permissive umask must not widen the mode
	defer syscall.Umask(old)
	w, err := NewWriter(Options{Path: path, MaxSize: 2000})
	if err != nil {
		t.Fatal(err)
	}
	pkts := readCorpusFile(t, filepath.Join(testdata, "tcp4.pcap"))
	for i := 0; i < 40; i++ {
		w.Inner(t0.Add(time.Duration(i)), ToPeer, "beta", pkts[i%len(pkts)].ip)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for p := range setup {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, want a regular file of mode 0600", filepath.Base(p), fi.Mode())
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
			t.Errorf("%s: owner %d, want %d", filepath.Base(p), st.Uid, os.Geteuid())
		}
		if rb := readNg(t, p); len(rb.packets) == 0 {
			t.Errorf("%s: no packets", filepath.Base(p))
		}
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != victimText {
		t.Errorf("symlink target changed: %.40q, %v", b, err)
	}
	if fi, _ := os.Stat(victim); fi.Mode().Perm() != 0o644 {
		t.Errorf("symlink target mode changed to %v", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

// TestWriterInnerNoAlloc checks that queueing a packet does not allocate once
// the buffer pool is warm. Each run waits for the writer goroutine to finish
// the packet, so that its buffer is back in the pool: buffers still waiting
// in the queue cannot be reused, by design.
func TestWriterInnerNoAlloc(t *testing.T) {
	w, err := newWriter(Options{Path: "a.pcapng"}, newMemFS(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	pkt := mustPacket(t, "tcp4.pcap", 3)
	inner := func() {
		n := w.handled.Load()
		w.Inner(t0, ToPeer, "beta", pkt)
		for w.handled.Load() == n {
			runtime.Gosched()
		}
	}
	for i := 0; i < 100; i++ {
		inner()
	}
	if n := testing.AllocsPerRun(1000, inner); n > 0.05 {
		t.Errorf("%.2f allocations per packet (Inner and the writer goroutine)", n)
	}
	if w.Dropped() != 0 {
		t.Errorf("%d dropped", w.Dropped())
	}
}

func BenchmarkWriterInner(b *testing.B) {
	w, err := newWriter(Options{Path: "b.pcapng"}, newMemFS(-1))
	if err != nil {
		b.Fatal(err)
	}
	pkt := make([]byte, 1400)
	pkt[0] = 0x45
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for i := 0; i < b.N; i++ {
		w.Inner(t0, ToPeer, "beta", pkt)
	}
	b.StopTimer()
	w.Close()
}

// handshake is a WireGuard handshake initiation built from scratch (Noise
// IKpsk2 as in the WireGuard paper) with the keys the initiator would hand
// the Writer and the key log it should write, to prove that Wireshark
// decrypts it from the embedded keys.
type handshake struct {
	initiation      []byte
	static          [32]byte
	keys            HandshakeKeys
	keyLog          []string // the payloads of the secrets blocks
	initiatorPublic string
}

func newHandshake(t *testing.T) handshake {
	t.Helper()
	key := func() (priv, pub []byte) {
		priv = make([]byte, 32)
		if _, err := rand.Read(priv); err != nil {
			t.Fatal(err)
		}
		pub, err := curve25519.X25519(priv, curve25519.Basepoint)
		if err != nil {
			t.Fatal(err)
		}
		return priv, pub
	}
	dh := func(priv, pub []byte) []byte {
		s, err := curve25519.X25519(priv, pub)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	hashOf := func(parts ...[]byte) []byte {
		h, _ := blake2s.New256(nil)
		for _, p := range parts {
			h.Write(p)
		}
		return h.Sum(nil)
	}
	newHash := func() hash.Hash { h, _ := blake2s.New256(nil); return h }
	mac := func(k, in []byte) []byte { m := hmac.New(newHash, k); m.Write(in); return m.Sum(nil) }
	kdf2 := func(c, in []byte) ([]byte, []byte) {
		t0 := mac(c, in)
		t1 := mac(t0, []byte{1})
		return t1, mac(t0, append(bytes.Clone(t1), 2))
	}
	seal := func(k, plain, ad []byte) []byte {
		a, err := chacha20poly1305.New(k)
		if err != nil {
			t.Fatal(err)
		}
		return a.Seal(nil, make([]byte, 12), plain, ad)
	}

	sPrivI, sPubI := key()
	_, sPubR := key()
	ePrivI, ePubI := key()

	c := hashOf([]byte("Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"))
	h := hashOf(c, []byte("WireGuard v1 zx2c4 Jason@zx2c4.com"))
	h = hashOf(h, sPubR)
	c, _ = kdf2(c, ePubI) // KDF1 is the first output of KDF2
	h = hashOf(h, ePubI)
	c, k := kdf2(c, dh(ePrivI, sPubR))
	static := seal(k, sPubI, h)
	h = hashOf(h, static)
	c, k = kdf2(c, dh(sPrivI, sPubR))
	_ = c
	ts := make([]byte, 12)
	now := time.Now()
	binary.BigEndian.PutUint64(ts, uint64(now.Unix())+1<<62)
	binary.BigEndian.PutUint32(ts[8:], uint32(now.Nanosecond()))
	stamp := seal(k, ts, h)

	msg := []byte{1, 0, 0, 0, 0x11, 0x22, 0x33, 0x44}
	msg = append(msg, ePubI...)
	msg = append(msg, static...)
	msg = append(msg, stamp...)
	m1, _ := blake2s.New128(hashOf([]byte("mac1----"), sPubR))
	m1.Write(msg)
	msg = m1.Sum(msg)
	msg = append(msg, make([]byte, 16)...) // mac2: no cookie
	if len(msg) != 148 {
		t.Fatalf("initiation is %d bytes", len(msg))
	}
	b64 := base64.StdEncoding.EncodeToString
	return handshake{
		initiation: msg,
		static:     [32]byte(sPrivI),
		keys:       HandshakeKeys{RemoteStatic: [32]byte(sPubR), LocalEphemeral: [32]byte(ePrivI)},
		keyLog: []string{
			"LOCAL_STATIC_PRIVATE_KEY = " + b64(sPrivI) + "\n",
			"REMOTE_STATIC_PUBLIC_KEY = " + b64(sPubR) + "\n" +
				"LOCAL_EPHEMERAL_PRIVATE_KEY = " + b64(ePrivI) + "\n",
		},
		initiatorPublic: b64(sPubI),
	}
}

// TestWriterSink streams to an io.Writer: the same blocks as a file (inner
// and outer interfaces, the key log, the statistics), and a sink that
// stops reading makes the queue drop and count, never the producer wait.
func TestWriterSink(t *testing.T) {
	pr, pw := io.Pipe()
	w, err := NewWriter(Options{Sink: pw, Outer: true, Keys: true, QueueLen: 4})
	if err != nil {
		t.Fatal(err)
	}
	pkt := mustPacket(t, "icmp4.pcap", 0)
	// Nobody reads the pipe yet: the writer goroutine blocks on its first
	// write, the queue fills, and the rest is dropped and counted.
	start := time.Now()
	for i := 0; i < 20; i++ {
		w.Inner(t0.Add(time.Duration(i)), ToPeer, "beta", pkt)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Inner blocked for %v on a sink nobody reads", d)
	}
	if w.Dropped() == 0 {
		t.Error("no drop counted with a blocked sink and a queue of 4")
	}
	var out bytes.Buffer
	copied := make(chan error, 1)
	go func() { _, err := io.Copy(&out, pr); copied <- err }()
	for deadline := time.Now().Add(5 * time.Second); len(w.q) > 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond) // the reader drains the queue
	}
	w.Outer(t0.Add(time.Second), ToPeer, netip.MustParseAddrPort("192.0.2.1:51820"),
		netip.MustParseAddrPort("192.0.2.2:51820"), []byte{4, 0, 0, 0, 1, 2, 3, 4})
	w.StaticKey(t0.Add(time.Second), key(0xee))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	pw.Close() // the sink is the caller's to close
	if err := <-copied; err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "stream.pcapng")
	if err := os.WriteFile(path, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	rb := readNg(t, path)
	if got, want := uint64(len(rb.packets))+w.Dropped(), uint64(21); got != want {
		t.Errorf("%d packets read + %d dropped, want %d", len(rb.packets), w.Dropped(), want)
	}
	var names []string
	for _, i := range rb.ifaces {
		names = append(names, i.Name)
	}
	if got := strings.Join(names, " "); got != "tun→beta wire-out" {
		t.Errorf("interfaces %q, want tun→beta wire-out", got)
	}
	if s := rb.stats[0]; s.PacketsDropped != w.Dropped() {
		t.Errorf("tun→beta statistics: %d dropped, want %d", s.PacketsDropped, w.Dropped())
	}
	if keys, _ := secrets(t, path); len(keys) != 1 {
		t.Errorf("%d key log blocks, want 1", len(keys))
	}
}

func TestWriterSinkErrors(t *testing.T) {
	for _, o := range []Options{
		{Sink: io.Discard, Path: "x.pcapng"},
		{Sink: io.Discard, MaxSize: 1 << 20},
		{Sink: io.Discard, MaxFiles: 2},
	} {
		if w, err := NewWriter(o); err == nil {
			w.Close()
			t.Errorf("NewWriter(%+v) accepted", o)
		}
	}
}
