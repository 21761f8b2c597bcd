package main

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/peer-vpn/peer/netconf"
)

// hostSysctls are the kernel settings of the host in the exit tests, as
// they were before the node started.
var hostSysctls = map[string]string{
	"net.ipv4.ip_forward":              "0",
	"net.ipv6.conf.all.forwarding":     "0",
	"net.ipv4.conf.all.src_valid_mark": "0",
}

// addToAlpha adds field (such as "exit: true") to alpha's entry of the
// mesh file writeMesh wrote.
func addToAlpha(t *testing.T, mesh, field string) {
	t.Helper()
	b, err := os.ReadFile(mesh)
	if err != nil {
		t.Fatal(err)
	}
	const alphaEnd = "    endpoint: 192.0.2.1:51820\n"
	src := strings.Replace(string(b), alphaEnd, alphaEnd+"    "+field+"\n", 1)
	if src == string(b) {
		t.Fatalf("no %q in %s", alphaEnd, mesh)
	}
	if err := os.WriteFile(mesh, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
}

// marked returns the firewall mark of the node's memory socket.
func marked(t *testing.T, n *runningNode) uint32 {
	t.Helper()
	m, ok := n.conn.(interface{ Mark() uint32 })
	if !ok {
		t.Fatalf("socket %T has no Mark", n.conn)
	}
	return m.Mark()
}

// contains fails the test for each of want missing from cmds.
func contains(t *testing.T, what string, cmds []string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !slices.Contains(cmds, w) {
			t.Errorf("%s: no %q among\n  %s", what, w, strings.Join(cmds, "\n  "))
		}
	}
}

// TestExitClientNode: a node started with -exit marks its socket before
// any rule goes in, installs the policy, says so in its status, and on the
// way down removes it and restores the one sysctl it changed.
func TestExitClientNode(t *testing.T) {
	mesh, key := writeMesh(t, "    exit: true\n")
	ev := &recorder{}
	n := startNode(t, mesh, key, nodeOpts{args: []string{"-exit", "beta"}, sysctls: hostSysctls, events: ev})
	if got := marked(t, n); got != netconf.DefaultFwmark {
		t.Errorf("socket mark = %d, want %d", got, netconf.DefaultFwmark)
	}
	start := ev.take()
	contains(t, "start", start,
		"sysctl -q -w net.ipv4.conf.all.src_valid_mark=1",
		"ip -4 route replace 0.0.0.0/0 dev peer0 table 51820",
		"ip -6 route replace ::/0 dev peer0 table 51820",
		"ip -4 rule add not fwmark 51820 table 51820",
		"ip -6 rule add table main suppress_prefixlength 0")
	for _, c := range start {
		if strings.Contains(c, "0.0.0.0/0") && !strings.Contains(c, "table 51820") {
			t.Errorf("a default route outside the exit's table: %s", c)
		}
	}
	state := sysctlStatePath(n.socket)
	if saved, err := loadSysctlState(state); err != nil || saved["net.ipv4.conf.all.src_valid_mark"] != "0" {
		t.Errorf("state file %s: %v, %v", state, saved, err)
	}
	code, out, _ := runCmd(t, "", "status", "-socket", n.socket)
	if code != 0 || !strings.Contains(out, "exit: beta") {
		t.Errorf("status (exit %d) does not name the exit:\n%s", code, out)
	}

	n.stop()
	down := ev.take()
	contains(t, "stop", down,
		"ip -4 rule del not fwmark 51820 table 51820",
		"ip -6 rule del table main suppress_prefixlength 0",
		"nft delete table inet peer-peer0",
		"sysctl -q -w net.ipv4.conf.all.src_valid_mark=0")
	for _, c := range down {
		if strings.Contains(c, "ip_forward") || strings.Contains(c, "forwarding") {
			t.Errorf("the client restores a setting it never changed: %s", c)
		}
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("state file left after a clean stop: %v", err)
	}
}

