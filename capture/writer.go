package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Options configures a Writer.
type Options struct {
	// Path of the pcapng file; empty when Sink is set. Rotated files are Path.1, Path.2, ... Each
	// is created as a new regular file of mode 0600, replacing what was at
	// its path (a symlink there is replaced, not followed); a directory or
	// other non-regular file at the path is refused.
	Path string
	// Sink, instead of Path, is where the pcapng stream goes (a pipe, a
	// socket): one section, never rotated, and never closed by the Writer.
	// A write to it that blocks holds up only the writer goroutine: the
	// queue in front of it drops and counts, as for a slow disk. A write
	// error ends the capture, as for a file.
	Sink io.Writer
	// Outer enables Writer.Outer: the encrypted UDP datagrams as seen on the
	// wire, on the "wire-out" and "wire-in" interfaces.
	Outer bool
	// Keys enables Writer.StaticKey and Writer.HandshakeKeys: a WireGuard
	// key log in decryption-secrets blocks, so that Wireshark decrypts the
	// outer datagrams. Keys are never written unless this and Outer are set.
	Keys bool
	// KeyLifetime is how long after it was handed over a session's key
	// lines are still carried into a new file when rotating; 0 means
	// DefaultKeyLifetime.
	KeyLifetime time.Duration
	// KeysPerPeer is how many of a peer's newest sessions are carried into
	// a new file when rotating; 0 means DefaultKeysPerPeer.
	KeysPerPeer int
	// MaxSize is the size in bytes at which the file is rotated; 0 means
	// no limit. A file always gets at least MaxSize/2 bytes of packets, so
	// that a large key log cannot make every packet rotate: such a file
	// can exceed MaxSize by its blocks that are not packets.
	MaxSize int64
	// MaxFiles is the number of files kept when rotating (the oldest are
	// deleted); 0 keeps them all.
	MaxFiles int
	// QueueLen is the number of packets that may wait for the writer
	// goroutine; 0 means DefaultQueueLen. Packets beyond it are dropped
	// and counted.
	QueueLen int
	// Log receives the one line reporting a capture that stopped on a
	// write error, and warnings about rejected key lines; nil means
	// slog.Default().
	Log *slog.Logger
}

// DefaultQueueLen is the queue length used when Options.QueueLen is 0.
const DefaultQueueLen = 4096

// Names of the interfaces that carry the outer datagrams.
const (
	WireOut = "wire-out"
	WireIn  = "wire-in"
)

// wgKeyLogType is the pcapng decryption-secrets type of a WireGuard key log.
const wgKeyLogType = pcapgo.DSB_SECRETS_TYPE_WIREGUARD // 0x57474b4c "WGKL"

// headroom is the space kept in front of an outer datagram for the synthetic
// IPv6 (40) and UDP (8) headers.
const headroom = 48

// maxOuter is the largest datagram that fits in an IPv4 or IPv6 packet with
// a 16-bit length field.
const maxOuter = 65535 - 28

type itemKind uint8

const (
	kindInner itemKind = iota
	kindOuter
	kindKeys // key log lines, in it.keys; no packet
)

// item is one queued packet.
type item struct {
	kind     itemKind
	dir      Direction
	t        time.Time
	peer     string
	src, dst netip.AddrPort
	buf      *[]byte // pooled; the packet is (*buf)[off:]
	off      int
	keys     *keyEntry // kindKeys only
}

// ifaceKey names one pcapng interface: an inner direction and peer, or a
// wire direction (peer empty).
type ifaceKey struct {
	wire bool
	dir  Direction
	peer string
}

func (k ifaceKey) name() string {
	if k.wire {
		if k.dir == ToPeer {
			return WireOut
		}
		return WireIn
	}
	return string(AppendLabel(nil, k.dir, k.peer))
}

func (k ifaceKey) description() string {
	switch {
	case k.wire && k.dir == ToPeer:
		return "encrypted UDP datagrams sent to peers"
	case k.wire:
		return "encrypted UDP datagrams received from peers"
	case k.dir == ToPeer:
		return "plaintext packets from the TUN device to peer " + k.peer
	case k.dir == DirUnknown:
		return "no packets captured"
	default:
		return "plaintext packets from peer " + k.peer + " to the TUN device"
	}
}

