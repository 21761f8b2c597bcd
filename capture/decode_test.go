package capture

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/peer-vpn/peer/tundev/tuntest"
)

var update = flag.Bool("update", false, "rewrite the testdata/*.golden files")

const testdata = "../testdata"

// corpus lists the capture files of the test corpus.
func corpus(t testing.TB) []string {
	t.Helper()
	var files []string
	for _, pat := range []string{"*.pcap", "*.pcapng"} {
		m, err := filepath.Glob(filepath.Join(testdata, pat))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 10 {
		t.Fatalf("test corpus missing: found %d capture files in %s", len(files), testdata)
	}
	return files
}

type testPacket struct {
	ip []byte // nil when the link layer is not IP
	ci time.Time
}

// readCorpusFile returns the IP packets of a capture file.
func readCorpusFile(t testing.TB, path string) []testPacket {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	magic, _ := br.Peek(4)
	var src packetSource
	var ng *pcapgo.NgReader
	var lt layers.LinkType
	if len(magic) == 4 && binary.LittleEndian.Uint32(magic) == 0x0a0d0d0a {
		ng, err = pcapgo.NewNgReader(br, pcapgo.NgReaderOptions{WantMixedLinkType: true})
		src = ng
	} else {
		var r *pcapgo.Reader
		r, err = pcapgo.NewReader(br)
		if err == nil {
			lt = r.LinkType()
		}
		src = r
	}
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []testPacket
	for {
		data, ci, err := src.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		l := lt
		if ng != nil {
			l = ci.AncillaryData[0].(layers.LinkType)
		}
		ip, _, _ := stripLink(l, data)
		out = append(out, testPacket{ip: bytes.Clone(ip), ci: ci.Timestamp})
	}
}

// TestCorpusGolden replays every capture file of the corpus through
// DecodeFile (and so through Decoder.Summarize and the flow keys) and compares the
// output with testdata/NAME.golden. Run with -update to rewrite them after a
// deliberate format change, and review the diff.
func TestCorpusGolden(t *testing.T) {
	for _, path := range corpus(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			var buf bytes.Buffer
			if err := decodeFile(&buf, path, time.UTC); err != nil {
				t.Fatal(err)
			}
			golden := path + ".golden"
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got := buf.String(); got != string(want) {
				t.Errorf("output differs from %s\n--- got:\n%s--- want:\n%s", golden, got, want)
			}
		})
	}
}

// TestCorpusVerdicts pins the verdicts the corpus was made to exercise, so
// that a golden file rewritten by mistake cannot hide a regression.
func TestCorpusVerdicts(t *testing.T) {
	tests := []struct {
		file string
		want []string // substrings, each expected in some line of the output
	}{
		{"icmp4.pcap", []string{"IPv4 10.99.0.1 > 10.99.0.2 ICMP echo-request id=", "ICMP echo-reply", " seq=3 len=84"}},
		{"icmp6_nd.pcap", []string{"ICMPv6 neighbor-solicitation who-has fd99::2 len=72", "ICMPv6 neighbor-advertisement tgt fd99::2 [SO]", "ICMPv6 echo-request id=", "ICMPv6 echo-reply id="}},
		{"icmp6_nd_ethernet.pcapng", []string{"ICMPv6 neighbor-solicitation who-has fd99::2"}},
		{"icmp4_sll.pcap", []string{"ICMP echo-request"}},
		{"tcp4.pcap", []string{"10.99.0.2.5201 TCP [S] seq=", "TCP [S.] seq=", "TCP [F.]", "data=1448 len=1500", "TCP [P.]"}},
		{"tcp6.pcap", []string{"IPv6 fd99::1.", " > fd99::2.5201 TCP [S] seq=", "data=1428 len=1500"}},
		{"udp_dns.pcap", []string{"> 10.99.0.2.53 UDP DNS query id=0x", " A? www.example.test. len=62", "UDP DNS response id=0x", "NOERROR an=1 AAAA? www.example.test.",
			"ICMP dest-unreachable port-unreachable for UDP 10.99.0.1.", " > 10.99.0.2.54 len=93"}},
		{"frag4.pcap", []string{" MF ICMP echo-request id=", "off=1480 MF ICMP len=1500", "off=2960 ICMP len=68"}},
		{"truncated_payload.pcap", []string{"len=1500 [truncated: 60 of 1500 bytes]"}},
		{"truncated_header.pcap", []string{"malformed: IPv4 header truncated (12 < 20 bytes)", "malformed or not IP: 6 packets"}},
		{"garbage.pcap", []string{"malformed: not IPv4 or IPv6 (version", "malformed or not IP: "}},
		{"garbage_biterrors.pcap", []string{"flows: "}},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		if err := decodeFile(&buf, filepath.Join(testdata, tt.file), time.UTC); err != nil {
			t.Errorf("%s: %v", tt.file, err)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(buf.String(), w) {
				t.Errorf("%s: no line contains %q\n%s", tt.file, w, buf.String())
			}
		}
	}
}

