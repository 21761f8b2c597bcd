package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files of testdata (help, usage, status) from the current output")

// checkGolden compares out with testdata/NAME, or rewrites it with -update.
func checkGolden(t *testing.T, name, out string) {
	t.Helper()
	golden := filepath.Join("testdata", name)
	if *updateGolden {
		if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want) {
		t.Errorf("output differs from %s (rerun with -update and review the diff):\n%s", golden, out)
	}
}

// TestHelpGolden: `peer help` is the manual the package ships; a change to
// it (a flag added, a description reworded) shows in review as a change of
// testdata/help.golden. Regenerate with go test ./peer -run Golden -update.
func TestHelpGolden(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("peer routes -os defaults to the build's GOOS; the golden file is linux's")
	}
	code, out, stderr := runCmd(t, "", "help")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	checkGolden(t, "help.golden", out)
}

// TestUsageGolden: every command's -h (exit 0, on stderr) and the short
// usage an unknown command gets, in testdata/usage.golden. A flag added
// to a command shows there without anyone writing it down.
func TestUsageGolden(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("peer routes -os defaults to the build's GOOS; the golden file is linux's")
	}
	var b strings.Builder
	for _, c := range commands() {
		if c.name == "help" {
			continue // its -h is the manual: help.golden
		}
		args := []string{"-h"}
		if c.name != "" {
			args = append(strings.Fields(c.name), "-h")
		}
		code, out, errOut := runCmd(t, "", args...)
		if code != 0 || out != "" {
			t.Errorf("peer %s: exit %d, stdout %q", strings.Join(args, " "), code, out)
		}
		fmt.Fprintf(&b, "$ peer %s\n%s\n", strings.Join(args, " "), errOut)
	}
	code, _, errOut := runCmd(t, "", "nosuch")
	if code != exitUsage {
		t.Errorf("peer nosuch: exit %d, want %d", code, exitUsage)
	}
	fmt.Fprintf(&b, "$ peer nosuch\n%s", errOut)
	checkGolden(t, "usage.golden", b.String())
}

// TestSynopsisFlags: a flag a synopsis names is one of its command's
// flags (the synopses are the one hand-written part of -h).
func TestSynopsisFlags(t *testing.T) {
	defined := regexp.MustCompile(`(?m)^  (-[a-z0-9-]+)`)
	named := regexp.MustCompile(`(?:^|[\s\[|])(-[a-z][a-z0-9-]*)`)
	for _, c := range commands() {
		if c.name == "help" {
			continue
		}
		var h strings.Builder
		c.run([]string{"-h"}, strings.NewReader(""), io.Discard, &h)
		flags := map[string]bool{}
		for _, m := range defined.FindAllStringSubmatch(h.String(), -1) {
			flags[m[1]] = true
		}
		for _, m := range named.FindAllStringSubmatch(c.synopsis, -1) {
			if !flags[m[1]] {
				t.Errorf("synopsis %q names %s, which peer %s does not have", c.synopsis, m[1], c.name)
			}
		}
	}
}

// TestHelpCoversEveryCommand: each command has its section in the
// manual, and the manual has the sections a man page has.
func TestHelpCoversEveryCommand(t *testing.T) {
	_, manual, _ := runCmd(t, "", "help")
	for _, c := range commands() {
		if !strings.Contains(manual, "\n    "+c.synopsis+"\n") {
			t.Errorf("peer help has no section for %q", c.synopsis)
		}
	}
	for _, s := range []string{"NAME", "SYNOPSIS", "COMMANDS", "FILES", "SIGNALS", "EXIT STATUS", "SEE ALSO"} {
		if !strings.Contains(manual, "\n"+s+"\n") && !strings.HasPrefix(manual, s+"\n") {
			t.Errorf("peer help has no %s section", s)
		}
	}
}

// TestVersion: `peer version` names a version and a commit; -X main.commit
// stands in when the build has no VCS stamp.
func TestVersion(t *testing.T) {
	code, out, _ := runCmd(t, "", "version")
	if code != 0 || !regexp.MustCompile(`^peer \S+ commit \S+( \(modified\))? go\S+ \S+/\S+\n$`).MatchString(out) {
		t.Fatalf("exit %d, %q", code, out)
	}
	defer func(v, c string) { version, commit = v, c }(version, commit)
	version, commit = "1.2.3", "0123456789abcdef-modified"
	b := readBuildInfo()
	if b.Version != "1.2.3" {
		t.Errorf("version %q, want the -X override", b.Version)
	}
	if b.Commit == "0123456789abcdef" && !b.Modified {
		t.Errorf("commit %q modified %v: the -modified suffix was lost", b.Commit, b.Modified)
	}
	if code, _, _ := runCmd(t, "", "version", "extra"); code != 2 {
		t.Errorf("version extra: exit %d, want 2", code)
	}
}
