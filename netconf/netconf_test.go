package netconf

import (
	"context"
	"errors"
	"flag"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// examplePlan has v4 and v6 addresses, a route inside the connected
// network (kept), a route with host bits (masked), a duplicate (dropped),
// and an IPv6 route.
func examplePlan(os, iface string) Plan {
	return Plan{
		OS:        os,
		Iface:     iface,
		MTU:       1420,
		Addresses: pfx("10.10.0.1/24", "fd10::1/64"),
		Routes: pfx("10.10.0.2/32", "10.20.1.9/24", "fd00:20:1::/64", "10.10.0.2/32",
			"192.0.2.0/24", "fd10::2/128"),
	}
}

// v4OnlyPlan has only IPv4 addresses but still an IPv6 route: it must be
// generated anyway.
func v4OnlyPlan(os, iface string) Plan {
	return Plan{OS: os, Iface: iface, MTU: 1420, Addresses: pfx("10.10.0.3/24"), Routes: pfx("10.10.0.1/32", "fd00:20:1::/64")}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s mismatch\n--- got\n%s--- want\n%s", path, got, want)
	}
}

func TestGolden(t *testing.T) {
	tests := []struct {
		name string
		plan Plan
	}{
		{"linux", examplePlan(Linux, "peer0")},
		{"darwin", examplePlan(Darwin, "utun3")},
		{"linux_v4only", v4OnlyPlan(Linux, "peer0")},
		{"darwin_v4only", v4OnlyPlan(Darwin, "utun3")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { goldenScripts(t, tc.name, tc.plan) })
	}
}

// goldenScripts compares the up and down scripts of p with the goldens
// NAME_up and NAME_down.
func goldenScripts(t *testing.T, name string, p Plan) {
	t.Helper()
	up, err := p.UpScript()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, name+"_up", up)
	down, err := p.DownScript()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, name+"_down", down)
}

func TestCommands(t *testing.T) {
	p := examplePlan(Linux, "peer0")
	wantLink := [][]string{
		{"ip", "link", "set", "dev", "peer0", "mtu", "1420"},
		{"ip", "addr", "replace", "10.10.0.1/24", "dev", "peer0"},
		{"ip", "-6", "addr", "replace", "fd10::1/64", "dev", "peer0"},
		{"ip", "link", "set", "dev", "peer0", "up"},
	}
	if got := p.LinkUp(); !slices.EqualFunc(got, wantLink, slices.Equal) {
		t.Errorf("LinkUp = %q\nwant %q", got, wantLink)
	}
	wantUp := [][]string{
		{"ip", "route", "replace", "10.10.0.2/32", "dev", "peer0"},
		{"ip", "route", "replace", "10.20.1.0/24", "dev", "peer0"},
		{"ip", "-6", "route", "replace", "fd00:20:1::/64", "dev", "peer0"},
		{"ip", "route", "replace", "192.0.2.0/24", "dev", "peer0"},
		{"ip", "-6", "route", "replace", "fd10::2/128", "dev", "peer0"},
	}
	if got := p.RoutesUp(); !slices.EqualFunc(got, wantUp, slices.Equal) {
		t.Errorf("RoutesUp = %q\nwant %q", got, wantUp)
	}
	down := p.RoutesDown()
	if len(down) != len(wantUp) {
		t.Fatalf("RoutesDown has %d commands, want %d", len(down), len(wantUp))
	}
	for i, c := range down {
		want := slices.Clone(wantUp[i])
		want[slices.Index(want, "replace")] = "del"
		if !slices.Equal(c, want) {
			t.Errorf("RoutesDown[%d] = %q, want %q", i, c, want)
		}
	}

	d := examplePlan(Darwin, "utun3")
	wantDarwin := [][]string{
		{"ifconfig", "utun3", "mtu", "1420"},
		{"ifconfig", "utun3", "inet", "10.10.0.1/24", "10.10.0.1", "alias"},
		{"ifconfig", "utun3", "inet6", "fd10::1/64", "alias"},
		{"ifconfig", "utun3", "up"},
	}
	if got := d.LinkUp(); !slices.EqualFunc(got, wantDarwin, slices.Equal) {
		t.Errorf("darwin LinkUp = %q\nwant %q", got, wantDarwin)
	}
	if got, want := d.RoutesUp()[2], []string{"route", "-q", "-n", "add", "-inet6", "fd00:20:1::/64", "-interface", "utun3"}; !slices.Equal(got, want) {
		t.Errorf("darwin RoutesUp[2] = %q, want %q", got, want)
	}
	if got, want := d.RoutesDown()[1], []string{"route", "-q", "-n", "delete", "-inet", "10.20.1.0/24", "-interface", "utun3"}; !slices.Equal(got, want) {
		t.Errorf("darwin RoutesDown[1] = %q, want %q", got, want)
	}

	// MTU 0 leaves the MTU alone.
	p.MTU = 0
	if got := p.LinkUp(); slices.ContainsFunc(got, func(c []string) bool { return slices.Contains(c, "mtu") }) {
		t.Errorf("LinkUp with MTU 0 sets the MTU: %q", got)
	}
	// Unknown OS: no commands rather than wrong ones.
	p.OS = "plan9"
	if p.LinkUp() != nil || p.RoutesUp() != nil || p.RoutesDown() != nil {
		t.Error("unsupported OS produced commands")
	}
}