func TestDecodeFileErrors(t *testing.T) {
	var buf bytes.Buffer
	err := DecodeFile(&buf, filepath.Join(testdata, "not_a_capture.bin"))
	if err == nil || !strings.Contains(err.Error(), "not a pcap or pcapng file") {
		t.Errorf("not a capture: got %v", err)
	}
	err = DecodeFile(&buf, filepath.Join(t.TempDir(), "missing.pcap"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: got %v", err)
	}
	empty := filepath.Join(t.TempDir(), "empty.pcap")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := DecodeFile(&buf, empty); err == nil {
		t.Error("empty file: no error")
	}
	// A capture cut in the middle of a packet: the packets before are
	// printed, with the summary, and the error says where it stopped.
	whole, err := os.ReadFile(filepath.Join(testdata, "tcp4.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "cut.pcap")
	if err := os.WriteFile(cut, whole[:len(whole)-30], 0o600); err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	err = decodeFile(&buf, cut, time.UTC)
	if err == nil || !strings.Contains(err.Error(), "after 13 packets") {
		t.Errorf("cut file: got error %v", err)
	}
	if !strings.Contains(buf.String(), "flows: 2") {
		t.Errorf("cut file: no flow summary:\n%s", buf.String())
	}
}

// TestSummarizeTable covers verdicts the real corpus does not reach:
// specific malformations and the WireGuard message recognition.
func TestSummarizeTable(t *testing.T) {
	tcpSyn := mustPacket(t, "icmp4.pcap", 0) // a real IPv4 header to mutate
	tests := []struct {
		name string
		pkt  []byte
		want string
	}{
		{"empty", nil, "malformed: empty packet"},
		{"version 5", []byte{0x50, 0, 0, 20}, "malformed: not IPv4 or IPv6 (version 5)"},
		{"IPv4 short", tcpSyn[:12], "malformed: IPv4 header truncated (12 < 20 bytes)"},
		{"IPv4 IHL 3", with(tcpSyn, 0, 0x43), "malformed: IPv4 header length too small (12 < 20 bytes)"},
		{"IPv4 IHL 15", with(tcpSyn[:40], 0, 0x4f), "malformed: IPv4 header truncated (40 < 60 bytes)"},
		{"IPv4 total 10", with(with(tcpSyn, 2, 0), 3, 10), "malformed: IPv4 total length shorter than header (10 < 20 bytes)"},
		{"IPv6 short", make6(17, nil)[:30], "malformed: IPv6 header truncated (30 < 40 bytes)"},
		{"TCP short", make4(6, make([]byte, 8)), "IPv4 192.0.2.1 > 198.51.100.2 TCP malformed: header truncated (8 < 20 bytes) len=28"},
		{"TCP offset 2", make4(6, with(make([]byte, 20), 12, 0x20)), "TCP malformed: data offset too small (8 < 20 bytes)"},
		{"TCP offset 15", make4(6, with(make([]byte, 20), 12, 0xf0)), "TCP malformed: header truncated (20 < 60 bytes)"},
		{"UDP short", make4(17, make([]byte, 5)), "UDP malformed: header truncated (5 < 8 bytes)"},
		{"ICMP short", make4(1, make([]byte, 3)), "ICMP malformed: header truncated (3 < 8 bytes)"},
		{"ICMPv6 short", make6(58, make([]byte, 2)), "ICMPv6 malformed: header truncated (2 < 4 bytes)"},
		{"IPv6 zero payload TCP", make6(6, nil), "TCP malformed: header missing (payload length 0) len=40"},
		{"GRE", make4(47, make([]byte, 4)), "IPv4 192.0.2.1 > 198.51.100.2 GRE len=24"},
		{"unknown proto", make4(253, nil), "proto=253 len=20"},
		{"IP in IP", make4(4, make([]byte, 20)), "IPv4 192.0.2.1 > 198.51.100.2 proto=4 len=40"},
		{"ICMP unknown type", make4(1, []byte{42, 7, 0, 0, 0, 0, 0, 0}), "ICMP type=42 code=7 len=28"},
		{"ICMP frag needed", make4(1, append([]byte{3, 4, 0, 0, 0, 0, 0x05, 0x78}, make4(17, []byte{0x9c, 0x40, 0xca, 0x6c, 0, 8, 0, 0})...)),
			"ICMP dest-unreachable frag-needed mtu=1400 for UDP 192.0.2.1.40000 > 198.51.100.2.51820 len=56"},
		{"ICMPv6 too big", make6(58, append([]byte{2, 0, 0, 0, 0, 0, 0x05, 0x00}, make6(6, nil)...)),
			"ICMPv6 packet-too-big mtu=1280 for TCP 2001:db8::1 > 2001:db8::2 len=88"},
		{"DNS short", make4(17, tuntest.UDP(5000, 53, []byte{1, 2, 3})), "UDP DNS malformed: header truncated (3 < 12 bytes)"},
		{"DNS pointer loop", make4(17, tuntest.UDP(5000, 53, dnsQuery(0xc00c))), "UDP DNS query id=0x1234 question malformed"},
		{"DNS odd name", make4(17, tuntest.UDP(5000, 53, append(dnsHeader(1), 3, 'a', '\n', 0x80, 0, 0, 16, 0, 1))),
			`UDP DNS query id=0x1234 TXT? a\010\128. len=`},
		{"DNS root", make4(17, tuntest.UDP(5000, 53, append(dnsHeader(1), 0, 0, 2, 0, 1))), "UDP DNS query id=0x1234 NS? . len="},
		{"WireGuard initiation", make4(17, tuntest.UDP(51820, 51820, wg(1, 148))), "UDP WireGuard handshake-initiation sender=0x4030201 len=176"},
		{"WireGuard response", make4(17, tuntest.UDP(51820, 51820, wg(2, 92))), "UDP WireGuard handshake-response sender=0x4030201 receiver=0x8070605"},
		{"WireGuard cookie", make4(17, tuntest.UDP(51820, 51820, wg(3, 64))), "UDP WireGuard cookie-reply receiver=0x4030201"},
		{"WireGuard keepalive", make4(17, tuntest.UDP(51820, 51820, wg(4, 32))), "UDP WireGuard keepalive receiver=0x4030201 counter=867798387104613893 len=60"},
		{"WireGuard data", make4(17, tuntest.UDP(51820, 51820, wg(4, 32+96))), "UDP WireGuard data receiver=0x4030201 counter=867798387104613893 data=96"},
		{"not WireGuard", make4(17, tuntest.UDP(51820, 51820, wg(4, 33))), "UDP data=33"},
	}
	d := NewDecoder()
	for _, tt := range tests {
		got := string(d.Summarize(nil, tt.pkt))
		if !strings.Contains(got, tt.want) {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, got, tt.want)
		}
		_, ok := flowOf(d, tt.pkt)
		if ok == strings.HasPrefix(got, "malformed:") {
			t.Errorf("%s: Flow ok=%v for %q", tt.name, ok, got)
		}
	}
}

func TestFlow(t *testing.T) {
	d := NewDecoder()
	tcp := mustPacket(t, "tcp4.pcap", 0)
	f, ok := flowOf(d, tcp)
	want := Flow{Proto: 6, Src: netip.MustParseAddrPort("10.99.0.1:0"), Dst: netip.MustParseAddrPort("10.99.0.2:5201")}
	if !ok || f.Proto != want.Proto || f.Src.Addr() != want.Src.Addr() || f.Dst != want.Dst || f.Src.Port() == 0 {
		t.Errorf("tcp4 SYN flow = %v, %v", f, ok)
	}
	if s := f.String(); !strings.HasPrefix(s, "TCP 10.99.0.1:") || !strings.HasSuffix(s, " > 10.99.0.2:5201") {
		t.Errorf("Flow.String = %q", s)
	}
	icmp, _ := flowOf(d, mustPacket(t, "icmp6_nd.pcap", 3))
	if got := icmp.String(); got != "ICMPv6 fd99::1 > fd99::2" {
		t.Errorf("ICMPv6 flow = %q", got)
	}
	if _, ok := flowOf(d, []byte{0x45}); ok {
		t.Error("Flow of a malformed packet reported ok")
	}
}

// TestCorpusAgainstTshark checks the decoder's addresses, ports, protocol and
// IP length against tshark's dissection of the same files, an independent
// implementation. It is skipped without tshark, unless CI=true.
func TestCorpusAgainstTshark(t *testing.T) {
	tshark := needTshark(t)
	d := NewDecoder()
	for _, name := range []string{"icmp4.pcap", "icmp6_nd.pcap", "tcp4.pcap", "tcp6.pcap", "udp_dns.pcap", "frag4.pcap", "icmp4_sll.pcap", "icmp6_nd_ethernet.pcapng"} {
		path := filepath.Join(testdata, name)
		out, err := exec.Command(tshark, "-r", path, "-o", "ip.defragment:FALSE", "-T", "fields", "-E", "occurrence=f",
			"-e", "ip.src", "-e", "ip.dst", "-e", "ipv6.src", "-e", "ipv6.dst", "-e", "ip.proto",
			"-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "udp.srcport", "-e", "udp.dstport",
			"-e", "ip.len", "-e", "ipv6.plen").Output()
		if err != nil {
			t.Fatalf("tshark %s: %v", name, err)
		}
		lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
		pkts := readCorpusFile(t, path)
		if len(lines) != len(pkts) {
			t.Fatalf("%s: tshark saw %d packets, we read %d", name, len(lines), len(pkts))
		}
		for i, line := range lines {
			f := strings.Split(line, "\t")
			fl, ok := flowOf(d, pkts[i].ip)
			if !ok {
				t.Errorf("%s #%d: malformed for us, tshark: %q", name, i+1, line)
				continue
			}
			src, dst, ipLen := f[0], f[1], f[9]
			if src == "" {
				src, dst = f[2], f[3]
				if n, err := strconv.Atoi(f[10]); err == nil {
					ipLen = strconv.Itoa(40 + n)
				}
			}
			if fl.Src.Addr().String() != src || fl.Dst.Addr().String() != dst {
				t.Errorf("%s #%d: addresses %v > %v, tshark %s > %s", name, i+1, fl.Src.Addr(), fl.Dst.Addr(), src, dst)
			}
			if f[4] != "" && f[4] != strconv.Itoa(int(fl.Proto)) {
				t.Errorf("%s #%d: protocol %d, tshark %s", name, i+1, fl.Proto, f[4])
			}
			sport, dport := f[5]+f[7], f[6]+f[8]
			if fl.Proto == protoICMP || fl.Proto == protoICMPv6 {
				sport, dport = "", "" // tshark reports the ports of quoted packets
			}
			if sport == "" {
				sport, dport = "0", "0"
			}
			if strconv.Itoa(int(fl.Src.Port())) != sport || strconv.Itoa(int(fl.Dst.Port())) != dport {
				t.Errorf("%s #%d: ports %d > %d, tshark %s > %s", name, i+1, fl.Src.Port(), fl.Dst.Port(), sport, dport)
			}
			sum := string(d.Summarize(nil, pkts[i].ip))
			if !strings.Contains(sum, " len="+ipLen) {
				t.Errorf("%s #%d: %q, tshark says IP length %s", name, i+1, sum, ipLen)
			}
		}
	}
}

// needTshark returns the path of tshark, skipping the test when it is
// missing, or failing it when CI=true.
func needTshark(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("tshark")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tshark is required when CI=true")
		}
		t.Skip("tshark not installed")
	}
	return p
}