// iface is the writer goroutine's state for one interface.
type iface struct {
	key      ifaceKey
	id       int
	drops    *atomic.Uint64 // shared with the producers
	reported uint64         // drops already written as epb_dropcount
	written  uint64         // packets written
}

// fileSystem is what the Writer needs from the OS; tests substitute it.
type fileSystem interface {
	Create(name string) (io.WriteCloser, error)
	Remove(name string) error
}

type osFS struct{}

// Create makes name a new private file: see createPrivate.
func (osFS) Create(name string) (io.WriteCloser, error) { return createPrivate(name) }

func (osFS) Remove(name string) error { return os.Remove(name) }

// sinkFS hands out its writer as the one file a Writer with a Sink opens
// (it never rotates), and leaves closing it to the owner.
type sinkFS struct{ w io.Writer }

func (s sinkFS) Create(string) (io.WriteCloser, error) { return nopCloser{s.w}, nil }

func (sinkFS) Remove(string) error { return nil }

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// countingWriter counts the bytes that reached the file.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Writer writes a pcapng capture of the tunnel: the plaintext packets on one
// interface per peer and direction (named "tun→beta" and "beta→tun", link
// type RAW), optionally the encrypted datagrams on "wire-out"/"wire-in" and
// the WireGuard session keys. Producers only copy the packet into a pooled
// buffer and try to queue it: they never block, and what does not fit is
// counted and written as drop counts (epb_dropcount on the interface's next
// packet and isb_ifdrop in the statistics at the end of each file). A write
// error stops the capture, never the tunnel.
type Writer struct {
	o   Options
	log *slog.Logger
	fs  fileSystem

	q       chan item
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	closed  atomic.Bool
	failed  atomic.Bool
	dropped atomic.Uint64
	handled atomic.Uint64 // items taken off the queue and finished with

	dropMu sync.Mutex
	drops  map[ifaceKey]*atomic.Uint64

	// keyMu orders the key calls against Close (so that no key line is left
	// behind unwiped) and guards keyOverflow: the key entries that found
	// the queue full. keyFlag says there are some.
	keyMu       sync.Mutex
	keyOverflow []*keyEntry
	keyFlag     atomic.Bool

	// Owned by the writer goroutine (and by NewWriter before it starts).
	file     io.WriteCloser
	cw       *countingWriter
	ng       *pcapgo.NgWriter
	size     int64 // bytes in the current file, including buffered ones
	inFile   int   // packets in the current file
	pktBytes int64 // bytes of packet blocks in the current file
	index    int   // rotation number of the current file
	files    []string
	ifaces   []*iface
	byKey    map[ifaceKey]*iface
	keys     keyLog // what a new file needs of the keys handed over so far
	err      error  // what stopped the capture; read by Close after done
}

// CheckRotation reports whether maxSize and maxFiles may be Options.MaxSize
// and Options.MaxFiles: neither may be negative (0 is no limit). NewWriter
// checks them with it, and so do the mesh file's capture: section and the
// node's -pcap-max-size and -pcap-max-files, before any file is created.
func CheckRotation(maxSize int64, maxFiles int) error {
	switch {
	case maxSize < 0:
		return fmt.Errorf("negative maximum file size %d; use 0 for unlimited", maxSize)
	case maxFiles < 0:
		return fmt.Errorf("negative maximum file count %d; use 0 for unlimited", maxFiles)
	}
	return nil
}

// NewWriter creates the capture file and starts the writer goroutine.
func NewWriter(o Options) (*Writer, error) {
	return newWriter(o, osFS{})
}

