package tunnel

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/peer-vpn/peer/keys"
	"github.com/peer-vpn/peer/tundev/tuntest"
	"github.com/peer-vpn/peer/udp/udptest"
)

var update = flag.Bool("update", false, "rewrite the golden files of the forwarding replay")

// replayDevice is a node whose peer beta owns the far end of the testdata
// captures (10.99.0.2, fd99::2) and gamma the link-local multicast group
// the neighbour discovery captures send to, so both peers, no-route and
// spoofing all occur in the corpus.
func replayDevice(t *testing.T) *Device {
	t.Helper()
	priv, _ := keys.NewPrivate()
	kb, _ := keys.NewPrivate()
	kg, _ := keys.NewPrivate()
	net := udptest.NewNetwork()
	c, err := net.Listen(netipAddrPort("192.0.2.1:51820"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(Config{
		Private: priv,
		TUN:     tuntest.NewMemory("replay", 1420, 1),
		Conn:    c,
		Peers: []PeerConfig{
			{Name: "beta", PublicKey: kb.Public(), Prefixes: mustPrefixes(t, []string{"10.99.0.2/32", "fd99::2/128"})},
			{Name: "gamma", PublicKey: kg.Public(), Prefixes: mustPrefixes(t, []string{"192.0.2.0/24", "ff02::/16"})},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// ipPayload strips the link header of a captured frame, leaving the IP
// packet a TUN device would carry; ok is false for non-IP frames.
func ipPayload(lt layers.LinkType, frame []byte) ([]byte, bool) {
	switch lt {
	case layers.LinkTypeRaw, layers.LinkTypeIPv4, layers.LinkTypeIPv6:
		return frame, true
	case layers.LinkTypeEthernet:
		if len(frame) < 14 {
			return frame, true // truncated: still fed to the decisions
		}
		et := uint16(frame[12])<<8 | uint16(frame[13])
		return frame[14:], et == 0x0800 || et == 0x86dd
	case layers.LinkTypeLinuxSLL:
		if len(frame) < 16 {
			return frame, true
		}
		et := uint16(frame[14])<<8 | uint16(frame[15])
		return frame[16:], et == 0x0800 || et == 0x86dd
	}
	return nil, false
}

// readCapture returns the IP packets of a capture file.
func readCapture(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var pkts [][]byte
	add := func(lt layers.LinkType, data []byte) {
		if p, ok := ipPayload(lt, data); ok {
			pkts = append(pkts, append([]byte(nil), p...))
		}
	}
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	if magic == [4]byte{0x0a, 0x0d, 0x0d, 0x0a} {
		r, err := pcapgo.NewNgReader(f, pcapgo.DefaultNgReaderOptions)
		if err != nil {
			return nil, err
		}
		for {
			data, ci, err := r.ReadPacketData()
			if errors.Is(err, io.EOF) {
				return pkts, nil
			}
			if err != nil {
				return pkts, err
			}
			intf, _ := r.Interface(ci.InterfaceIndex)
			add(intf.LinkType, data)
		}
	}
	r, err := pcapgo.NewReader(f)
	if err != nil {
		return nil, err
	}
	for {
		data, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return pkts, nil
		}
		if err != nil {
			return pkts, err
		}
		add(r.LinkType(), data)
	}
}

// verdicts runs one packet through both forwarding decisions: outbound
// (which peer its destination routes to) and inbound as if beta had sent it
// (forwarded, spoofed or malformed).
func verdicts(d *Device, pkt []byte) string {
	out := ""
	if p, reason := d.route(pkt); p != nil {
		out = "out→" + p.Name()
	} else {
		out = "out:" + reason.String()
	}
	beta := d.peerByName("beta")
	in := ""
	if len(pkt) == 0 {
		in = "in:keepalive"
	} else {
		switch _, v := beta.admit(append([]byte(nil), pkt...)); v {
		case admitForward:
			in = "in:forward"
		case admitSpoofed:
			in = "in:spoofed_source"
		case admitMalformed:
			in = "in:malformed"
		}
	}
	return out + " " + in
}

// TestForwardingReplay replays every testdata capture through the
// forwarding decisions and compares with testdata/forwarding/*.golden.
func TestForwardingReplay(t *testing.T) {
	d := replayDevice(t)
	files, _ := filepath.Glob("../testdata/*.pcap*")
	if len(files) < 5 {
		t.Fatalf("only %d captures in ../testdata", len(files))
	}
	seen := map[string]int{}
	for _, path := range files {
		if strings.HasSuffix(path, ".golden") {
			continue
		}
		t.Run(filepath.Base(path), func(t *testing.T) {
			pkts, err := readCapture(path)
			if err != nil && len(pkts) == 0 {
				t.Skipf("not a readable capture: %v", err) // garbage files are for the decoder
			}
			var b strings.Builder
			for i, p := range pkts {
				v := verdicts(d, p)
				seen[v]++
				fmt.Fprintf(&b, "%d %s\n", i+1, v)
			}
			golden := filepath.Join("testdata", "forwarding", filepath.Base(path)+".golden")
			if *update {
				os.MkdirAll(filepath.Dir(golden), 0o755)
				if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if b.String() != string(want) {
				t.Errorf("verdicts differ from %s:\ngot:\n%swant:\n%s", golden, b.String(), want)
			}
		})
	}
	// The corpus must exercise every decision, or the goldens prove little.
	for _, v := range []string{"out→beta", "out:no_route", "in:forward", "in:spoofed_source", "out→gamma"} {
		found := false
		for k := range seen {
			if strings.Contains(k, v) {
				found = true
			}
		}
		if !found && !*update {
			t.Errorf("no packet in the corpus gave %q", v)
		}
	}
}

// FuzzForwarding feeds arbitrary bytes to both decisions: never a panic,
// and a forwarded inbound packet is never longer than its input.
func FuzzForwarding(f *testing.F) {
	files, _ := filepath.Glob("../testdata/*.pcap*")
	for _, path := range files {
		pkts, _ := readCapture(path)
		for _, p := range pkts {
			f.Add(p)
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0x45})
	f.Add([]byte{0x60, 0, 0, 0, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		d := replayDevice(t)
		d.route(pkt)
		in := append([]byte(nil), pkt...)
		if out, v := d.peerByName("beta").admit(in); v == admitForward && len(out) > len(pkt) {
			t.Fatalf("admitted %d bytes from %d", len(out), len(pkt))
		}
	})
}

func netipAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