// TestExitServerNode: the exit turns forwarding on and masquerades, and
// restores exactly what forwarding was (here: IPv6 was on already).
func TestExitServerNode(t *testing.T) {
	mesh, key := writeMesh(t, "")
	// alpha is the exit this time.
	addToAlpha(t, mesh, "exit: true")
	before := map[string]string{"net.ipv4.ip_forward": "0", "net.ipv6.conf.all.forwarding": "1", "net.ipv4.conf.all.src_valid_mark": "0"}
	ev := &recorder{}
	n := startNode(t, mesh, key, nodeOpts{sysctls: before, events: ev})
	if got := marked(t, n); got != 0 {
		t.Errorf("an exit marks its socket: %d", got)
	}
	start := ev.take()
	contains(t, "start", start, "sysctl -q -w net.ipv4.ip_forward=1", "sysctl -q -w net.ipv6.conf.all.forwarding=1")
	nft := ""
	for _, c := range start {
		if strings.HasPrefix(c, "nft ") {
			nft = c
		}
	}
	if !strings.Contains(nft, "masquerade") || !strings.Contains(nft, "maxseg") {
		t.Errorf("exit's nft script lacks masquerade or MSS clamping: %q", nft)
	}
	code, out, _ := runCmd(t, "", "status", "-socket", n.socket)
	if code != 0 || !strings.Contains(out, "serves as exit") {
		t.Errorf("status (exit %d) does not say it serves as exit:\n%s", code, out)
	}
	n.stop()
	down := ev.take()
	contains(t, "stop", down, "sysctl -q -w net.ipv4.ip_forward=0", "nft delete table inet peer-peer0")
	for _, c := range down {
		if strings.Contains(c, "net.ipv6.conf.all.forwarding") {
			t.Errorf("IPv6 forwarding was on before; the exit must leave it: %s", c)
		}
	}
}

// TestExitReload turns use_exit on and off in the file of a running node.
func TestExitReload(t *testing.T) {
	mesh, key := writeMesh(t, "    exit: true\n")
	n := startNode(t, mesh, key, nodeOpts{sysctls: hostSysctls})
	if marked(t, n) != 0 {
		t.Fatal("marked without an exit")
	}
	b, err := os.ReadFile(mesh)
	if err != nil {
		t.Fatal(err)
	}
	plain := string(b)
	addToAlpha(t, mesh, "use_exit: beta")
	withExit, err := os.ReadFile(mesh)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		src, report string
		mark        uint32
		want        string
	}{
		{string(withExit), "exit: none -> beta\npolicy: uses exit beta\n", netconf.DefaultFwmark, "ip -4 rule add not fwmark 51820 table 51820"},
		{plain, "exit: beta -> none\npolicy: none\n", 0, "ip -4 rule del not fwmark 51820 table 51820"},
	} {
		if err := os.WriteFile(mesh, []byte(step.src), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, stderr := n.reload()
		if code != 0 || !strings.Contains(out, step.report) {
			t.Fatalf("reload: exit %d\n%s%s", code, out, stderr)
		}
		if got := marked(t, n); got != step.mark {
			t.Errorf("after %q: mark %d, want %d", step.report, got, step.mark)
		}
		contains(t, step.report, n.cmds.take(), step.want)
	}
}

// TestExitStateAfterCrash: a state file left by a node that did not stop
// cleanly holds the values from before it; the next node cleans up and
// restores those, not the ones it finds.
func TestExitStateAfterCrash(t *testing.T) {
	mesh, key := writeMesh(t, "    exit: true\n")
	ev := &recorder{}
	dir := t.TempDir()
	sock := dir + "/peer.sock"
	// What the crashed node changed: src_valid_mark is 1 now.
	if err := saveSysctlState(sysctlStatePath(sock), map[string]string{"net.ipv4.conf.all.src_valid_mark": "0"}); err != nil {
		t.Fatal(err)
	}
	now := map[string]string{"net.ipv4.ip_forward": "0", "net.ipv6.conf.all.forwarding": "0", "net.ipv4.conf.all.src_valid_mark": "1"}
	n := startNodeAt(t, mesh, key, sock, nodeOpts{args: []string{"-exit", "beta"}, sysctls: now, events: ev})
	start := ev.take()
	contains(t, "start after a crash", start, "ip -4 rule del not fwmark 51820 table 51820", "nft delete table inet peer-peer0")
	n.stop()
	contains(t, "stop", ev.take(), "sysctl -q -w net.ipv4.conf.all.src_valid_mark=0")
}

