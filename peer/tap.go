package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/peer-vpn/peer/capture"
	"github.com/peer-vpn/peer/config"
	"github.com/peer-vpn/peer/keys"
	"github.com/peer-vpn/peer/noise"
	"github.com/peer-vpn/peer/tunnel"
)

// captureFlags are the capture options of the command line; set flags
// override the mesh file's capture: section.
type captureFlags struct {
	fs         *flag.FlagSet
	logPackets bool
	pcap       string
	outer      bool
	keys       bool
	maxSize    int64
	maxFiles   int
}

func (cf *captureFlags) register(fs *flag.FlagSet) {
	cf.fs = fs
	fs.BoolVar(&cf.logPackets, "log-packets", false, "log one decoded line per packet (rate-limited)")
	fs.StringVar(&cf.pcap, "pcap", "", "write the inner packets to this pcapng file")
	fs.BoolVar(&cf.outer, "pcap-outer", false, "also capture the encrypted UDP datagrams")
	fs.BoolVar(&cf.keys, "pcap-keys", false, "embed in the capture what Wireshark needs to decrypt it: this node's PRIVATE KEY,\n"+
		"the ephemeral keys and the preshared keys of the sessions captured (needs -pcap-outer). Whoever\n"+
		"has the file can then impersonate this node: treat it as the key, rotate the key after sharing it")
	fs.Int64Var(&cf.maxSize, "pcap-max-size", 0, "rotate the capture file at this many bytes (0: never)")
	fs.IntVar(&cf.maxFiles, "pcap-max-files", 0, "keep at most this many rotated files (0: all)")
}

// captureOptions is the merged capture configuration.
type captureOptions struct {
	config.Capture
	// Keys is -pcap-keys, which only the command line can set: the mesh
	// file, shared by every node, refuses it.
	Keys bool
}

// merge overlays the flags that were given on the mesh file's settings.
func (cf *captureFlags) merge(c config.Capture) captureOptions {
	o := captureOptions{Keys: cf.keys}
	cf.fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "log-packets":
			c.LogPackets = cf.logPackets
		case "pcap":
			c.Pcap = cf.pcap
		case "pcap-outer":
			c.Outer = cf.outer
		case "pcap-max-size":
			c.MaxSize = cf.maxSize
		case "pcap-max-files":
			c.MaxFiles = cf.maxFiles
		}
	})
	o.Capture = c
	return o
}

func (o captureOptions) validate() error {
	if o.MaxSize < 0 || o.MaxFiles < 0 {
		return errors.New("-pcap-max-size and -pcap-max-files must not be negative")
	}
	if o.Pcap == "" && (o.Outer || o.Keys || o.MaxSize > 0 || o.MaxFiles > 0) {
		return errors.New("-pcap-outer, -pcap-keys and the rotation flags need -pcap FILE")
	}
	if o.Keys && !o.Outer {
		// The keys decrypt only the encrypted datagrams: without them the
		// file would hold the private key for nothing.
		return errors.New("-pcap-keys needs -pcap-outer: the keys decrypt only the encrypted datagrams")
	}
	return nil
}

// tap feeds the capture writer and the packet log from the data path.
type tap struct {
	w      *capture.Writer
	logger *capture.Logger
	node   *config.Node

	mu     sync.Mutex
	locals map[netip.AddrPort]netip.Addr // remote → local address used to reach it
}

