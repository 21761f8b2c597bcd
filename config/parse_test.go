package config

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Public keys for Parse tests; their private keys are not needed.
const (
	k1 = "mhahAQRhqTQAVk1F9RDhxow+sCHpzwHyqSG1UUUWNyU="
	k2 = "8M17H3V1nU9whb1SbIj9y8+hJNo2VnQGl2c/H1j8I2I="
	k3 = "tNeb/kSMhvdSWQayX4k1vBnVUHPXZZtBQaRFa3oXfyM="
)

var keyNames = strings.NewReplacer("K1", k1, "K2", k2, "K3", k3)

// two is a valid two-peer mesh; variants below change one line of it.
const two = `peers:
  - name: alpha
    public_key: K1
    address: 10.10.0.1/24
  - name: beta
    public_key: K2
    address: 10.10.0.2/24
`

// edit replaces line n (1-based) of two with repl (which may hold several lines).
func edit(n int, repl string) string {
	lines := strings.Split(two, "\n")
	lines[n-1] = repl
	return strings.Join(lines, "\n")
}

func parseErrs(t *testing.T, src string) ErrorList {
	t.Helper()
	m, err := Parse("mesh.yaml", []byte(keyNames.Replace(src)))
	if err == nil {
		t.Fatalf("accepted:\n%s\nas %+v", src, m)
	}
	if m != nil {
		t.Errorf("returned a mesh together with an error")
	}
	var list ErrorList
	if !errors.As(err, &list) || len(list) == 0 {
		t.Fatalf("error %T %v is not a non-empty ErrorList", err, err)
	}
	return list
}