func TestSummarizeNoAlloc(t *testing.T) {
	d := NewDecoder()
	var pkts [][]byte
	for _, name := range []string{"icmp4.pcap", "tcp4.pcap", "tcp6.pcap", "udp_dns.pcap", "frag4.pcap"} {
		for _, p := range readCorpusFile(t, filepath.Join(testdata, name)) {
			pkts = append(pkts, p.ip)
		}
	}
	pkts = append(pkts, mustPacket(t, "icmp6_nd.pcap", 1), mustPacket(t, "icmp6_nd.pcap", 3))
	buf := make([]byte, 0, 512)
	for _, p := range pkts {
		d.Summarize(buf[:0], p) // warm up reused layer slices
	}
	for i, p := range pkts {
		if n := testing.AllocsPerRun(50, func() { buf = d.Summarize(buf[:0], p) }); n != 0 {
			t.Errorf("packet %d (%s): %.1f allocations per Summarize", i, buf, n)
		}
	}
}

func BenchmarkSummarize(b *testing.B) {
	d := NewDecoder()
	var pkts [][]byte
	for _, path := range corpus(b) {
		for _, p := range readCorpusFile(b, path) {
			if p.ip != nil {
				pkts = append(pkts, p.ip)
			}
		}
	}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		buf = d.Summarize(buf[:0], pkts[i%len(pkts)])
	}
}