// TestExitPlanCommands: `peer routes` prints the exit's plan, refuses an
// exit on darwin with exit status 2, and `peer check` names the exit.
func TestExitPlanCommands(t *testing.T) {
	mesh, key := writeMesh(t, "    exit: true\n")
	code, out, stderr := runCmd(t, "", "routes", "-config", mesh, "-key", key, "-exit", "beta", "-os", "linux")
	if code != 0 || !strings.Contains(out, "ip -4 rule add not fwmark 51820 table 51820") {
		t.Errorf("routes -exit beta: exit %d\n%s%s", code, out, stderr)
	}
	code, out, _ = runCmd(t, "", "check", "-config", mesh, "-key", key, "-exit", "beta")
	if code != 0 || !strings.Contains(out, "uses exit: beta") || !strings.Contains(out, "table main suppress_prefixlength 0") {
		t.Errorf("check -exit beta: exit %d\n%s", code, out)
	}
	if code, _, stderr := runCmd(t, "", "routes", "-config", mesh, "-key", key, "-exit", "alpha"); code != 2 || !strings.Contains(stderr, "that is this node") {
		t.Errorf("-exit naming this node: exit %d, %s", code, stderr)
	}
	addToAlpha(t, mesh, "exit: true")
	if code, _, stderr := runCmd(t, "", "routes", "-config", mesh, "-key", key, "-os", "darwin"); code != 2 || !strings.Contains(stderr, "Linux only") {
		t.Errorf("an exit on darwin: exit %d, %s", code, stderr)
	}
}

func TestWithoutGoneDevice(t *testing.T) {
	gone := &netconf.CommandError{Args: []string{"ip", "route", "del", "10.10.0.2/32", "dev", "peer0"}, Stderr: `Cannot find device "peer0"`, Err: os.ErrNotExist}
	other := &netconf.CommandError{Args: []string{"nft", "delete", "table", "inet", "peer-peer0"}, Stderr: "Error: No such file or directory", Err: os.ErrNotExist}
	if err := withoutGoneDevice(nil); err != nil {
		t.Errorf("nil: %v", err)
	}
	if err := withoutGoneDevice(gone); err != nil {
		t.Errorf("a route of the gone device: %v", err)
	}
	err := withoutGoneDevice(errors.Join(gone, other, gone))
	var ce *netconf.CommandError
	if !errors.As(err, &ce) || ce != other || strings.Contains(err.Error(), "Cannot find device") {
		t.Errorf("joined: %v, want only the nft failure", err)
	}
}

// TestRoutesDownRestoresSavedSysctls: after a node that did not stop
// cleanly, `peer routes -down` restores the values of its state file, and
// the script then removes that file.
func TestRoutesDownRestoresSavedSysctls(t *testing.T) {
	mesh, key := writeMesh(t, "    exit: true\n")
	sock := t.TempDir() + "/peer0.sock"
	state := sysctlStatePath(sock)
	args := []string{"routes", "-config", mesh, "-key", key, "-exit", "beta", "-os", "linux", "-down", "-socket", sock}
	code, out, stderr := runCmd(t, "", args...)
	if code != 0 || strings.Contains(out, "sysctl -q -w") || !strings.Contains(out, "left as they are") {
		t.Errorf("without a state file: exit %d\n%s%s", code, out, stderr)
	}
	if err := saveSysctlState(state, map[string]string{"net.ipv4.conf.all.src_valid_mark": "0", "net.ipv4.ip_forward": "1"}); err != nil {
		t.Fatal(err)
	}
	code, out, stderr = runCmd(t, "", args...)
	if code != 0 || !strings.Contains(out, "\nsysctl -q -w net.ipv4.conf.all.src_valid_mark=0\n") || !strings.HasSuffix(out, "\nrm -f "+state+"\n") {
		t.Errorf("with a state file: exit %d\n%s%s", code, out, stderr)
	}
	if strings.Contains(out, "ip_forward") {
		t.Errorf("a node using an exit restores forwarding it never set:\n%s", out)
	}
	if err := os.WriteFile(state, []byte("net.ipv4.ip_forward=1; reboot\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr = runCmd(t, "", args...); code == 0 || !strings.Contains(stderr, "want KEY=NUMBER") {
		t.Errorf("a damaged state file: exit %d, %s", code, stderr)
	}
}

// TestUnitMayWriteManagedSysctls: the systemd unit keeps /proc/sys read-only
// but for the settings the node changes; a key added to
// netconf.ManagedSysctls must be made writable there too, or an exit under
// systemd fails to start.
func TestUnitMayWriteManagedSysctls(t *testing.T) {
	b, err := os.ReadFile("../packaging/peer@.service")
	if err != nil {
		t.Fatal(err)
	}
	var writable []string
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "ReadWritePaths="); ok {
			for _, p := range strings.Fields(v) {
				writable = append(writable, strings.TrimPrefix(p, "-"))
			}
		}
	}
	for _, k := range netconf.ManagedSysctls {
		if p := "/proc/sys/" + strings.ReplaceAll(k, ".", "/"); !slices.Contains(writable, p) {
			t.Errorf("packaging/peer@.service: ReadWritePaths lacks %s (for %s); it has %v", p, k, writable)
		}
	}
}
