package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/peer-vpn/peer/netconf"
)

// A node that is an exit turns IP forwarding on, and one that uses an exit
// sets src_valid_mark; on the way down both go back to exactly what they
// were. The values from before are kept in memory and, for `peer routes
// -down` and for the next start after a crash, in a state file beside the
// control socket: only there is "what it was before" still known once the
// node has changed it.

// sysctlStatePath is the state file of the node whose control socket is
// socket: /run/peer/peer0.sock keeps /run/peer/peer0.sysctl.
func sysctlStatePath(socket string) string {
	return strings.TrimSuffix(socket, ".sock") + ".sysctl"
}

// procSysctl reads one kernel setting, named as sysctl(8) names it, from
// /proc/sys.
func procSysctl(key string) (string, error) {
	b, err := os.ReadFile(filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/")))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// readSysctls reads every key netconf may set; a key that cannot be read
// (no IPv6 in this kernel) is left out, so it is never restored.
func readSysctls(read func(string) (string, error)) map[string]string {
	out := map[string]string{}
	for _, k := range netconf.ManagedSysctls {
		if v, err := read(k); err == nil {
			out[k] = v
		}
	}
	return out
}

// maxStateFile bounds what loadSysctlState reads.
const maxStateFile = 4096

// loadSysctlState reads a state file written by saveSysctlState: nil and
// no error when there is none. Only keys netconf manages are taken, with
// values of digits only, so a damaged file cannot make the node write
// anything else.
func loadSysctlState(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading sysctl state: %w", err)
	}
	if len(b) > maxStateFile {
		return nil, fmt.Errorf("sysctl state %s: larger than %d bytes", path, maxStateFile)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || !slices.Contains(netconf.ManagedSysctls, k) || v == "" || strings.Trim(v, "0123456789") != "" {
			return nil, fmt.Errorf("sysctl state %s:%d: want KEY=NUMBER for one of %s", path, n, strings.Join(netconf.ManagedSysctls, ", "))
		}
		out[k] = v
	}
	return out, nil
}

// saveSysctlState writes values to path (mode 0600, replaced atomically).
func saveSysctlState(path string, values map[string]string) error {
	var b strings.Builder
	b.WriteString("# peer: kernel settings as they were before this node changed them; restored when it stops\n")
	for _, k := range slices.Sorted(maps.Keys(values)) {
		fmt.Fprintf(&b, "%s=%s\n", k, values[k])
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("saving sysctl state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("saving sysctl state: %w", err)
	}
	return nil
}

// prepareSysctls fills the plan's SysctlsBefore (Linux only) with the
// values the node will restore, and returns the state file it saved them
// in ("" for none: no socket path, or a system that cannot read sysctls).
// A state file already there means a node of this interface did not stop
// cleanly: its values are the ones from before, and what it may have left
// (rules, the nftables table, the sysctls) is taken down first.
func (r *reloader) prepareSysctls(ctx context.Context, socket string) (string, error) {
	if r.sys.goos != netconf.Linux || r.sys.readSysctl == nil || socket == "" {
		return "", nil
	}
	path := sysctlStatePath(socket)
	before, err := loadSysctlState(path)
	if err != nil {
		return "", err
	}
	if before != nil {
		r.log.Warn("a node of this interface did not stop cleanly: taking down what it left and restoring its sysctls", "state", path)
		left := r.currentPlan()
		left.Routes, left.UseExit, left.Exit, left.ClampMSS, left.SysctlsBefore = nil, true, true, true, before
		// Most of it is gone already; the failures say only that, so they
		// are logged for -v only.
		if err := r.sys.runTolerant(ctx, left.PolicyDown()); err != nil {
			r.log.Debug("taking down what the last node left", "err", err)
		}
	} else {
		before = readSysctls(r.sys.readSysctl)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("saving sysctl state: %w", err)
	}
	if err := saveSysctlState(path, before); err != nil {
		return "", err
	}
	r.mu.Lock()
	r.plan.SysctlsBefore = before
	r.mu.Unlock()
	return path, nil
}
