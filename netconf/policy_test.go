package netconf

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// exitClientPlan is examplePlan using an exit, with endpoints of both
// families, one twice and one on loopback (which needs no host route).
func exitClientPlan(os, iface string) Plan {
	p := examplePlan(os, iface)
	p.UseExit = true
	p.Endpoints = addrs("198.51.100.1", "2001:db8::1", "198.51.100.1", "127.0.0.1")
	p.SysctlsBefore = map[string]string{"net.ipv4.conf.all.src_valid_mark": "0"}
	return p
}

// exitPlan is examplePlan serving as an exit, whose IPv6 forwarding was
// on already: only IPv4 forwarding is restored.
func exitPlan(os, iface string) Plan {
	p := examplePlan(os, iface)
	p.Exit, p.ClampMSS = true, true
	p.SysctlsBefore = map[string]string{"net.ipv4.ip_forward": "0\n", "net.ipv6.conf.all.forwarding": "1"}
	return p
}

// subnetRouterPlan forwards between the mesh and its LAN: it clamps MSS
// and needs nothing else.
func subnetRouterPlan(os, iface string) Plan {
	p := examplePlan(os, iface)
	p.ClampMSS = true
	return p
}

func TestPolicyGolden(t *testing.T) {
	v4Client := exitClientPlan(Linux, "peer0")
	v4Client.Addresses = pfx("10.10.0.3/24")
	mtu0 := subnetRouterPlan(Linux, "peer0")
	mtu0.MTU = 0
	for _, tc := range []struct {
		name string
		plan Plan
	}{
		{"linux_exitclient", exitClientPlan(Linux, "peer0")},
		{"linux_exitclient_v4only", v4Client},
		{"linux_exit", exitPlan(Linux, "peer0")},
		{"linux_subnetrouter", subnetRouterPlan(Linux, "peer0")},
		{"linux_clamp_mtu0", mtu0},
		{"darwin_exitclient", exitClientPlan(Darwin, "utun3")},
	} {
		t.Run(tc.name, func(t *testing.T) { goldenScripts(t, tc.name, tc.plan) })
	}
}

func TestPolicyCommands(t *testing.T) {
	none := examplePlan(Linux, "peer0")
	if none.PolicyUp() != nil || none.PolicyDown() != nil || none.Sysctls() != nil {
		t.Error("a plan without exit or clamping has policy")
	}
	if got, want := none.NetworkUp(), none.RoutesUp(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("NetworkUp without policy = %q, want RoutesUp", got)
	}
	darwinClamp := subnetRouterPlan(Darwin, "utun3")
	if darwinClamp.PolicyUp() != nil || darwinClamp.PolicyDown() != nil {
		t.Error("darwin clamps MSS")
	}
	for _, p := range []Plan{exitClientPlan(Linux, "peer0"), exitPlan(Linux, "peer0"), exitClientPlan(Darwin, "utun3")} {
		if got, want := p.NetworkUp(), slices.Concat(p.RoutesUp(), p.PolicyUp()); !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("NetworkUp = %q, want RoutesUp, PolicyUp", got)
		}
		if got, want := p.NetworkDown(), slices.Concat(p.PolicyDown(), p.RoutesDown()); !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("NetworkDown = %q, want PolicyDown, RoutesDown", got)
		}
	}
	// Linux order: sysctls, nft, table routes, rules last.
	p := exitClientPlan(Linux, "peer0")
	p.Exit = true
	var kinds []string
	for _, c := range p.PolicyUp() {
		k := c[0]
		if c[0] == "ip" {
			k = c[2]
		}
		if len(kinds) == 0 || kinds[len(kinds)-1] != k {
			kinds = append(kinds, k)
		}
	}
	if want := []string{"sysctl", "nft", "route", "rule"}; !slices.Equal(kinds, want) {
		t.Errorf("PolicyUp runs %v, want %v", kinds, want)
	}
	if got := p.Sysctls(); !slices.Equal(got, []Sysctl{{"net.ipv4.ip_forward", "1"}, {"net.ipv6.conf.all.forwarding", "1"}, {"net.ipv4.conf.all.src_valid_mark", "1"}}) {
		t.Errorf("Sysctls = %v", got)
	}
	for _, s := range p.Sysctls() {
		if !slices.Contains(ManagedSysctls, s.Key) {
			t.Errorf("Sysctls sets %s, which is not in ManagedSysctls", s.Key)
		}
	}
	if exitClientPlan(Darwin, "utun3").Sysctls() != nil {
		t.Error("darwin sets sysctls")
	}
}

