package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync/atomic"
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
	// flagsNeedFile: a flag given asks for something only a capture file
	// has (-pcap-outer, -pcap-keys, rotation). The mesh file's own outer
	// and rotation without pcap are settings for a capture that -pcap may
	// start, not a mistake: the mesh check accepts them, so the start must.
	flagsNeedFile bool
}

// merge overlays the flags that were given on the mesh file's settings.
func (cf *captureFlags) merge(c config.Capture) captureOptions {
	o := captureOptions{Keys: cf.keys, flagsNeedFile: cf.keys}
	cf.fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "log-packets":
			c.LogPackets = cf.logPackets
		case "pcap":
			c.Pcap = cf.pcap
		case "pcap-outer":
			c.Outer = cf.outer
			o.flagsNeedFile = o.flagsNeedFile || cf.outer
		case "pcap-max-size":
			c.MaxSize = cf.maxSize
			o.flagsNeedFile = o.flagsNeedFile || cf.maxSize > 0
		case "pcap-max-files":
			c.MaxFiles = cf.maxFiles
			o.flagsNeedFile = o.flagsNeedFile || cf.maxFiles > 0
		}
	})
	o.Capture = c
	return o
}

// validate refuses what the flags got wrong; the mesh file's capture: was
// checked by config, with the same capture.CheckRotation.
func (o captureOptions) validate() error {
	if err := capture.CheckRotation(o.MaxSize, o.MaxFiles); err != nil {
		return fmt.Errorf("-pcap-max-size, -pcap-max-files: %w", err)
	}
	if o.Pcap == "" && o.flagsNeedFile {
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
	keys   bool        // -pcap-keys
	static atomic.Bool // the static key was handed to the writer
	locals *localAddrs // remote → local address used to reach it
}

// keysWarning is said wherever a capture carries the key log: in the node's
// log for -pcap-keys, and in both the node's log and the client's stderr
// for `peer capture -keys`.
const keysWarning = "the capture will hold this node's long-term PRIVATE KEY, " +
	"with the ephemeral and preshared keys of the sessions captured; whoever has the file " +
	"can impersonate this node to every peer. Keep the file as secret as the key file, and " +
	"after sharing it, give this node a new key (peer genkey) and update the mesh file"

// newTap builds the Tap of the options, or nil when nothing is captured.
func newTap(node *config.Node, o captureOptions, log *slog.Logger) (tunnel.Tap, func(), error) {
	if o.Pcap == "" && !o.LogPackets {
		return nil, func() {}, nil
	}
	t := &tap{node: node, keys: o.Keys && o.Pcap != ""}
	if o.Pcap != "" {
		w, err := capture.NewWriter(capture.Options{
			Path: o.Pcap, Outer: o.Outer, Keys: o.Keys, KeyLifetime: 3 * noise.RejectAfterTime,
			MaxSize: o.MaxSize, MaxFiles: o.MaxFiles, Log: log,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("capture: %w", err)
		}
		t.w = w
		if o.Outer {
			t.locals = startLocalAddrs(node)
		}
		if o.Keys {
			log.Warn("-pcap-keys: "+keysWarning, "file", o.Pcap)
		}
	}
	if o.LogPackets {
		t.logger = capture.NewLogger(os.Stderr, 100, 200)
	}
	closeFn := func() {
		if t.locals != nil {
			t.locals.close()
		}
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

// startLocalAddrs starts looking up the local addresses toward node's
// remotes, for the outer datagrams of a capture.
func startLocalAddrs(node *config.Node) *localAddrs {
	l := newLocalAddrs(routeLocalAddr)
	for _, r := range node.Remotes {
		if r.Endpoint.IsValid() {
			l.prime(r.Endpoint)
		}
	}
	l.start()
	return l
}

// direction is the capture's name for dir.
func direction(dir tunnel.Direction) capture.Direction {
	if dir == tunnel.Outbound {
		return capture.ToPeer
	}
	return capture.FromPeer
}

// Inner implements tunnel.Tap.
func (t *tap) Inner(now time.Time, dir tunnel.Direction, peer string, pkt []byte) {
	if t.w != nil {
		t.w.Inner(now, direction(dir), peer, pkt)
	}
	if t.logger != nil {
		t.logger.Log(now, direction(dir), peer, pkt)
	}
}

// Outer implements tunnel.Tap. The device knows only its port; the local
// address is the one the kernel picks toward the remote, once localAddrs
// has it (the unspecified address until then).
func (t *tap) Outer(now time.Time, dir tunnel.Direction, src, dst netip.AddrPort, datagram []byte) {
	if t.w == nil || t.locals == nil {
		return
	}
	if dir == tunnel.Outbound {
		src = netip.AddrPortFrom(t.locals.lookup(now, dst), src.Port())
	} else {
		dst = netip.AddrPortFrom(t.locals.lookup(now, src), dst.Port())
		if t.keys && len(datagram) == noise.MessageInitiationSize && datagram[0] == noise.MessageInitiationType {
			// Decrypting an initiation to this node takes its static
			// key, and no ephemeral key of ours exists yet.
			t.writeStatic(now)
		}
	}
	t.w.Outer(now, direction(dir), src, dst, datagram)
}

// The key log holds what Wireshark's WireGuard dissector needs for the
// handshakes captured, and no more. It has no key-log type for transport
// keys: it derives them from the handshake messages, so it needs, for an
// initiation this node sends, this node's static private key (Spriv_i) and
// ephemeral private key (Epriv_i) and the peer's static public key (to
// match mac1); for an initiation this node receives, its static private key
// (Spriv_r); for the response, the ephemeral key of the side that sent it or
// of the initiator, and the pair's preshared key, which Wireshark ties to
// the ephemeral line before it. So the static key is handed over with the
// first handshake (sent or received), and each handshake adds the peer's
// public key, this node's ephemeral key and the pair's preshared key: a
// peer that has no handshake during the capture appears nowhere in it.

// writeStatic hands the writer this node's static private key, once: the
// writer puts it in every file from then on.
func (t *tap) writeStatic(now time.Time) {
	if t.static.Swap(true) {
		return
	}
	t.w.StaticKey(now, t.node.Private)
}

// EphemeralKey implements tunnel.Tap: with -pcap-keys, it hands the writer
// the keys of a handshake with peer (initiation or response); the writer
// writes them as Wireshark's key log.
func (t *tap) EphemeralKey(peer string, remote keys.Public, psk keys.Preshared, eph keys.Private) {
	if t.w == nil || !t.keys {
		return
	}
	now := time.Now()
	t.writeStatic(now)
	t.w.HandshakeKeys(now, peer, capture.HandshakeKeys{RemoteStatic: remote, LocalEphemeral: eph, Preshared: psk})
}