// BenchmarkSummarizeDNS is the logging path for DNS queries and responses.
func BenchmarkSummarizeDNS(b *testing.B) {
	d := NewDecoder()
	var pkts [][]byte
	for _, p := range readCorpusFile(b, filepath.Join(testdata, "udp_dns.pcap")) {
		pkts = append(pkts, p.ip)
	}
	pkts = append(pkts, make4(17, tuntest.UDP(5000, 53, dnsQueryEDNS())))
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		buf = d.Summarize(buf[:0], pkts[i%len(pkts)])
	}
}

// FuzzSummarize feeds arbitrary bytes to the decoder, seeded with every
// packet of the corpus. The decoder must not panic, must produce one line
// without control characters, and must agree with flowOf on malformedness.
func FuzzSummarize(f *testing.F) {
	for _, path := range corpus(f) {
		for _, p := range readCorpusFile(f, path) {
			if p.ip != nil {
				f.Add(p.ip)
			}
		}
	}
	d := NewDecoder()
	f.Fuzz(func(t *testing.T, pkt []byte) {
		s := d.Summarize(nil, pkt)
		if len(s) == 0 {
			t.Fatal("empty summary")
		}
		for _, c := range s {
			if c < ' ' || c == 0x7f {
				t.Fatalf("control character %#x in %q", c, s)
			}
		}
		_, ok := flowOf(d, pkt)
		if ok == bytes.HasPrefix(s, []byte("malformed:")) {
			t.Fatalf("Flow ok=%v for %q", ok, s)
		}
		if again := d.Summarize(nil, pkt); !bytes.Equal(again, s) {
			t.Fatalf("not deterministic: %q then %q", s, again)
		}
	})
}