func newWriter(o Options, fs fileSystem) (*Writer, error) {
	switch {
	case o.Sink != nil && o.Path != "":
		return nil, errors.New("capture: both a file name and a sink")
	case o.Sink != nil && (o.MaxSize != 0 || o.MaxFiles != 0):
		return nil, errors.New("capture: a sink is never rotated")
	case o.Path == "" && o.Sink == nil:
		return nil, errors.New("capture: no file name")
	case o.QueueLen < 0:
		return nil, fmt.Errorf("capture: negative queue length %d", o.QueueLen)
	}
	if err := CheckRotation(o.MaxSize, o.MaxFiles); err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	if o.QueueLen == 0 {
		o.QueueLen = DefaultQueueLen
	}
	if o.Sink != nil {
		fs = sinkFS{o.Sink}
	}
	if o.KeyLifetime <= 0 {
		o.KeyLifetime = DefaultKeyLifetime
	}
	if o.KeysPerPeer <= 0 {
		o.KeysPerPeer = DefaultKeysPerPeer
	}
	w := &Writer{
		o:     o,
		log:   o.Log,
		fs:    fs,
		q:     make(chan item, o.QueueLen),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
		drops: make(map[ifaceKey]*atomic.Uint64),
		byKey: make(map[ifaceKey]*iface),
	}
	if w.log == nil {
		w.log = slog.Default()
	}
	if err := w.open(); err != nil {
		return nil, err
	}
	go w.run()
	return w, nil
}

// Inner queues a plaintext IP packet for the interface of dir and peer. It
// copies pkt and never blocks.
func (w *Writer) Inner(t time.Time, dir Direction, peer string, pkt []byte) {
	k := ifaceKey{dir: dir, peer: peer}
	if w.closed.Load() || w.failed.Load() || len(pkt) > 65535 {
		w.drop(k)
		return
	}
	bp := getBuf(len(pkt))
	copy(*bp, pkt)
	w.enqueue(item{kind: kindInner, dir: dir, t: t, peer: peer, buf: bp}, k)
}

// Outer queues an encrypted datagram sent (ToPeer) or received (FromPeer)
// with its real socket addresses. The writer wraps it in IPv4 or IPv6 and
// UDP headers with correct lengths and checksums, so that Wireshark's
// WireGuard dissector recognises it. A no-op unless Options.Outer is set.
func (w *Writer) Outer(t time.Time, dir Direction, src, dst netip.AddrPort, datagram []byte) {
	if !w.o.Outer {
		return
	}
	k := ifaceKey{wire: true, dir: dir}
	if w.closed.Load() || w.failed.Load() || len(datagram) > maxOuter {
		w.drop(k)
		return
	}
	bp := getBuf(headroom + len(datagram))
	copy((*bp)[headroom:], datagram)
	w.enqueue(item{kind: kindOuter, dir: dir, t: t, src: src, dst: dst, buf: bp, off: headroom}, k)
}

func (w *Writer) enqueue(it item, k ifaceKey) {
	select {
	case w.q <- it:
	default:
		putBuf(it.buf)
		w.drop(k)
	}
}

// drop counts a packet that will not be written.
func (w *Writer) drop(k ifaceKey) {
	w.dropped.Add(1)
	w.dropCounter(k).Add(1)
}

// dropCounter returns the shared drop counter of an interface.
func (w *Writer) dropCounter(k ifaceKey) *atomic.Uint64 {
	w.dropMu.Lock()
	defer w.dropMu.Unlock()
	c := w.drops[k]
	if c == nil {
		c = new(atomic.Uint64)
		w.drops[k] = c
	}
	return c
}

// Dropped returns the number of packets not written: queue full, capture
// stopped by an error, or closed.
func (w *Writer) Dropped() uint64 { return w.dropped.Load() }

// Close writes the queued packets and the interface statistics (with the
// drop counts), closes the file and stops the writer goroutine. It returns
// the error that stopped the capture, if any (already logged once).
// Packets queued after Close are only counted as dropped.
func (w *Writer) Close() error {
	w.once.Do(func() {
		w.closed.Store(true)
		close(w.stop)
		<-w.done
		// A producer that saw the Writer open just before Close may have
		// queued after the final drain: count it. queueKeys queues only under
		// keyMu and after checking closed, so holding it here catches every
		// key entry still around, to wipe it.
		w.keyMu.Lock()
		defer w.keyMu.Unlock()
		for _, e := range w.keyOverflow {
			e.wipe()
		}
		w.keyOverflow = nil
		for {
			select {
			case it := <-w.q:
				if it.kind == kindKeys {
					it.keys.wipe()
					continue
				}
				putBuf(it.buf)
				w.drop(ifaceKey{wire: it.kind == kindOuter, dir: it.dir, peer: it.peer})
			default:
				return
			}
		}
	})
	return w.err
}