func TestValidate(t *testing.T) {
	ok := examplePlan(Linux, "peer0")
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid plan: %v", err)
	}
	tests := []struct {
		name   string
		modify func(*Plan)
		want   string
	}{
		{"os", func(p *Plan) { p.OS = "windows" }, "unsupported OS"},
		{"empty iface", func(p *Plan) { p.Iface = "" }, "interface name is empty"},
		{"long iface", func(p *Plan) { p.Iface = "abcdefghijklmnop" }, "is 16 characters long; the limit is 15"},
		{"dash iface", func(p *Plan) { p.Iface = "-x" }, "starts with '-'"},
		{"dot iface", func(p *Plan) { p.Iface = ".." }, "is not allowed"},
		{"slash iface", func(p *Plan) { p.Iface = "a/b" }, "has the character '/'"},
		{"space iface", func(p *Plan) { p.Iface = "a b" }, "has the character ' '"},
		{"quote iface", func(p *Plan) { p.Iface = "a'b" }, "has the character"},
		{"mtu low", func(p *Plan) { p.MTU = MinMTU - 1 }, "out of range"},
		{"mtu high", func(p *Plan) { p.MTU = 65536 }, "out of range"},
		{"mtu negative", func(p *Plan) { p.MTU = -1 }, "out of range"},
		{"mtu v6", func(p *Plan) { p.MTU = 1279 }, "IPv6 minimum"},
		{"bad address", func(p *Plan) { p.Addresses = append(p.Addresses, netip.Prefix{}) }, "invalid address"},
		{"bad route", func(p *Plan) { p.Routes = append(p.Routes, netip.PrefixFrom(netip.MustParseAddr("10.0.0.1"), 33)) }, "invalid route"},
		{"mapped route", func(p *Plan) { p.Routes = pfx("::ffff:10.0.0.0/104") }, "IPv4-mapped"},
		{"mapped address", func(p *Plan) { p.Addresses = pfx("::ffff:10.0.0.1/104") }, "IPv4-mapped"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := examplePlan(Linux, "peer0")
			tc.modify(&p)
			err := p.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want error containing %q", err, tc.want)
			}
			if _, err := p.UpScript(); err == nil {
				t.Error("UpScript accepted an invalid plan")
			}
			if _, err := p.DownScript(); err == nil {
				t.Error("DownScript accepted an invalid plan")
			}
			// Generators never panic and never emit invalid prefixes.
			for _, c := range slices.Concat(p.LinkUp(), p.RoutesUp(), p.RoutesDown()) {
				for _, a := range c {
					if strings.Contains(a, "invalid") || strings.Contains(a, "::ffff:") {
						t.Errorf("command with bad prefix: %q", c)
					}
				}
			}
		})
	}
	// An MTU below 1280 is fine without IPv6.
	v4 := Plan{OS: Linux, Iface: "peer0", MTU: 576, Addresses: pfx("10.0.0.1/24"), Routes: pfx("10.0.1.0/24")}
	if err := v4.Validate(); err != nil {
		t.Errorf("IPv4-only plan with MTU 576: %v", err)
	}
}

