package netconf

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestBatchable(t *testing.T) {
	for _, tc := range []struct {
		cmd  []string
		want bool
	}{
		{[]string{"ip", "route", "replace", "10.0.0.0/24", "dev", "p0"}, true},
		{[]string{"ip", "-6", "route", "del", "fd00::/64", "dev", "p0"}, true},
		{[]string{"ip", "netns", "exec", "ns", "ip", "route"}, false},
		{[]string{"ip", "link", "set", "dev", "a b"}, false},
		{[]string{"ip"}, false},
		{[]string{"ip", "-n", "ns1", "route", "replace", "10.0.0.0/24", "dev", "p0"}, false},
		{[]string{"ip", "-6"}, false},
		{[]string{"route", "-q", "-n", "add"}, false},
		// A family the address carries survives the batch line.
		{[]string{"ip", "-4", "route", "replace", "0.0.0.0/0", "dev", "p0", "table", "51820"}, true},
		{[]string{"ip", "-6", "route", "del", "::/0", "dev", "p0", "table", "51820"}, true},
		{[]string{"ip", "-6", "addr", "replace", "fd00::1/64", "dev", "p0"}, true},
		// One no address carries would be lost: ip defaults to IPv4.
		{[]string{"ip", "-6", "rule", "add", "table", "main", "suppress_prefixlength", "0"}, false},
		{[]string{"ip", "-6", "rule", "del", "not", "fwmark", "51820", "table", "51820"}, false},
		{[]string{"ip", "-4", "rule", "add", "not", "fwmark", "51820", "table", "51820"}, false},
		{[]string{"ip", "-6", "route", "replace", "default", "dev", "p0"}, false},
		// An address of the other family: ip would follow the address.
		{[]string{"ip", "-6", "route", "replace", "10.0.0.0/8", "dev", "p0"}, false},
		// No family asked for: nothing to lose.
		{[]string{"ip", "rule", "add", "table", "main", "suppress_prefixlength", "0"}, true},
	} {
		if got := batchable(tc.cmd); got != tc.want {
			t.Errorf("batchable(%q) = %v, want %v", tc.cmd, got, tc.want)
		}
	}
}

// TestBatchKeepsFamily checks every batch line against the command it came
// from: once -4/-6 is dropped, the family ip infers from the line must be
// the one the command asked for.
func TestBatchKeepsFamily(t *testing.T) {
	p := Plan{OS: Linux, Iface: "p0", MTU: 1420, Addresses: pfx("10.10.0.1/24", "fd10::1/64"),
		Routes: pfx("10.20.0.0/16", "fd20::/64"), UseExit: true, Exit: true, ClampMSS: true}
	for _, c := range slices.Concat(p.LinkUp(), p.NetworkUp(), p.NetworkDown()) {
		if !batchable(c) {
			continue
		}
		line := batchLine(c)
		if strings.HasPrefix(line, "-") || strings.Contains(" "+line+" ", " -4 ") || strings.Contains(" "+line+" ", " -6 ") {
			t.Errorf("batch line %q carries an option", line)
		}
		want := ""
		if slices.Contains(c, "-6") {
			want = "-6"
		} else if slices.Contains(c, "-4") {
			want = "-4"
		}
		if got := addressFamily(strings.Fields(line)); want != "" && got != want {
			t.Errorf("%q batched as %q: family %q, want %q", c, line, got, want)
		}
	}
}

// TestRunKeepsRuleFamily runs a using-exit plan against the fake ip: the
// routes go in a batch, and each rule runs on its own with its family.
func TestRunKeepsRuleFamily(t *testing.T) {
	log := fakeIP(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := Plan{OS: Linux, Iface: "p0", UseExit: true}
	var cmds [][]string
	for _, c := range p.PolicyUp() {
		if c[0] == "ip" {
			cmds = append(cmds, c)
		}
	}
	if err := Run(ctx, cmds); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(log)
	want := `ARGS -batch -
LINE route replace 0.0.0.0/0 dev p0 table 51820
LINE route replace ::/0 dev p0 table 51820
ARGS -4 rule add not fwmark 51820 table 51820
ARGS -4 rule add table main suppress_prefixlength 0
ARGS -6 rule add not fwmark 51820 table 51820
ARGS -6 rule add table main suppress_prefixlength 0
`
	if string(b) != want {
		t.Fatalf("ip saw:\n%s\nwant:\n%s", b, want)
	}
}

// fakeIP puts an `ip` on PATH that logs its arguments and batch input, and
// fails on any line containing "bad", the way iproute2 reports it.
func fakeIP(t *testing.T) (logPath string) {
	t.Helper()
	dir := t.TempDir()
	logPath = filepath.Join(dir, "log")
	script := `#!/bin/sh
echo "ARGS $*" >> ` + logPath + `
if [ "$1" = "-batch" ] || [ "$2" = "-batch" ]; then
	n=0; rc=0
	while read -r line; do
		n=$((n+1)); echo "LINE $line" >> ` + logPath + `
		case "$line" in *bad*)
			echo "Error: bad thing" >&2; echo "Command failed -:$n" >&2; rc=1
			[ "$1" = "-force" ] || exit 1;;
		esac
	done
	exit $rc
fi
exit 0
`
	if err := os.WriteFile(filepath.Join(dir, "ip"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	return logPath
}

func TestRunBatchesIPCommands(t *testing.T) {
	log := fakeIP(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmds := [][]string{
		{"ip", "link", "set", "dev", "p0", "up"},
		{"ip", "route", "replace", "10.0.0.0/24", "dev", "p0"},
		{"ip", "-6", "route", "replace", "fd00::/64", "dev", "p0"},
	}
	if err := Run(ctx, cmds); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(log)
	want := "ARGS -batch -\nLINE link set dev p0 up\nLINE route replace 10.0.0.0/24 dev p0\nLINE route replace fd00::/64 dev p0\n"
	if string(b) != want {
		t.Fatalf("ip saw:\n%s\nwant:\n%s", b, want)
	}
}

func TestRunBatchNamesFailingCommand(t *testing.T) {
	fakeIP(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmds := [][]string{
		{"ip", "route", "replace", "10.0.0.0/24", "dev", "p0"},
		{"ip", "route", "replace", "bad", "dev", "p0"},
		{"ip", "route", "replace", "10.0.2.0/24", "dev", "p0"},
	}
	err := Run(ctx, cmds)
	var ce *CommandError
	if !errors.As(err, &ce) || !reflect.DeepEqual(ce.Args, cmds[1]) || !strings.Contains(ce.Stderr, "bad thing") {
		t.Fatalf("Run error = %v, want the second command named", err)
	}
	// Teardown runs every line and reports each failure.
	cmds = append(cmds, []string{"ip", "route", "del", "bad2", "dev", "p0"})
	err = RunTolerant(ctx, cmds)
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != 2 {
		t.Fatalf("RunTolerant error = %v, want two failures", err)
	}
}