func (w *Writer) run() {
	defer close(w.done)
	for {
		select {
		case it := <-w.q:
			w.handle(it)
			if len(w.q) == 0 {
				w.flush()
			}
		case <-w.stop:
			for {
				select {
				case it := <-w.q:
					w.handle(it)
				default:
					w.finish()
					return
				}
			}
		}
	}
}

// fileName returns the path of rotation number n.
func (w *Writer) fileName(n int) string {
	if w.o.Sink != nil {
		return "(stream)"
	}
	if n == 0 {
		return w.o.Path
	}
	return w.o.Path + "." + strconv.Itoa(n)
}

// open creates the file for rotation number w.index. The section header is
// written with the first interface, when there is one.
func (w *Writer) open() error {
	name := w.fileName(w.index)
	f, err := w.fs.Create(name)
	if err != nil {
		return fmt.Errorf("capture: create %s: %w", name, err)
	}
	w.file = f
	w.cw = &countingWriter{w: f}
	w.ng = nil
	w.size, w.inFile, w.pktBytes = 0, 0, 0
	w.files = append(w.files, name)
	if w.o.MaxFiles > 0 {
		for len(w.files) > w.o.MaxFiles {
			if err := w.fs.Remove(w.files[0]); err != nil && !errors.Is(err, os.ErrNotExist) {
				w.log.Warn("capture: cannot remove old capture file", "file", w.files[0], "err", err)
			}
			w.files = w.files[1:]
		}
	}
	if len(w.ifaces) > 0 {
		return w.startSection()
	}
	return nil
}

func ngInterface(k ifaceKey) pcapgo.NgInterface {
	return pcapgo.NgInterface{
		Name:                k.name(),
		Description:         k.description(),
		LinkType:            layers.LinkTypeRaw,
		TimestampResolution: 9,
	}
}

// startSection writes the section header, every known interface and the key
// lines a new file needs (see keyLog) to the current (empty) file.
func (w *Writer) startSection() error {
	opts := pcapgo.DefaultNgWriterOptions
	opts.SectionInfo.Application = "peer"
	ng, err := pcapgo.NewNgWriterInterface(w.cw, ngInterface(w.ifaces[0].key), opts)
	if err != nil {
		return w.fail(err)
	}
	w.ng = ng
	for _, i := range w.ifaces[1:] {
		if _, err := w.ng.AddInterface(ngInterface(i.key)); err != nil {
			return w.fail(err)
		}
	}
	if b := w.keys.carried(); len(b) > 0 {
		err := w.ng.WriteDecryptionSecretsBlock(wgKeyLogType, b)
		clear(b)
		if err != nil {
			return w.fail(err)
		}
	}
	return w.sync()
}

// sync flushes the NgWriter so that size is exact again.
func (w *Writer) sync() error {
	if err := w.ng.Flush(); err != nil {
		return w.fail(err)
	}
	w.size = w.cw.n
	return nil
}

func (w *Writer) flush() {
	if w.ng != nil && w.err == nil {
		_ = w.sync()
	}
}

// fail stops the capture: one log line, the file closed, everything after
// counted as dropped.
func (w *Writer) fail(err error) error {
	if w.err == nil {
		name := w.fileName(w.index)
		w.err = fmt.Errorf("capture: write %s: %w", name, err)
		w.failed.Store(true)
		w.keys.wipe()
		if w.o.Sink != nil {
			// A stream ends this way when its reader goes away: news,
			// not trouble; the owner says why it ended.
			w.log.Info("capture stream ended on a write error", "err", err)
		} else {
			w.log.Error("packet capture stopped; the tunnel keeps running and further packets are only counted as dropped",
				"file", name, "err", err)
		}
		if w.file != nil {
			_ = w.file.Close()
			w.file = nil
		}
	}
	return w.err
}

