package capture

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// createPrivate creates name as a new, empty regular file of mode 0600 owned
// by this process's user, whatever was there before. Captures hold decrypted
// traffic and maybe keys, and the node usually runs as root, so opening the
// path with O_CREATE|O_TRUNC is not enough: an existing file would keep its
// mode (0644 stays 0644) and a symlink planted at the path would be followed
// and its target truncated.
//
// The file is created under a temporary name in the same directory with
// O_CREATE|O_EXCL (which never follows a symlink and never opens an existing
// file), given mode 0600 explicitly (the umask cannot widen it, but says
// nothing about intent), and renamed over name: rename replaces a symlink
// itself, never its target. A directory or any other non-regular file
// (device, FIFO, socket) at name is refused rather than replaced.
func createPrivate(name string) (*os.File, error) {
	if fi, err := os.Lstat(name); err == nil {
		if m := fi.Mode(); !m.IsRegular() && m&fs.ModeSymlink == 0 {
			return nil, fmt.Errorf("%s is %s, not a regular file; give a file name", name, modeKind(m))
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	dir, base := filepath.Split(name)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return nil, err
	}
	tmp := f.Name()
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("setting mode 0600: %w", err)
	}
	if err := os.Rename(tmp, name); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, err
	}
	return f, nil
}

// modeKind names the type of a file that is not a regular file.
func modeKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	default:
		return "a special file"
	}
}

// CreateFile creates name for a capture by the rules of the Writer's files
// (see Options.Path): new, mode 0600, a symlink at name replaced rather than
// followed, a directory or other non-regular file refused. `peer capture -w`
// uses it.
func CreateFile(name string) (*os.File, error) { return createPrivate(name) }