func TestQuote(t *testing.T) {
	tests := []struct {
		cmd  []string
		want string
	}{
		{[]string{"ip", "route", "replace", "10.0.0.0/8", "dev", "peer0"}, "ip route replace 10.0.0.0/8 dev peer0"},
		{[]string{"ip", "-6", "route", "del", "fd00::/8"}, "ip -6 route del fd00::/8"},
		{[]string{"echo", ""}, "echo ''"},
		{[]string{"echo", "a b"}, "echo 'a b'"},
		{[]string{"echo", "it's"}, `echo 'it'\''s'`},
		{[]string{"echo", "$HOME", "`x`", "a;b", "a|b", "*", "~", "a\nb", "é"}, "echo '$HOME' '`x`' 'a;b' 'a|b' '*' '~' 'a\nb' 'é'"},
		{[]string{"echo", "k=v", "user@host:1,2%x+y"}, "echo k=v user@host:1,2%x+y"},
		{[]string{"A=b", "c"}, "'A=b' c"}, // not an assignment
	}
	for _, tc := range tests {
		if got := Quote(tc.cmd); got != tc.want {
			t.Errorf("Quote(%q) = %s, want %s", tc.cmd, got, tc.want)
		}
	}
}

// TestScriptQuotingRoundTrip runs a rendered script with sh and checks that
// every argument arrives exactly as given.
func TestScriptQuotingRoundTrip(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	args := []string{"plain", "", "a b", "it's", `"dq"`, "$HOME", "`id`", "$(id)", "a;b", "a|b&c", "*", "?", "~", "a\nb\tc", "\\", "é", "-n", "#x", "!x", "{a,b}", "[a]"}
	script := Script("round trip\nline two", [][]string{append([]string{"printf", `[%s]\n`}, args...)})
	out, err := exec.Command(sh, "-c", script).Output()
	if err != nil {
		t.Fatalf("sh: %v\n%s", err, script)
	}
	var want strings.Builder
	for _, a := range args {
		want.WriteString("[" + a + "]\n")
	}
	if string(out) != want.String() {
		t.Errorf("sh printed\n%s\nwant\n%s\nscript:\n%s", out, want.String(), script)
	}
}

func TestScriptHeaderAndKinds(t *testing.T) {
	got := Script("peer: interface peer0\r\nsecond line\n\nrm -rf / # not a command", [][]string{
		{"ip", "route", "del", "10.0.0.0/8", "dev", "peer0"},
		{"ip", "netns", "exec", "ns1", "ip", "-6", "route", "delete", "fd00::/8", "dev", "d0"},
		{"ip", "-n", "ns1", "addr", "flush", "dev", "d0"},
		{"ip", "route", "replace", "10.0.0.0/8", "dev", "peer0"},
		{"route", "-q", "-n", "add", "-inet", "10.0.0.0/8", "-interface", "utun3"},
		{"route", "-q", "-n", "delete", "-inet", "10.0.0.0/8", "-interface", "utun3"},
		{"ifconfig", "utun3", "inet", "10.0.0.1/8", "10.0.0.1", "-alias"},
		{"ifconfig", "utun3", "up"},
		{},
		{"ip"},
		{"route"},
	})
	want := `#!/bin/sh
# peer: interface peer0
# second line
#
# rm -rf / # not a command
set -e
ip route del 10.0.0.0/8 dev peer0 || true
ip netns exec ns1 ip -6 route delete fd00::/8 dev d0 || true
ip -n ns1 addr flush dev d0 || true
ip route replace 10.0.0.0/8 dev peer0
route -q -n change -inet 10.0.0.0/8 -interface utun3 2>/dev/null || route -q -n add -inet 10.0.0.0/8 -interface utun3
route -q -n delete -inet 10.0.0.0/8 -interface utun3 || true
ifconfig utun3 inet 10.0.0.1/8 10.0.0.1 -alias || true
ifconfig utun3 up
ip
route
`
	if got != want {
		t.Errorf("Script =\n%s\nwant\n%s", got, want)
	}
	if got := Script("", nil); got != "#!/bin/sh\nset -e\n" {
		t.Errorf("empty Script = %q", got)
	}
}