// newTap builds the Tap of the options, or nil when nothing is captured.
func newTap(node *config.Node, o captureOptions, log *slog.Logger) (tunnel.Tap, func(), error) {
	if o.Pcap == "" && !o.LogPackets {
		return nil, func() {}, nil
	}
	t := &tap{node: node, locals: map[netip.AddrPort]netip.Addr{}}
	if o.Pcap != "" {
		w, err := capture.NewWriter(capture.Options{
			Path: o.Pcap, Outer: o.Outer, Keys: o.Keys, KeyLifetime: 3 * noise.RejectAfterTime,
			MaxSize: o.MaxSize, MaxFiles: o.MaxFiles, Log: log,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("capture: %w", err)
		}
		t.w = w
		if o.Keys {
			log.Warn("-pcap-keys: the capture file will hold this node's long-term PRIVATE KEY, "+
				"with the ephemeral and preshared keys of the sessions captured; whoever has the file "+
				"can impersonate this node to every peer. Keep the file as secret as the key file, and "+
				"after sharing it, give this node a new key (peer genkey) and update the mesh file",
				"file", o.Pcap)
			// The static keys go first, so that even a handshake received
			// before any local ephemeral key exists can be decrypted.
			t.writeStatic()
		}
	}
	if o.LogPackets {
		t.logger = capture.NewLogger(os.Stderr, 100, 200)
	}
	closeFn := func() {
		if t.w != nil {
			t.w.Close() // an error that stopped the capture was logged when it happened
			if n := t.w.Dropped(); n > 0 {
				log.Warn("capture dropped packets", "count", n)
			}
		}
		if t.logger != nil {
			t.logger.Close()
		}
	}
	return t, closeFn, nil
}

func direction(outbound bool) capture.Direction {
	if outbound {
		return capture.ToPeer
	}
	return capture.FromPeer
}

// Inner implements tunnel.Tap.
func (t *tap) Inner(now time.Time, outbound bool, peer string, pkt []byte) {
	if t.w != nil {
		t.w.Inner(now, direction(outbound), peer, pkt)
	}
	if t.logger != nil {
		t.logger.Log(now, direction(outbound), peer, pkt)
	}
}

// Outer implements tunnel.Tap. The device knows only its port; the local
// address is the one the kernel would pick toward the remote.
func (t *tap) Outer(now time.Time, outbound bool, src, dst netip.AddrPort, datagram []byte) {
	if t.w == nil {
		return
	}
	if outbound {
		src = netip.AddrPortFrom(t.localAddr(dst), src.Port())
	} else {
		dst = netip.AddrPortFrom(t.localAddr(src), dst.Port())
	}
	t.w.Outer(now, direction(outbound), src, dst, datagram)
}

// localAddr finds the source address the kernel uses toward remote, with a
// connected UDP socket (connect sends nothing), cached per remote.
func (t *tap) localAddr(remote netip.AddrPort) netip.Addr {
	t.mu.Lock()
	defer t.mu.Unlock()
	if a, ok := t.locals[remote]; ok {
		return a
	}
	a := netip.IPv4Unspecified()
	if remote.Addr().Is6() {
		a = netip.IPv6Unspecified()
	}
	if c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(remote)); err == nil {
		a = c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
		c.Close()
	}
	t.locals[remote] = a
	return a
}

// writeStatic writes the static keys of this node and its peers.
func (t *tap) writeStatic() {
	lines := fmt.Sprintf("LOCAL_STATIC_PRIVATE_KEY = %s\n", t.node.Private.Base64())
	for _, r := range t.node.Remotes {
		lines += fmt.Sprintf("REMOTE_STATIC_PUBLIC_KEY = %s\n", r.Peer.PublicKey)
		if !r.Preshared.IsZero() {
			lines += fmt.Sprintf("PRESHARED_KEY = %s\n", r.Preshared.Base64())
		}
	}
	t.w.Keys(time.Now(), "", []byte(lines))
}

// EphemeralKey implements tunnel.Tap: it writes key log lines in the
// format of Wireshark's wg.keylog_file.
func (t *tap) EphemeralKey(peer string, remote keys.Public, psk keys.Preshared, eph keys.Private) {
	if t.w == nil {
		return
	}
	lines := ""
	lines += fmt.Sprintf("REMOTE_STATIC_PUBLIC_KEY = %s\nLOCAL_EPHEMERAL_PRIVATE_KEY = %s\n", remote, eph.Base64())
	if !psk.IsZero() {
		lines += fmt.Sprintf("PRESHARED_KEY = %s\n", psk.Base64())
	}
	t.w.Keys(time.Now(), peer, []byte(lines))
}
