package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Who may write a file the node trusts. The mesh file chooses the peers and
// the paths root writes captures to, and a key file is the node's identity,
// so either must be changeable only by root or by the user the node runs as.
const (
	// unsafeWriteBits are the mode bits that let someone else change a file.
	unsafeWriteBits fs.FileMode = 0o022
	// unsafeSecretBits are the mode bits that let someone else read or
	// change a key file.
	unsafeSecretBits fs.FileMode = 0o077
)

// openTrusted opens path for reading and checks that it is a regular file
// that only root or this process's user can change: owned by one of them,
// and without any of the mode bits in unsafe. It never blocks (a FIFO at
// the path is refused, not waited on). The caller closes the file.
func openTrusted(path string, unsafe fs.FileMode) (*os.File, error) {
	f, err := openNonBlocking(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if err := checkTrusted(path, fi, unsafe); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// checkTrusted applies openTrusted's rules to fi, the file at path.
func checkTrusted(path string, fi fs.FileInfo, unsafe fs.FileMode) error {
	if fi.IsDir() {
		return errors.New("is a directory")
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("is not a regular file (%s)", fileKind(fi.Mode()))
	}
	if uid, ok := fileOwner(fi); ok {
		if me := os.Geteuid(); uid != 0 && uid != me {
			return fmt.Errorf("is owned by uid %d, neither root nor this process's user (uid %d); run chown %d %s", uid, me, me, path)
		}
	}
	if perm := fi.Mode().Perm(); perm&unsafe != 0 {
		who := "group or others write"
		if unsafe&0o044 != 0 {
			who = "group or others read or write"
		}
		return fmt.Errorf("mode %04o lets %s it; run chmod %o %s", perm, who, perm&^unsafe, path)
	}
	return nil
}

// fileKind names a non-regular file type for an error message.
func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "mode " + m.String()
}

// readLimited reads at most limit bytes of f; more is an error.
func readLimited(f *os.File, limit int64, what string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("larger than %d bytes; %s", limit, what)
	}
	return b, nil
}

// ReadPrivate reads a mesh kept where only its owner may read it (a node's
// cache of the mesh it last applied from etcd): a regular file owned by
// root or this process's user, with no group or other bits, at most
// MaxFileSize bytes. The file says who the node's peers are, so it gets
// the checks of a key file.
func ReadPrivate(path string) ([]byte, error) {
	f, err := openTrusted(path, unsafeSecretBits)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readLimited(f, MaxFileSize, "a mesh file is YAML text")
}