// ifaceFor returns the interface of k, adding it to the file if it is new.
func (w *Writer) ifaceFor(k ifaceKey) (*iface, error) {
	if i := w.byKey[k]; i != nil {
		return i, nil
	}
	i := &iface{key: k, id: len(w.ifaces), drops: w.dropCounter(k)}
	w.ifaces = append(w.ifaces, i)
	w.byKey[k] = i
	if w.ng == nil {
		return i, w.startSection()
	}
	if _, err := w.ng.AddInterface(ngInterface(k)); err != nil {
		return i, w.fail(err)
	}
	return i, w.sync()
}

// epbSize is the size of an enhanced packet block without options.
func epbSize(n int) int64 { return int64(32 + (n+3)&^3) }

// isbSize is the size of one interface statistics block as written by finish.
const isbSize = 24 + 2*12 + 4

func (w *Writer) handle(it item) {
	defer w.handled.Add(1)
	if w.keyFlag.Load() {
		w.takeOverflow()
	}
	if it.kind == kindKeys {
		w.addKeys(it.keys)
		return
	}
	defer putBuf(it.buf)
	k := ifaceKey{wire: it.kind == kindOuter, dir: it.dir, peer: it.peer}
	if w.err != nil {
		w.drop(k)
		return
	}
	var pkt []byte
	if it.kind == kindOuter {
		var ok bool
		if pkt, ok = wrapUDP(*it.buf, it.off, it.src, it.dst); !ok {
			w.drop(k)
			return
		}
	} else {
		pkt = (*it.buf)[it.off:]
	}
	i, err := w.ifaceFor(k)
	if err != nil {
		w.drop(k)
		return
	}
	var opts pcapgo.NgPacketOptions
	need := epbSize(len(pkt))
	if d := i.drops.Load(); d > i.reported {
		dc := d - i.reported // allocated only when there were drops
		opts.DropCount = &dc
		need += 16
	}
	if w.o.MaxSize > 0 && w.inFile > 0 && w.size+need+int64(len(w.ifaces))*isbSize > w.o.MaxSize &&
		w.pktBytes+need > w.o.MaxSize/2 {
		// Only sessions still alive at this packet go into the next file.
		w.keys.prune(it.t, w.o.KeyLifetime, w.o.KeysPerPeer)
		if w.rotate() != nil {
			w.drop(k)
			return
		}
	}
	ci := gopacket.CaptureInfo{
		Timestamp:      it.t,
		CaptureLength:  len(pkt),
		Length:         len(pkt),
		InterfaceIndex: i.id,
	}
	if err := w.ng.WritePacketWithOptions(ci, pkt, opts); err != nil {
		w.fail(err)
		w.drop(k)
		return
	}
	if opts.DropCount != nil {
		i.reported += *opts.DropCount
	}
	i.written++
	w.size += need
	w.pktBytes += need
	w.inFile++
}

// writeStats writes one statistics block per interface with the packets
// written and dropped since the capture started.
func (w *Writer) writeStats() error {
	now := time.Now()
	for _, i := range w.ifaces {
		d := i.drops.Load()
		st := pcapgo.NgInterfaceStatistics{
			LastUpdate:      now,
			PacketsReceived: i.written + d,
			PacketsDropped:  d,
		}
		if err := w.ng.WriteInterfaceStats(i.id, st); err != nil {
			return w.fail(err)
		}
	}
	return w.sync()
}

// rotate ends the current file and starts the next one.
func (w *Writer) rotate() error {
	if err := w.writeStats(); err != nil {
		return err
	}
	if err := w.file.Close(); err != nil {
		w.file = nil
		return w.fail(err)
	}
	w.file = nil
	w.index++
	if err := w.open(); err != nil {
		return w.fail(err)
	}
	return nil
}

// finish ends the capture at Close.
func (w *Writer) finish() {
	defer w.keys.wipe() // nothing is kept once the capture ends
	w.takeOverflow()
	if w.err != nil {
		return
	}
	if w.ng == nil {
		// No packet at all: still leave a valid, empty capture behind.
		w.ifaces = append(w.ifaces, &iface{key: ifaceKey{dir: DirUnknown, peer: "tun"}, drops: new(atomic.Uint64)})
		if w.startSection() != nil {
			return
		}
	}
	if w.writeStats() != nil {
		return
	}
	if err := w.file.Close(); err != nil {
		w.file = nil
		w.fail(err)
		return
	}
	w.file = nil
}