func TestParseRefusals(t *testing.T) {
	tests := []struct {
		name string
		src  string
		line int
		msg  string
	}{
		// YAML itself.
		// yaml.v3 reports an unclosed flow list at the line of the enclosing
		// mapping; that line is kept as it is.
		{"syntax", edit(6, "    public_key: [K2"), 5, "YAML syntax: did not find expected ',' or ']'"},
		{"syntax bad indent", edit(6, "     public_key: K2"), 6, "YAML syntax"},
		{"syntax no line", "peers: x: y\n", 0, "mapping values are not allowed"},
		{"control char", "# a\npeers:\n  - name: \"a\x01\"\n", 3, "control characters"},
		{"empty file", "", 0, "the file is empty"},
		{"comment only", "# nothing\n", 0, "the file is empty"},
		{"null document", "~\n", 1, "the file is empty"},
		{"two documents", two + "---\npeers: []\n", 8, "second YAML document"},
		{"top not mapping", "- a\n- b\n", 1, "expected a mapping"},
		{"duplicate field", two + "peers: []\n", 8, `field "peers" appears twice (first on line 1)`},
		{"merge key", "base: &b {mtu: 1400}\n", 1, `unknown field "base"`},
		{"merge key use", "interface:\n  <<: {mtu: 1400}\n" + two, 2, "merge keys"},
		{"alias to list", "interface:\n  name: &x [a]\n" + strings.Replace(two, "10.10.0.1/24", "*x", 1), 6, "aliases may only stand for plain values"},

		// Unknown fields anywhere.
		{"typo public_key", edit(3, "    pubic_key: K1"), 3, `unknown field "pubic_key" (did you mean "public_key"?)`},
		{"typo top", "peer:\n" + two, 1, `the top level: unknown field "peer" (did you mean "peers"?)`},
		{"typo interface", "interface:\n  mut: 1400\n" + two, 2, `interface: unknown field "mut" (did you mean "mtu"?)`},
		{"typo capture", "capture:\n  pcapp: x\n" + two, 2, `capture: unknown field "pcapp"`},
		{"log_level unknown", "log_level: verbose\n" + two, 1, `log_level: unknown level "verbose"; use one of debug, info, warn, error`},
		{"log_level list", "log_level: [debug]\n" + two, 1, "log_level: expected a string, got a list"},
		{"peer field twice", edit(4, "    address: 10.10.0.1/24\n    address: 10.10.0.3/24"), 5, `field "address" appears twice (first on line 4)`},

		// Wrong types.
		{"peers not list", "peers: alpha\n", 1, `peers: expected a list of peers, got "alpha"`},
		{"peer not mapping", "peers:\n  - alpha\n", 2, `expected a mapping of fields, got "alpha"`},
		{"interface not mapping", "interface: peer0\n" + two, 1, "interface: expected a mapping"},
		{"mtu string", "interface:\n  mtu: big\n" + two, 2, `interface.mtu: expected an integer, got "big"`},
		{"mtu float", "interface:\n  mtu: 1400.5\n" + two, 2, "expected an integer"},
		{"mtu huge", "interface:\n  mtu: 99999999999999999999\n" + two, 2, "expected an integer"},
		{"name list", edit(5, "  - name: [beta]"), 5, "expected a string, got a list"},
		{"name bool", edit(5, "  - name: true"), 5, "got the boolean true"},
		{"name binary", edit(5, "  - name: !!binary aGVsbG8="), 5, "tagged !!binary"},
		{"address mapping", edit(7, "    address: {a: 1}"), 7, "expected a value or a list of values, got a mapping"},
		{"address nested list", edit(7, "    address: [[10.10.0.2/24]]"), 7, "expected a string, got a list"},
		{"capture keys", "capture:\n  pcap: x\n  keys: true\n" + two, 3, "capture.keys is not allowed in the mesh file: it would make every node write its private key"},
		{"capture keys false", "capture:\n  keys: false\n" + two, 2, "run the one node whose capture must be decrypted with -pcap-keys"},
		{"outer not bool", "capture:\n  outer: \"yes\"\n" + two, 2, `capture.outer: expected true or false, got "yes"`},
		{"max_size float", "capture:\n  max_size: 1.5\n" + two, 2, "capture.max_size: expected an integer"},
		{"max_size negative", "capture:\n  max_size: -1\n" + two, 2, "capture.max_size: negative maximum file size -1"},
		{"max_files negative", "capture:\n  max_files: -3\n" + two, 2, "capture.max_files: negative maximum file count -3"},
		{"private_key_file list", "private_key_file: [a]\n" + two, 1, "private_key_file: expected a string"},

		// Required fields.
		{"missing peers", "interface:\n  mtu: 1400\n", 1, `missing required field "peers"`},
		{"empty peers", "peers: []\n", 1, "peers: the list is empty"},
		{"null peers", "peers:\n", 1, "peers: the list is empty"},
		{"missing name", edit(5, "  - endpoint: 203.0.113.2:51820"), 5, `peers[1]: missing required field "name"`},
		{"null name", edit(5, "  - name:"), 5, `missing required field "name"`},
		{"missing public_key", edit(6, "    keepalive: 5s"), 5, `peer "beta": missing required field "public_key"`},
		{"missing address", edit(7, "    keepalive: 5s"), 5, `peer "beta": missing required field "address"`},
		{"empty address list", edit(7, "    address: []"), 7, "address is empty"},
		{"empty address string", edit(7, `    address: ""`), 7, "address is empty"},
		{"null in address list", edit(7, "    address: [10.10.0.2/24, ~]"), 7, "empty list item"},

		// Names.
		{"name upper", edit(5, "  - name: Beta"), 5, `name "Beta" must be 1 to 63 characters from a-z, 0-9 and '-'`},
		{"name underscore", edit(5, "  - name: be_ta"), 5, "must be 1 to 63 characters"},
		{"name empty", edit(5, `  - name: ""`), 5, "must be 1 to 63 characters"},
		{"name too long", edit(5, "  - name: "+strings.Repeat("a", 64)), 5, "must be 1 to 63 characters"},
		{"name duplicate", edit(5, "  - name: alpha"), 5, `peer name "alpha" is used twice (first on line 2)`},

		// Public keys.
		{"key duplicate", edit(6, "    public_key: K1"), 6, `peer "beta" has the same public_key as peer "alpha" (line 3)`},
		{"name duplicate on its own line", "peers:\n  - public_key: K1\n    name: x\n    address: 10.10.0.1\n  -\n    address: 10.10.0.2\n    public_key: K2\n    name: x\n", 8, `peer name "x" is used twice (first on line 3)`},
		{"key not base64", edit(6, "    public_key: not-base64!"), 6, "not valid base64"},
		{"key short", edit(6, "    public_key: "+k2[:40]+"AA=="), 6, "31 bytes, want 32"},
		{"key long", edit(6, "    public_key: "+strings.Repeat("B", 48)), 6, "36 bytes, want 32"},
		{"key zero", edit(6, "    public_key: "+strings.Repeat("A", 43)+"="), 6, "all zeros"},

		// Addresses.
		{"address garbage", edit(7, "    address: ten.ten"), 7, `address "ten.ten": not an IP address`},
		{"address bad octet", edit(7, "    address: 10.10.0.300/24"), 7, "not an IP address with a prefix length"},
		{"address bad length", edit(7, "    address: 10.10.0.2/33"), 7, "not an IP address with a prefix length"},
		{"address network", edit(7, "    address: 10.10.0.0/24"), 7, "is the network address of 10.10.0.0/24; use a host address such as 10.10.0.1/24"},
		{"address v6 network", edit(7, "    address: fd10::/64"), 7, "is the network address of fd10::/64"},
		{"address broadcast", edit(7, "    address: 10.10.0.255/24"), 7, "broadcast address of 10.10.0.0/24"},
		{"address zone", edit(7, "    address: fe80::1%eth0"), 7, "not an IP address"},
		{"address mapped", edit(7, "    address: ::ffff:10.10.0.2/120"), 7, "IPv4-mapped"},
		{"address unspecified", edit(7, "    address: 0.0.0.0"), 7, "unspecified"},
		{"address loopback", edit(7, "    address: 127.0.0.2/8"), 7, "loopback"},
		{"address multicast", edit(7, "    address: ff02::1"), 7, "multicast"},
		{"second address of list", edit(7, "    address:\n      - 10.10.0.2/24\n      - fd10::zz/64"), 9, `address "fd10::zz/64"`},

		// Subnets.
		{"subnet no length", edit(7, "    address: 10.10.0.2/24\n    subnets: 10.20.0.0"), 8, "needs a prefix length"},
		{"subnet host bits", edit(7, "    address: 10.10.0.2/24\n    subnets: [10.20.1.5/24]"), 8, "has host bits set; did you mean 10.20.1.0/24?"},
		{"subnet garbage", edit(7, "    address: 10.10.0.2/24\n    subnets: [x/24]"), 8, "not an IP prefix"},

		// Overlaps between peers.
		{"same address twice", edit(7, "    address: [fd10::2/64, 10.10.0.1/24]"), 7,
			`peer "beta" address 10.10.0.1 is also address 10.10.0.1 of peer "alpha" (line 4)`},
		{"subnet is other peer's address", edit(7, "    address: 10.10.0.2/24\n    subnets: [10.10.0.1/32]"), 8,
			`peer "beta" subnet 10.10.0.1/32 is also address 10.10.0.1 of peer "alpha" (line 4)`},
		{"same subnet twice", `peers:
  - name: alpha
    public_key: K1
    address: 10.10.0.1/24
    subnets: [fd00:20::/48]
  - name: beta
    public_key: K2
    address: 10.10.0.2/24
    subnets: [fd00:20::/48]
`, 9, `peer "beta" subnet fd00:20::/48 is also subnet fd00:20::/48 of peer "alpha" (line 5)`},
		{"default route", edit(7, "    address: 10.10.0.2/24\n    subnets: [0.0.0.0/0]"), 8, `subnet 0.0.0.0/0 is a default route; to send the world through this peer give it exit: true`},
		{"default route v6", edit(7, "    address: 10.10.0.2/24\n    subnets: [10.20.0.0/16, \"::/0\"]"), 8, `subnet ::/0 is a default route`},

		// Exits.
		{"exit not a bool", edit(7, "    address: 10.10.0.2/24\n    exit: yes please"), 8, `peer "beta": exit: expected true or false`},
		{"use_exit unknown", edit(7, "    address: 10.10.0.2/24\n    use_exit: alfa"), 8, `peer "beta": use_exit: no peer is named "alfa" (did you mean "alpha"?)`},
		{"use_exit not an exit", edit(7, "    address: 10.10.0.2/24\n    use_exit: alpha"), 8, `peer "beta": use_exit: peer "alpha" (line 2) is not an exit; give it exit: true`},
		{"use_exit itself", edit(7, "    address: 10.10.0.2/24\n    exit: true\n    use_exit: beta"), 9, `peer "beta": use_exit names this peer itself`},
		{"exit uses exit", `peers:
  - name: alpha
    public_key: K1
    address: 10.10.0.1/24
    exit: true
  - name: beta
    public_key: K2
    address: 10.10.0.2/24
    exit: true
    use_exit: alpha
`, 10, `peer "beta": use_exit: this peer is an exit itself`},
		{"use_exit not a string", edit(7, "    address: 10.10.0.2/24\n    use_exit: [alpha]"), 8, `peer "beta": use_exit: expected a string`},

		// Relays.
		{"relay without endpoint", edit(7, "    address: 10.10.0.2/24\n    relay: true"), 8,
			`peer "beta": relay: true needs an endpoint: the peers that cannot reach each other reach the relay instead`},
		{"relay with empty endpoint", edit(7, "    address: 10.10.0.2/24\n    endpoint: \"\"\n    relay: true"), 9, `peer "beta": relay: true needs an endpoint`},
		{"relay with null endpoint", edit(7, "    address: 10.10.0.2/24\n    endpoint:\n    relay: true"), 9, `peer "beta": relay: true needs an endpoint`},
		{"relay unnamed without endpoint", "peers:\n  - public_key: K1\n    address: 10.10.0.1/24\n    relay: true\n", 4, `peers[0]: relay: true needs an endpoint`},
		{"relay not a bool", edit(7, "    address: 10.10.0.2/24\n    endpoint: 203.0.113.2:51820\n    relay: \"yes\""), 9, `peer "beta": relay: expected true or false, got "yes"`},
		{"relay typo", edit(7, "    address: 10.10.0.2/24\n    relais: true"), 8, `peer "beta": unknown field "relais" (did you mean "relay"?)`},

		// Endpoints.
		{"endpoint no port", edit(7, "    address: 10.10.0.2/24\n    endpoint: 203.0.113.2"), 8, `endpoint "203.0.113.2": missing port`},
		{"endpoint port 0", edit(7, "    address: 10.10.0.2/24\n    endpoint: 203.0.113.2:0"), 8, "port \"0\" must be a number from 1 to 65535"},
		{"endpoint port big", edit(7, "    address: 10.10.0.2/24\n    endpoint: 203.0.113.2:65536"), 8, "must be a number from 1 to 65535"},
		{"endpoint port name", edit(7, "    address: 10.10.0.2/24\n    endpoint: 203.0.113.2:wg"), 8, "must be a number"},
		{"endpoint no host", edit(7, "    address: 10.10.0.2/24\n    endpoint: \":51820\""), 8, "missing host"},
		{"endpoint v6 no brackets", edit(7, "    address: 10.10.0.2/24\n    endpoint: 2001:db8::2:51820"), 8, "[address]:port"},
		{"endpoint garbage host", edit(7, "    address: 10.10.0.2/24\n    endpoint: bad host!:51820"), 8, `host "bad host!" is not an IP address or DNS name`},
		{"endpoint bad ipv4", edit(7, "    address: 10.10.0.2/24\n    endpoint: 203.0.113.300:51820"), 8, "is not a valid IP address"},
		{"endpoint bracketed name", edit(7, "    address: 10.10.0.2/24\n    endpoint: \"[beta.example]:51820\""), 8, "not an IPv6 address"},
		{"endpoint unspecified", edit(7, "    address: 10.10.0.2/24\n    endpoint: 0.0.0.0:51820"), 8, "unspecified"},
		{"endpoint label dash", edit(7, "    address: 10.10.0.2/24\n    endpoint: -beta.example:51820"), 8, "not an IP address or DNS name"},

		// Keepalive.
		{"keepalive negative", edit(7, "    address: 10.10.0.2/24\n    keepalive: -5s"), 8, `keepalive "-5s": is negative`},
		{"keepalive negative int", edit(7, "    address: 10.10.0.2/24\n    keepalive: -5"), 8, "is negative"},
		{"keepalive garbage", edit(7, "    address: 10.10.0.2/24\n    keepalive: often"), 8, "not a duration"},
		{"keepalive fraction", edit(7, "    address: 10.10.0.2/24\n    keepalive: 1500ms"), 8, "whole number of seconds"},
		{"keepalive too long", edit(7, "    address: 10.10.0.2/24\n    keepalive: 24h"), 8, "above the maximum"},
		{"keepalive list", edit(7, "    address: 10.10.0.2/24\n    keepalive: [1]"), 8, "expected a duration"},
		{"keepalive bool", edit(7, "    address: 10.10.0.2/24\n    keepalive: true"), 8, "expected a duration"},

		// Interface.
		{"mtu small", "interface:\n  mtu: 71\n" + two, 2, "interface.mtu: 71 is below the minimum 72"},
		{"mtu large", "interface:\n  mtu: 65536\n" + two, 2, "65536 is above the maximum 65535"},
		{"mtu ipv6", "interface:\n  mtu: 1279\n" + edit(7, "    address: [10.10.0.2/24, fd10::2/64]"), 2,
			`interface.mtu: 1279 is below 1280, the IPv6 minimum, and peer "beta" has the IPv6 prefix fd10::2/128`},
		{"mtu ipv6 subnet", "interface:\n  mtu: 1000\n" + edit(7, "    address: 10.10.0.2/24\n    subnets: fd00::/64"), 2, "the IPv6 prefix fd00::/64"},
		{"iface long", "interface:\n  name: abcdefghijklmnop\n" + two, 2, "is 16 characters long; the limit is 15"},
		{"iface slash", "interface:\n  name: peer/0\n" + two, 2, `has the character '/'`},
		{"iface space", "interface:\n  name: \"peer 0\"\n" + two, 2, `has the character ' '`},
		{"iface dotdot", "interface:\n  name: ..\n" + two, 2, "not allowed"},
		{"driver", "interface:\n  driver: tap\n" + two, 2, `unknown driver "tap"; use one of auto, water, offload`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			list := parseErrs(t, tc.src)
			for _, e := range list {
				if e.Line == tc.line && strings.Contains(e.Msg, tc.msg) {
					if e.File != "mesh.yaml" {
						t.Errorf("File = %q", e.File)
					}
					return
				}
			}
			t.Errorf("no error at line %d containing %q; got:\n%v", tc.line, tc.msg, list)
		})
	}
}