func TestSysctlRestore(t *testing.T) {
	const fwd, fwd6, mark = "net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding", "net.ipv4.conf.all.src_valid_mark"
	for _, tc := range []struct {
		name          string
		useExit, exit bool
		before        map[string]string
		want          []string // KEY=VALUE restored, in order
	}{
		{"nothing known", true, true, nil, nil},
		{"all off before", true, true, map[string]string{fwd: "0", fwd6: "0", mark: "0"}, []string{mark + "=0", fwd6 + "=0", fwd + "=0"}},
		{"same as set", true, true, map[string]string{fwd: "1", fwd6: "1", mark: "1"}, nil},
		{"missing key", false, true, map[string]string{fwd: "0"}, []string{fwd + "=0"}},
		{"as read, with newline", false, true, map[string]string{fwd: "0\n", fwd6: " 1 "}, []string{fwd + "=0"}},
		{"key the plan does not set", true, false, map[string]string{fwd: "0", mark: "0"}, []string{mark + "=0"}},
		{"clamping sets nothing", false, false, map[string]string{fwd: "0", fwd6: "0", mark: "0"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Plan{OS: Linux, Iface: "peer0", UseExit: tc.useExit, Exit: tc.exit, ClampMSS: true, SysctlsBefore: tc.before}
			if err := p.Validate(); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range p.PolicyDown() {
				if c[0] == "sysctl" {
					got = append(got, c[len(c)-1])
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("restores %q, want %q", got, tc.want)
			}
		})
	}
}

func TestValidatePolicy(t *testing.T) {
	for _, tc := range []struct {
		name   string
		plan   Plan
		modify func(*Plan)
		want   string // "" for valid
	}{
		{"linux exit", exitPlan(Linux, "peer0"), func(*Plan) {}, ""},
		{"darwin exit client", exitClientPlan(Darwin, "utun3"), func(*Plan) {}, ""},
		{"darwin clamp", subnetRouterPlan(Darwin, "utun3"), func(*Plan) {}, ""},
		{"darwin exit", exitPlan(Darwin, "utun3"), func(*Plan) {}, "serving as an exit is supported on Linux only"},
		{"zero endpoint", exitClientPlan(Darwin, "utun3"), func(p *Plan) { p.Endpoints = append(p.Endpoints, netip.Addr{}) }, "invalid endpoint"},
		{"zoned endpoint", exitClientPlan(Darwin, "utun3"), func(p *Plan) { p.Endpoints = addrs("fe80::1%en0;reboot") }, "zone"},
		{"mapped endpoint", exitClientPlan(Linux, "peer0"), func(p *Plan) { p.Endpoints = addrs("::ffff:192.0.2.1") }, "IPv4-mapped"},
		{"unspecified endpoint", exitClientPlan(Linux, "peer0"), func(p *Plan) { p.Endpoints = addrs("::") }, "unspecified"},
		{"unmanaged sysctl", exitPlan(Linux, "peer0"), func(p *Plan) { p.SysctlsBefore = map[string]string{"kernel.panic": "1"} }, "not one of ManagedSysctls"},
		{"odd sysctl value", exitPlan(Linux, "peer0"), func(p *Plan) { p.SysctlsBefore = map[string]string{"net.ipv4.ip_forward": "1; reboot"} }, "not an integer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.plan
			tc.modify(&p)
			err := p.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want error containing %q", err, tc.want)
			}
			// Generators skip what Validate rejects.
			for _, c := range slices.Concat(p.PolicyUp(), p.PolicyDown()) {
				if s := strings.Join(c, " "); strings.Contains(s, "reboot") || strings.Contains(s, "invalid") || strings.Contains(s, "::ffff:") {
					t.Errorf("command with a rejected value: %q", c)
				}
			}
		})
	}
}