// wrapUDP writes IPv4 or IPv6 and UDP headers in the headroom in front of
// b[off:] and returns the whole packet.
func wrapUDP(b []byte, off int, src, dst netip.AddrPort) ([]byte, bool) {
	payload := b[off:]
	sa, da := src.Addr().Unmap(), dst.Addr().Unmap()
	udpLen := 8 + len(payload)
	var pkt []byte
	if sa.Is4() && da.Is4() {
		if off < 28 || 20+udpLen > 65535 {
			return nil, false
		}
		pkt = b[off-28:]
		h := pkt[:20]
		h[0], h[1] = 0x45, 0
		binary.BigEndian.PutUint16(h[2:4], uint16(20+udpLen))
		binary.BigEndian.PutUint32(h[4:8], 0x00004000) // id 0, don't fragment
		h[8], h[9] = 64, protoUDP
		h[10], h[11] = 0, 0
		s4, d4 := sa.As4(), da.As4()
		copy(h[12:16], s4[:])
		copy(h[16:20], d4[:])
		binary.BigEndian.PutUint16(h[10:12], ^fold(sum(0, h)))
		u := pkt[20:28]
		putUDP(u, src.Port(), dst.Port(), udpLen)
		c := sum(0, s4[:])
		c = sum(c, d4[:])
		c += protoUDP + uint32(udpLen)
		c = sum(c, pkt[20:])
		binary.BigEndian.PutUint16(u[6:8], udpChecksum(c))
		return pkt, true
	}
	if off < 48 || udpLen > 65535 {
		return nil, false
	}
	pkt = b[off-48:]
	h := pkt[:40]
	binary.BigEndian.PutUint32(h[0:4], 0x60000000)
	binary.BigEndian.PutUint16(h[4:6], uint16(udpLen))
	h[6], h[7] = protoUDP, 64
	s16, d16 := sa.As16(), da.As16()
	copy(h[8:24], s16[:])
	copy(h[24:40], d16[:])
	u := pkt[40:48]
	putUDP(u, src.Port(), dst.Port(), udpLen)
	c := sum(0, s16[:])
	c = sum(c, d16[:])
	c += uint32(udpLen) + protoUDP
	c = sum(c, pkt[40:])
	binary.BigEndian.PutUint16(u[6:8], udpChecksum(c))
	return pkt, true
}

func putUDP(u []byte, sport, dport uint16, n int) {
	binary.BigEndian.PutUint16(u[0:2], sport)
	binary.BigEndian.PutUint16(u[2:4], dport)
	binary.BigEndian.PutUint16(u[4:6], uint16(n))
	u[6], u[7] = 0, 0
}

// sum adds b to the one's-complement running sum c.
func sum(c uint32, b []byte) uint32 {
	for len(b) >= 2 {
		c += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		c += uint32(b[0]) << 8
	}
	return c
}

func fold(c uint32) uint16 {
	for c > 0xffff {
		c = c&0xffff + c>>16
	}
	return uint16(c)
}

// udpChecksum finishes a UDP checksum; zero is sent as all ones.
func udpChecksum(c uint32) uint16 {
	s := ^fold(c)
	if s == 0 {
		s = 0xffff
	}
	return s
}

// Packet buffers come from two pools: most packets fit a small buffer.
const smallBuf = 2048

var (
	smallPool = sync.Pool{New: func() any { b := make([]byte, smallBuf); return &b }}
	largePool = sync.Pool{New: func() any { b := make([]byte, 65535+headroom); return &b }}
)

func getBuf(n int) *[]byte {
	var bp *[]byte
	if n <= smallBuf {
		bp = smallPool.Get().(*[]byte)
	} else {
		bp = largePool.Get().(*[]byte)
	}
	*bp = (*bp)[:n]
	return bp
}

func putBuf(bp *[]byte) {
	switch cap(*bp) {
	case smallBuf:
		smallPool.Put(bp)
	case 65535 + headroom:
		largePool.Put(bp)
	}
}