func TestErrorFormat(t *testing.T) {
	list := parseErrs(t, edit(3, "    pubic_key: K1"))
	got := list.Error()
	want := "mesh.yaml:2: peer \"alpha\": missing required field \"public_key\"\n" +
		"mesh.yaml:3: peer \"alpha\": unknown field \"pubic_key\" (did you mean \"public_key\"?)"
	if got != want {
		t.Errorf("Error() =\n%s\nwant\n%s", got, want)
	}
	var first *Error
	if !errors.As(error(list), &first) || first.Line != 2 {
		t.Errorf("errors.As gave %v, want the line 2 problem", first)
	}
	if s := (&Error{File: "f", Msg: "m"}).Error(); s != "f: m" {
		t.Errorf("lineless Error() = %q", s)
	}
}

// TestParseReportsAll checks that independent problems are all reported, in
// line order.
func TestParseReportsAll(t *testing.T) {
	list := parseErrs(t, "interface:\n  mtu: 10\n"+edit(6, "    public_key: nope")+"    keepalive: -1s\n")
	var lines []int
	for _, e := range list {
		lines = append(lines, e.Line)
	}
	if got, want := lines, []int{2, 8, 10}; !equalInts(got, want) {
		t.Errorf("lines = %v, want %v:\n%v", got, want, list)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func mustParse(t *testing.T, file, src string) *Mesh {
	t.Helper()
	m, err := Parse(file, []byte(keyNames.Replace(src)))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return m
}

func TestParseDefaults(t *testing.T) {
	m := mustParse(t, "/etc/peer/mesh.yaml", two)
	if m.Interface != (Interface{Name: "peer0", MTU: 1420, Driver: "auto"}) {
		t.Errorf("Interface = %+v", m.Interface)
	}
	if m.PrivateKeyFile != "" || m.Capture != (Capture{}) || m.LogLevel != "" || m.File != "/etc/peer/mesh.yaml" {
		t.Errorf("mesh = %+v", m)
	}
	if len(m.Peers) != 2 || m.Peers[0].Name != "alpha" || m.Peers[1].Name != "beta" {
		t.Fatalf("peers = %+v", m.Peers)
	}
	b := m.Peers[1]
	if b.Line != 5 || b.PublicKey.String() != k2 || b.Endpoint != "" || b.Keepalive != 0 || b.Subnets != nil {
		t.Errorf("beta = %+v", b)
	}
	if want := []netip.Prefix{netip.MustParsePrefix("10.10.0.2/24")}; !equalPrefixes(b.Addresses, want) {
		t.Errorf("beta addresses = %v", b.Addresses)
	}
}

func TestParseFull(t *testing.T) {
	src := `# a comment
interface: {name: wg-mesh.1, mtu: 1280, driver: offload}
private_key_file: keys/private.key
capture:
  pcap: out/peer.pcapng
  outer: true
  log_packets: true
  max_size: 0x100000
  max_files: 4
peers:
  - name: alpha
    public_key: " K1 "
    address: [10.10.0.1/24, fd10::1/64]
    subnets: [10.20.1.0/24, "fd00:20:1::/64"]
    endpoint: alpha.example.:51820
    keepalive: 25
    preshared_key_file: /abs/alpha.psk
  -
    name: b-2
    public_key: K2
    address: 10.10.0.2
    endpoint: "[2001:db8::2]:4000"
    keepalive: 1m
    preshared_key_file: b.psk
  - name: "3"
    public_key: K3
    address: fd10::3
    endpoint: &ep 203.0.113.3:51820
    keepalive: 0s
log_level: debug
`
	m := mustParse(t, filepath.Join("conf", "mesh.yaml"), src)
	if m.Interface != (Interface{Name: "wg-mesh.1", MTU: 1280, Driver: "offload"}) {
		t.Errorf("Interface = %+v", m.Interface)
	}
	if want := filepath.Join("conf", "keys", "private.key"); m.PrivateKeyFile != want {
		t.Errorf("PrivateKeyFile = %q, want %q", m.PrivateKeyFile, want)
	}
	wantCap := Capture{Pcap: filepath.Join("conf", "out", "peer.pcapng"), Outer: true, LogPackets: true, MaxSize: 1 << 20, MaxFiles: 4}
	if m.Capture != wantCap {
		t.Errorf("Capture = %+v, want %+v", m.Capture, wantCap)
	}
	if m.LogLevel != "debug" {
		t.Errorf("LogLevel = %q", m.LogLevel)
	}
	a, b, c := m.Peers[0], m.Peers[1], m.Peers[2]
	if a.Line != 11 || b.Line != 19 || c.Line != 25 {
		t.Errorf("lines = %d %d %d", a.Line, b.Line, c.Line)
	}
	if a.Keepalive != 25*time.Second || b.Keepalive != time.Minute || c.Keepalive != 0 {
		t.Errorf("keepalives = %v %v %v", a.Keepalive, b.Keepalive, c.Keepalive)
	}
	if a.PresharedKeyFile != "/abs/alpha.psk" || b.PresharedKeyFile != filepath.Join("conf", "b.psk") || c.PresharedKeyFile != "" {
		t.Errorf("psk files = %q %q %q", a.PresharedKeyFile, b.PresharedKeyFile, c.PresharedKeyFile)
	}
	if a.Endpoint != "alpha.example.:51820" || b.Endpoint != "[2001:db8::2]:4000" || c.Endpoint != "203.0.113.3:51820" {
		t.Errorf("endpoints = %q %q %q", a.Endpoint, b.Endpoint, c.Endpoint)
	}
	if a.PublicKey.String() != k1 {
		t.Errorf("alpha key = %v", a.PublicKey)
	}
	wantA := pfx("10.10.0.1/32", "fd10::1/128", "10.20.1.0/24", "fd00:20:1::/64")
	if got := a.Prefixes(); !equalPrefixes(got, wantA) {
		t.Errorf("alpha Prefixes = %v, want %v", got, wantA)
	}
	if !equalPrefixes(b.Addresses, pfx("10.10.0.2/32")) || !equalPrefixes(c.Addresses, pfx("fd10::3/128")) {
		t.Errorf("bare addresses = %v %v", b.Addresses, c.Addresses)
	}
}

// TestParseRelay: relay: true with an endpoint is accepted and kept;
// false, null and leaving it out all mean no relay; a relay whose endpoint
// is malformed gets the endpoint's error only, not a second one saying it
// has none.
func TestParseRelay(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		want       bool
	}{
		{"true", "    endpoint: 203.0.113.2:51820\n    relay: true", true},
		{"true before endpoint", "    relay: true\n    endpoint: relay.example:51820", true},
		{"false", "    relay: false", false},
		{"null", "    relay:", false},
		{"left out", "    keepalive: 25s", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mustParse(t, "mesh.yaml", keyNames.Replace(edit(7, "    address: 10.10.0.2/24\n"+tc.line)))
			if m.Peers[1].Relay != tc.want || m.Peers[0].Relay {
				t.Errorf("relay = %v (alpha %v), want %v", m.Peers[1].Relay, m.Peers[0].Relay, tc.want)
			}
		})
	}
	list := parseErrs(t, edit(7, "    address: 10.10.0.2/24\n    endpoint: 203.0.113.2\n    relay: true"))
	if len(list) != 1 || list[0].Line != 8 || !strings.Contains(list[0].Msg, "missing port") {
		t.Errorf("relay with a bad endpoint: got %v, want only the endpoint's error", list)
	}
}