// TestPolicyScriptIdempotentWithFakes runs the Linux up and down scripts of
// a plan using and serving as an exit twice each against fakes of ip, nft
// and sysctl; the fake ip keeps rules the way the kernel does (add appends
// a copy, del removes one or fails), and the up script must leave exactly
// one copy of each rule, the down script none.
func TestPolicyScriptIdempotentWithFakes(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	bin := fakeBin(t, map[string]string{
		"ip": `
fam=-4
case $1 in -4|-6) fam=$1; shift;; esac
[ "$1" = rule ] || exit 0
verb=$2; shift 2
r="$fam $*"
case $verb in
add) echo "$r" >> "$STATE/rules" ;;
del) grep -qxF -- "$r" "$STATE/rules" 2>/dev/null || { echo "RTNETLINK answers: No such file or directory" >&2; exit 2; }
	awk -v r="$r" '!done && $0 == r {done=1; next} {print}' "$STATE/rules" > "$STATE/rules.new"; mv "$STATE/rules.new" "$STATE/rules" ;;
*) exit 9 ;;
esac
`,
		"nft":    "echo \"$*\" >> \"$STATE/nft\"\n",
		"sysctl": "echo \"$*\" >> \"$STATE/sysctl\"\n",
	})
	state := t.TempDir()
	run := func(script string) {
		t.Helper()
		cmd := exec.Command(sh, "-c", script)
		cmd.Env = append(os.Environ(), "PATH="+bin+":/usr/bin:/bin", "STATE="+state)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %s\n%s", err, out, script)
		}
	}
	rules := func() []string {
		b, _ := os.ReadFile(filepath.Join(state, "rules"))
		return strings.Fields(strings.ReplaceAll(string(b), " ", "_"))
	}
	p := exitClientPlan(Linux, "peer0")
	p.Exit = true
	up, err := p.UpScript()
	if err != nil {
		t.Fatal(err)
	}
	down, _ := p.DownScript()
	want := []string{
		"-4_not_fwmark_51820_table_51820", "-4_table_main_suppress_prefixlength_0",
		"-6_not_fwmark_51820_table_51820", "-6_table_main_suppress_prefixlength_0",
	}
	for i := range 2 {
		run(up)
		if got := rules(); !slices.Equal(got, want) {
			t.Fatalf("after up run %d: rules %q, want %q", i+1, got, want)
		}
	}
	for i := range 2 {
		run(down)
		if got := rules(); len(got) != 0 {
			t.Fatalf("after down run %d: rules %q left", i+1, got)
		}
	}
}

// TestDarwinEndpointRouteWithFakes runs the darwin endpoint commands
// against a fake route(8) that answers `route -n get` the way darwin
// prints it, and checks the host routes go through the default gateway.
func TestDarwinEndpointRouteWithFakes(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	if _, err := exec.LookPath("awk"); err != nil {
		t.Skip("no awk")
	}
	bin := fakeBin(t, map[string]string{
		"route": `
if [ "$1 $2" = "-n get" ]; then
	[ -n "$NO_GW" ] && { printf '   route to: default\ndestination: default\n  interface: ppp0\n'; exit 0; }
	case $3 in
	-inet) gw=192.168.1.1 ;;
	-inet6) gw=fe80::1%en0 ;;
	esac
	printf '   route to: default\ndestination: default\n       mask: default\n    gateway: %s\n  interface: en0\n      flags: <UP,GATEWAY,DONE,STATIC,PRCLONING,GLOBAL>\n' "$gw"
	exit 0
fi
echo "$*" >> "$LOG"
`,
	})
	for _, tc := range []struct {
		name  string
		noGW  bool
		want  string // log of route(8), "" if the command must fail
		wantE string
	}{
		{"gateway", false, "-q -n delete -inet -host 198.51.100.1\n-q -n add -inet -host 198.51.100.1 192.168.1.1\n" +
			"-q -n delete -inet6 -host 2001:db8::1\n-q -n add -inet6 -host 2001:db8::1 fe80::1%en0\n", ""},
		{"no gateway", true, "", "no -inet default gateway for the route to endpoint 198.51.100.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := filepath.Join(t.TempDir(), "log")
			p := Plan{OS: Darwin, Iface: "utun3", UseExit: true, Endpoints: addrs("198.51.100.1", "2001:db8::1")}
			var script [][]string
			for _, c := range p.PolicyUp() {
				if c[0] == "sh" {
					script = append(script, c)
				}
			}
			if len(script) != 2 {
				t.Fatalf("endpoint commands %q", script)
			}
			cmd := exec.Command(sh, "-c", Script("", script))
			cmd.Env = append(os.Environ(), "PATH="+bin+":/usr/bin:/bin", "LOG="+log)
			if tc.noGW {
				cmd.Env = append(cmd.Env, "NO_GW=1")
			}
			out, err := cmd.CombinedOutput()
			if tc.wantE != "" {
				if err == nil || !strings.Contains(string(out), tc.wantE) {
					t.Fatalf("err %v, output %q; want failure with %q", err, out, tc.wantE)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			b, _ := os.ReadFile(log)
			if string(b) != tc.want {
				t.Errorf("route ran\n%s\nwant\n%s", b, tc.want)
			}
		})
	}
}
