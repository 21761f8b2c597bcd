//go:build !unix

package config

import (
	"io/fs"
	"os"
)

// ownerChecks is false: outside unix, mode bits do not describe access.
const ownerChecks = false

func openNonBlocking(path string) (*os.File, error) { return os.Open(path) }

func fileOwner(fs.FileInfo) (int, bool) { return 0, false }
