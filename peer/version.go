package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

// version is the release, set by scripts/package.sh with
// -ldflags "-X main.version=1.2.3". Empty: the module version that `go
// install ...@v1.2.3` records, else "devel".
var version string

// commit is the revision when the build has no VCS stamp of its own
// (-buildvcs=false, a build outside the checkout); scripts/package.sh sets
// it with -X main.commit=$(git rev-parse HEAD), suffixed "-modified" for a
// tree with local changes.
var commit string

// buildInfo is what `peer version` prints.
type buildInfo struct {
	Version  string
	Commit   string // vcs.revision; "unknown" outside a git checkout
	Modified bool   // vcs.modified: built from a tree with local changes
	Go       string
}

func readBuildInfo() buildInfo {
	b := buildInfo{Version: version, Commit: "unknown", Go: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if ok {
		if b.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			b.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Commit = s.Value
			case "vcs.modified":
				b.Modified = s.Value == "true"
			}
		}
	}
	if b.Commit == "unknown" && commit != "" {
		b.Commit, b.Modified = strings.CutSuffix(commit, "-modified")
	}
	if b.Version == "" {
		b.Version = "devel"
	}
	return b
}

// String is the line `peer version` prints, e.g.
// "peer 0.3.0 commit 0afffc8f... (modified) go1.26.8 linux/amd64".
func (b buildInfo) String() string {
	mod := ""
	if b.Modified {
		mod = " (modified)"
	}
	return fmt.Sprintf("peer %s commit %s%s %s %s/%s", b.Version, b.Commit, mod, b.Go, runtime.GOOS, runtime.GOARCH)
}

func cmdVersion(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	_, err := fmt.Fprintln(stdout, readBuildInfo())
	return err
}