// fakeBin writes executable sh scripts named by the map keys into a new
// directory and returns it.
func fakeBin(t *testing.T, scripts map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range scripts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestScriptIdempotentWithFakes runs the up and down scripts twice each
// against fake ip/route/ifconfig commands that behave like the real ones
// (adding an existing darwin route fails, deleting a missing route fails),
// and checks the scripts succeed and end in the right state, and that a real
// failure still stops the script.
func TestScriptIdempotentWithFakes(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	// Routes are files in $STATE named by the prefix with / replaced.
	fakes := map[string]string{
		"ip": `
[ -n "$FAIL_REPLACE" ] && [ "$3" = replace ] && { echo "fake: RTNETLINK answers: boom" >&2; exit 2; }
obj=$1 verb=$2 p=$3
[ "$1" = -6 ] && { obj=$2 verb=$3 p=$4; }
[ "$obj" = route ] || exit 0
f="$STATE/$(echo "$p" | tr / _)"
case $verb in
replace) touch "$f" ;;
del) [ -e "$f" ] || { echo "RTNETLINK answers: No such process" >&2; exit 2; }; rm "$f" ;;
*) exit 9 ;;
esac
`,
		"route": `
verb=$3 p=$5
f="$STATE/$(echo "$p" | tr / _)"
[ -n "$FAIL_ADD" ] && [ "$verb" = add ] && { echo "fake: route: add failed" >&2; exit 1; }
case $verb in
add) [ -e "$f" ] && { echo "route: File exists" >&2; exit 1; }; touch "$f" ;;
change) [ -e "$f" ] || { echo "route: not in table" >&2; exit 1; } ;;
delete) [ -e "$f" ] || { echo "route: not in table" >&2; exit 1; }; rm "$f" ;;
*) exit 9 ;;
esac
`,
		"ifconfig": "exit 0\n",
	}
	bin := fakeBin(t, fakes)
	for _, osName := range []string{Linux, Darwin} {
		t.Run(osName, func(t *testing.T) {
			state := t.TempDir()
			run := func(script string, extraEnv ...string) error {
				cmd := exec.Command(sh, "-c", script)
				cmd.Env = append(os.Environ(), append([]string{"PATH=" + bin + ":/usr/bin:/bin", "STATE=" + state}, extraEnv...)...)
				out, err := cmd.CombinedOutput()
				if err != nil {
					return errors.New(err.Error() + ": " + string(out))
				}
				return nil
			}
			p := examplePlan(osName, "tun9")
			up, _ := p.UpScript()
			down, _ := p.DownScript()
			wantRoutes := len(p.RoutesUp())
			count := func() int {
				ents, err := os.ReadDir(state)
				if err != nil {
					t.Fatal(err)
				}
				return len(ents)
			}
			for i := range 2 {
				if err := run(up); err != nil {
					t.Fatalf("up run %d: %v", i+1, err)
				}
				if n := count(); n != wantRoutes {
					t.Fatalf("after up run %d: %d routes, want %d", i+1, n, wantRoutes)
				}
			}
			for i := range 2 {
				if err := run(down); err != nil {
					t.Fatalf("down run %d: %v", i+1, err)
				}
				if n := count(); n != 0 {
					t.Fatalf("after down run %d: %d routes left", i+1, n)
				}
			}
			// A genuine failure still stops the up script (set -e).
			if err := run(up, "FAIL_REPLACE=1", "FAIL_ADD=1"); err == nil || !strings.Contains(err.Error(), "fake:") {
				t.Fatalf("up script with failing command: err = %v, want the fake's failure", err)
			}
			if n := count(); n != 0 {
				t.Fatalf("failing up script went on and installed %d routes", n)
			}
		})
	}
}

func TestInNamespace(t *testing.T) {
	cmds := [][]string{{"ip", "link", "set", "dev", "d0", "up"}, {"true"}}
	got := InNamespace("ns1", cmds)
	want := [][]string{{"ip", "netns", "exec", "ns1", "ip", "link", "set", "dev", "d0", "up"}, {"ip", "netns", "exec", "ns1", "true"}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("InNamespace = %q, want %q", got, want)
	}
	if cmds[0][0] != "ip" || len(cmds[0]) != 6 {
		t.Error("InNamespace modified its input")
	}
	same := InNamespace("", cmds)
	if !slices.EqualFunc(same, cmds, slices.Equal) {
		t.Errorf("InNamespace(\"\") = %q", same)
	}
	same[0][0] = "changed"
	if cmds[0][0] != "ip" {
		t.Error("InNamespace(\"\") shares the input's slices")
	}
}

func TestRun(t *testing.T) {
	bin := fakeBin(t, map[string]string{
		"ok":   "exit 0\n",
		"fail": "echo \"bad thing: $1\" >&2; exit 3\n",
		"loud": "head -c 100000 /dev/zero | tr '\\0' x >&2; exit 1\n",
		"log":  "echo \"$@\" >> \"$LOG\"\n",
	})
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	logFile := filepath.Join(t.TempDir(), "log")
	t.Setenv("LOG", logFile)
	ctx := context.Background()

	if err := Run(ctx, [][]string{{"ok"}, {"log", "a"}, {"log", "b c"}}); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if b, _ := os.ReadFile(logFile); string(b) != "a\nb c\n" {
		t.Fatalf("commands ran as %q", b)
	}

	err := Run(ctx, [][]string{{"log", "1"}, {"fail", "x y"}, {"log", "never"}})
	var ce *CommandError
	if !errors.As(err, &ce) {
		t.Fatalf("Run error %v is not a *CommandError", err)
	}
	if !slices.Equal(ce.Args, []string{"fail", "x y"}) || ce.Stderr != "bad thing: x y" {
		t.Errorf("CommandError = %+v", ce)
	}
	if msg := err.Error(); !strings.Contains(msg, "fail 'x y'") || !strings.Contains(msg, "bad thing: x y") || !strings.Contains(msg, "exit status 3") {
		t.Errorf("error message %q lacks the command, status or stderr", msg)
	}
	if b, _ := os.ReadFile(logFile); strings.Contains(string(b), "never") {
		t.Error("Run continued after a failure")
	}

	if err := Run(ctx, [][]string{{"loud"}}); !errors.As(err, &ce) || len(ce.Stderr) > maxStderr+3 || !strings.HasSuffix(ce.Stderr, "...") {
		t.Errorf("huge stderr not capped: %d bytes", len(ce.Stderr))
	}
	if err := Run(ctx, [][]string{{"no-such-command-netconf"}}); !errors.As(err, &ce) || !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("missing command: %v", err)
	}
	for _, bad := range [][]string{nil, {}, {""}} {
		if err := Run(ctx, [][]string{bad}); err == nil || !strings.Contains(err.Error(), "empty command") {
			t.Errorf("Run(%q) = %v, want empty command error", bad, err)
		}
	}
	if err := Run(ctx, nil); err != nil {
		t.Errorf("Run(nil) = %v", err)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := Run(cctx, [][]string{{"log", "canceled"}}); !errors.Is(err, context.Canceled) {
		t.Errorf("Run with canceled context = %v", err)
	}
	if b, _ := os.ReadFile(logFile); strings.Contains(string(b), "canceled") {
		t.Error("Run started a command after the context was canceled")
	}
}

func TestRunTolerant(t *testing.T) {
	bin := fakeBin(t, map[string]string{
		"fail": "echo \"failed $1\" >&2; exit 1\n",
		"log":  "echo \"$@\" >> \"$LOG\"\n",
	})
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	logFile := filepath.Join(t.TempDir(), "log")
	t.Setenv("LOG", logFile)

	err := RunTolerant(context.Background(), [][]string{{"fail", "1"}, {"log", "a"}, {"fail", "2"}, {"log", "b"}})
	if err == nil {
		t.Fatal("RunTolerant hid the failures")
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok || len(joined.Unwrap()) != 2 {
		t.Fatalf("RunTolerant = %v, want 2 joined errors", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "failed 1") || !strings.Contains(msg, "failed 2") {
		t.Errorf("error %q lacks a failure", msg)
	}
	if b, _ := os.ReadFile(logFile); string(b) != "a\nb\n" {
		t.Errorf("RunTolerant did not run every command: %q", b)
	}
	if err := RunTolerant(context.Background(), [][]string{{"log", "c"}}); err != nil {
		t.Errorf("RunTolerant success = %v", err)
	}

	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = RunTolerant(cctx, [][]string{{"log", "x"}, {"log", "y"}})
	if !errors.Is(err, context.Canceled) || len(err.(interface{ Unwrap() []error }).Unwrap()) != 1 {
		t.Errorf("RunTolerant with canceled context = %v, want one context error", err)
	}
}

func TestScriptPolicyKinds(t *testing.T) {
	for _, tc := range []struct {
		cmd  []string
		want string
	}{
		{[]string{"nft", "delete", "table", "inet", "peer-p0"}, "nft delete table inet peer-p0 || true"},
		{[]string{"ip", "netns", "exec", "ns1", "nft", "delete", "table", "inet", "peer-p0"}, "ip netns exec ns1 nft delete table inet peer-p0 || true"},
		// A script that deletes and re-creates is not a teardown.
		{[]string{"nft", "add table inet peer-p0\ndelete table inet peer-p0\ntable inet peer-p0 {\n}"},
			"nft 'add table inet peer-p0\ndelete table inet peer-p0\ntable inet peer-p0 {\n}'"},
		{[]string{"nft", "list", "ruleset"}, "nft list ruleset"},
		{[]string{"ip", "-6", "rule", "add", "table", "main", "suppress_prefixlength", "0"},
			"ip -6 rule del table main suppress_prefixlength 0 2>/dev/null || true\nip -6 rule add table main suppress_prefixlength 0"},
		{[]string{"ip", "netns", "exec", "ns1", "ip", "-4", "rule", "add", "not", "fwmark", "51820", "table", "51820"},
			"ip netns exec ns1 ip -4 rule del not fwmark 51820 table 51820 2>/dev/null || true\nip netns exec ns1 ip -4 rule add not fwmark 51820 table 51820"},
		{[]string{"ip", "-4", "rule", "del", "not", "fwmark", "51820", "table", "51820"}, "ip -4 rule del not fwmark 51820 table 51820 || true"},
		// `ip route add` is not a rule (and this package uses replace).
		{[]string{"ip", "route", "add", "10.0.0.0/8", "dev", "p0"}, "ip route add 10.0.0.0/8 dev p0"},
		{[]string{"sysctl", "-q", "-w", "net.ipv4.ip_forward=1"}, "sysctl -q -w net.ipv4.ip_forward=1"},
		{[]string{"sh", "-c", "route -q -n delete -inet -host 192.0.2.1"}, "sh -c 'route -q -n delete -inet -host 192.0.2.1'"},
	} {
		want := "#!/bin/sh\nset -e\n" + tc.want + "\n"
		if got := Script("", [][]string{tc.cmd}); got != want {
			t.Errorf("Script(%q) =\n%s\nwant\n%s", tc.cmd, got, want)
		}
	}
}
