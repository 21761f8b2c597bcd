package main

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/help.golden from the current output")

// TestHelpGolden: `peer help` is the manual the package ships; a change to
// it (a flag added, a description reworded) shows in review as a change of
// testdata/help.golden. Regenerate with go test ./peer -run HelpGolden -update.
func TestHelpGolden(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("peer routes -os defaults to the build's GOOS; the golden file is linux's")
	}
	code, out, stderr := runCmd(t, "", "help")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	golden := filepath.Join("testdata", "help.golden")
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
		t.Errorf("peer help differs from %s (rerun with -update and review the diff):\n%s", golden, out)
	}
}

// TestHelpCoversEveryCommand: each command of the short usage has its
// section in the manual, and the manual has the sections a man page has.
func TestHelpCoversEveryCommand(t *testing.T) {
	var u strings.Builder
	usage(&u)
	_, manual, _ := runCmd(t, "", "help")
	for _, m := range regexp.MustCompile(`(?m)^\s+peer ([a-z]+)`).FindAllStringSubmatch(u.String(), -1) {
		if !strings.Contains(manual, "\n    peer "+m[1]) {
			t.Errorf("peer help has no section for %q", m[1])
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