// flowOf returns the flow key of a raw IP packet, and false when the IP
// header itself is malformed.
func flowOf(d *Decoder, pkt []byte) (Flow, bool) {
	d.decode(pkt)
	if d.bad.what != "" {
		return Flow{}, false
	}
	return d.flow(), true
}

// --- helpers building packets for table tests ---

func mustPacket(t testing.TB, file string, i int) []byte {
	t.Helper()
	p := readCorpusFile(t, filepath.Join(testdata, file))
	if i >= len(p) || p[i].ip == nil {
		t.Fatalf("%s has no IP packet %d", file, i)
	}
	return p[i].ip
}

// with returns a copy of b with b[i] = v.
func with(b []byte, i int, v byte) []byte {
	c := bytes.Clone(b)
	c[i] = v
	return c
}

// make4 and make6 are tuntest's builders with this file's addresses:
// 192.0.2.1 > 198.51.100.2 and 2001:db8::1 > 2001:db8::2.
func make4(proto byte, payload []byte) []byte {
	return tuntest.IPv4(proto, netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.2"), payload)
}

func make6(nh byte, payload []byte) []byte {
	return tuntest.IPv6(nh, netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2"), payload)
}

// dnsQueryEDNS is an A query for www.example.test with the OPT record and
// cookie option that dig and most resolvers add.
func dnsQueryEDNS() []byte {
	q := dnsHeader(1)
	q[11] = 1 // ARCOUNT
	q = append(q, 3, 'w', 'w', 'w', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1)
	// OPT: root name, type 41, UDP size 1232, no extended flags, 12 bytes of
	// options: COOKIE (10) with an 8-byte client cookie.
	q = append(q, 0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 12, 0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8)
	return q
}

func dnsHeader(qd uint16) []byte {
	h := []byte{0x12, 0x34, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(h[4:6], qd)
	return h
}

// dnsQuery is a query whose question name is the given compression pointer.
func dnsQuery(ptr uint16) []byte {
	q := dnsHeader(1)
	q = binary.BigEndian.AppendUint16(q, ptr)
	return append(q, 0, 1, 0, 1)
}

// wg builds a WireGuard-shaped message of type typ and length n.
func wg(typ byte, n int) []byte {
	m := make([]byte, n)
	m[0] = typ
	for i := 4; i < n && i < 16; i++ {
		m[i] = byte(i - 3)
	}
	return m
}
