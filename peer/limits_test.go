package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/peer-vpn/peer/netconf"
	"github.com/peer-vpn/peer/tundev"
)

// TestLimitsAgree: netconf, a leaf package that may not import tundev,
// keeps a copy of the device's MTU limits; the copy must not drift.
func TestLimitsAgree(t *testing.T) {
	if netconf.MinMTU != tundev.MinMTU || netconf.MaxMTU != tundev.MaxMTU || netconf.MinMTUIPv6 != tundev.MinMTUIPv6 {
		t.Errorf("netconf MTU limits [%d, %d] (IPv6 %d) differ from tundev's [%d, %d] (IPv6 %d)",
			netconf.MinMTU, netconf.MaxMTU, netconf.MinMTUIPv6, tundev.MinMTU, tundev.MaxMTU, tundev.MinMTUIPv6)
	}
}

// TestLimitsCheckAndStartAgree walks the boundary of every limit through
// both `peer check` and the start of a node (checkStart, then runNode in
// memory, whose TUN refuses what tundev.Open refuses): a mesh that check
// accepts comes up; one it refuses is refused by the start too, with exit
// status 2 and FILE:LINE, before any device is opened.
func TestLimitsCheckAndStartAgree(t *testing.T) {
	v4 := "10.10.0.1/24"
	v6 := "[10.10.0.1/24,fd10::1/64]"
	for _, tc := range []struct {
		name  string
		head  string   // mesh file lines before peers:
		addr  string   // alpha's address ("" is v4)
		ep    string   // alpha's endpoint ("" is 192.0.2.1:51820)
		flags []string // flags given to both (-iface, -listen)
		start []string // flags the start has and check has not
		want  string   // "" when accepted, else in the error
		line  int      // the line named, 0 for a flag's problem
	}{
		{name: "mtu min-1", head: fmt.Sprintf("interface:\n  mtu: %d\n", tundev.MinMTU-1), want: "below the minimum", line: 2},
		{name: "mtu min", head: fmt.Sprintf("interface:\n  mtu: %d\n", tundev.MinMTU)},
		{name: "mtu 1000 ipv4", head: "interface:\n  mtu: 1000\n"},
		{name: "mtu max", head: fmt.Sprintf("interface:\n  mtu: %d\n", tundev.MaxMTU)},
		{name: "mtu max+1", head: fmt.Sprintf("interface:\n  mtu: %d\n", tundev.MaxMTU+1), want: "above the maximum", line: 2},
		{name: "mtu v6 min-1", head: fmt.Sprintf("interface:\n  mtu: %d\n", tundev.MinMTUIPv6-1), addr: v6, want: "the IPv6 minimum", line: 2},
		{name: "mtu v6 min", head: fmt.Sprintf("interface:\n  mtu: %d\n", tundev.MinMTUIPv6), addr: v6},
		{name: "mtu v6 max", head: fmt.Sprintf("interface:\n  mtu: %d\n", tundev.MaxMTU), addr: v6},
		{name: "mtu v6 max+1", head: fmt.Sprintf("interface:\n  mtu: %d\n", tundev.MaxMTU+1), addr: v6, want: "above the maximum", line: 2},

		{name: "name 15", head: "interface:\n  name: abcdefghijklmno\n"},
		{name: "name 16", head: "interface:\n  name: abcdefghijklmnop\n", want: "the limit is 15", line: 2},
		{name: "name slash", head: "interface:\n  name: peer/0\n", want: "has the character '/'", line: 2},
		{name: "name colon", head: "interface:\n  name: \"peer:0\"\n", want: "has the character ':'", line: 2},
		{name: "name dash", head: "interface:\n  name: -peer0\n", want: "starts with '-'", line: 2},
		{name: "name dotdot", head: "interface:\n  name: ..\n", want: "not allowed", line: 2},
		{name: "-iface 15", flags: []string{"-iface", "abcdefghijklmno"}},
		{name: "-iface 16", flags: []string{"-iface", "abcdefghijklmnop"}, want: "-iface: interface name"},
		{name: "-iface dash", flags: []string{"-iface", "-x"}, want: "starts with '-'"},

		{name: "endpoint port 0", ep: "192.0.2.1:0", want: "port \"0\"", line: 5},
		{name: "endpoint port 1", ep: "192.0.2.1:1"},
		{name: "endpoint port 65535", ep: "192.0.2.1:65535"},
		{name: "endpoint port 65536", ep: "192.0.2.1:65536", want: "port \"65536\"", line: 5},
		{name: "-listen 0", flags: []string{"-listen", "0"}},
		{name: "-listen 1", flags: []string{"-listen", "1"}},
		{name: "-listen 65535", flags: []string{"-listen", "65535"}},
		{name: "-listen 65536", flags: []string{"-listen", "65536"}, want: "-listen: port 65536 is out of range"},
		{name: "-listen -1", flags: []string{"-listen", "-1"}, want: "-listen: port -1 is out of range"},

		{name: "driver auto", head: "interface:\n  driver: auto\n"},
		{name: "driver water", head: "interface:\n  driver: water\n"},
		{name: "driver offload", head: "interface:\n  driver: offload\n"},
		{name: "driver memory", head: "interface:\n  driver: memory\n", want: `unknown driver "memory"`, line: 2},
		{name: "driver tap", head: "interface:\n  driver: tap\n", want: `unknown driver "tap"`, line: 2},
		{name: "-driver water", start: []string{"-driver", "water"}},
		{name: "-driver tap", start: []string{"-driver", "tap"}, want: `-driver: unknown driver "tap"`},

		{name: "capture max_size -1", head: "capture:\n  pcap: PCAP\n  max_size: -1\n", want: "negative maximum file size", line: 3},
		{name: "capture max_size 0", head: "capture:\n  pcap: PCAP\n  max_size: 0\n"},
		{name: "capture max_files -1", head: "capture:\n  pcap: PCAP\n  max_files: -1\n", want: "negative maximum file count", line: 3},
		{name: "capture rotation", head: "capture:\n  pcap: PCAP\n  outer: true\n  max_size: 100000\n  max_files: 2\n"},
		{name: "capture outer without pcap", head: "capture:\n  outer: true\n  max_size: 100000\n"},
		{name: "capture keys", head: "capture:\n  keys: true\n", want: "capture.keys is not allowed", line: 2},
		{name: "-pcap-max-size -1", head: "capture:\n  pcap: PCAP\n", start: []string{"-pcap-max-size", "-1"}, want: "negative maximum file size"},
		{name: "-pcap-outer without pcap", start: []string{"-pcap-outer"}, want: "need -pcap FILE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newTestMesh(t, "alpha", "beta")
			head := strings.ReplaceAll(tc.head, "PCAP", filepath.Join(m.dir, "c.pcapng"))
			addr, ep := tc.addr, tc.ep
			if addr == "" {
				addr = v4
			}
			if ep == "" {
				ep = "192.0.2.1:51820"
			}
			m.write(t, head, "alpha "+addr+" endpoint="+ep, "beta 10.10.0.2/24")
			args := append([]string{"check", "-config", m.path(), "-key", m.keyFile("alpha")}, tc.flags...)
			code, _, errOut := runCmd(t, "", args...)
			where := regexp.QuoteMeta(m.path()) + ":" + fmt.Sprint(tc.line) + ": "
			if tc.line == 0 {
				where = ""
			}
			if (tc.want == "" || len(tc.start) > 0) && code != 0 {
				// A flag only the start has cannot make check refuse.
				t.Fatalf("peer check: exit %d, %s", code, errOut)
			}
			if tc.want != "" && len(tc.start) == 0 &&
				(code != 2 || !regexp.MustCompile(where+".*"+regexp.QuoteMeta(tc.want)).MatchString(errOut)) {
				t.Errorf("peer check: exit %d, %q; want 2 and %s%s", code, errOut, where, tc.want)
			}

			var refused error
			n := startNode(t, m.path(), m.keyFile("alpha"), nodeOpts{args: append(append([]string{}, tc.flags...), tc.start...), refused: &refused})
			if tc.want == "" {
				if n == nil {
					t.Fatalf("peer check accepts it, the start refused it: %v", refused)
				}
				if n.tun == nil {
					t.Fatal("node up without its TUN")
				}
				return
			}
			if n != nil {
				t.Fatalf("the start brought up what it should refuse (%s)", tc.want)
			}
			var ue usageError
			if !errors.As(refused, &ue) {
				t.Errorf("start refused with %T %v, not a usage error (exit 2)", refused, refused)
			}
			if !regexp.MustCompile("^" + where + ".*" + regexp.QuoteMeta(tc.want)).MatchString(refused.Error()) {
				t.Errorf("start: %q, want %s%s", refused, where, tc.want)
			}
		})
	}
}