// TestParseAliasScalar checks that an alias to a plain value works and that
// its problems are reported where the alias is used.
func TestParseAliasScalar(t *testing.T) {
	src := "interface:\n  driver: &d auto\n" + edit(7, "    address: 10.10.0.2/24\n    endpoint: *d")
	list := parseErrs(t, src)
	if list[0].Line != 10 || !strings.Contains(list[0].Msg, `endpoint "auto": missing port`) {
		t.Errorf("got %v", list)
	}
	m := mustParse(t, "m", strings.Replace(two, "address: 10.10.0.1/24", "address: 10.10.0.1/24\n    keepalive: &ka 25s", 1)+"    keepalive: *ka\n")
	if m.Peers[1].Keepalive != 25*time.Second {
		t.Errorf("aliased keepalive = %v", m.Peers[1].Keepalive)
	}
}

func TestParseMTUWithoutIPv6(t *testing.T) {
	m := mustParse(t, "m", "interface:\n  mtu: 72\n"+two)
	if m.Interface.MTU != 72 {
		t.Errorf("MTU = %d", m.Interface.MTU)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mesh.yaml")
	if _, err := Load(path); err == nil || !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), path+": ") {
		t.Errorf("missing file: %v", err)
	}
	if err := os.WriteFile(path, []byte(keyNames.Replace(two)), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := Load(path)
	if err != nil || m.File != path || len(m.Peers) != 2 {
		t.Fatalf("Load = %+v, %v", m, err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, make([]byte, MaxFileSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("big file: %v", err)
	}
}

func pfx(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func equalPrefixes(a, b []netip.Prefix) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
