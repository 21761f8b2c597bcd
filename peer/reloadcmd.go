package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/peer-vpn/peer/control"
)

// reloadTimeout bounds how long `peer reload` waits: the node resolves the
// endpoints' names again and may run many route commands.
const reloadTimeout = 2 * time.Minute

// cmdReload asks the running node to read its mesh file again and prints
// what changed. A refused file is a usage error (exit 2, the FILE:LINE
// problems on stderr); no node, or a reload that failed while applying, is
// exit 1.
func cmdReload(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("reload", stderr)
	iface := fs.String("iface", "peer0", "interface of the node to reload")
	socket := fs.String("socket", "", "control socket path (default /run/peer/<iface>.sock, for users but root\n$XDG_RUNTIME_DIR/peer/<iface>.sock)")
	asJSON := fs.Bool("json", false, "print what changed as one JSON object")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	path := *socket
	if path == "" {
		path = control.SocketPath(*iface)
	}
	ctx, cancel := context.WithTimeout(context.Background(), reloadTimeout)
	defer cancel()
	var ans reloadAnswer
	if err := control.Do(ctx, path, control.RequestReload, &ans); err != nil {
		return err
	}
	if ans.Refused != "" {
		return usageError{fmt.Errorf("reload refused, the node runs on unchanged:\n%s", ans.Refused)}
	}
	if ans.Report == nil {
		if ans.Error != "" {
			return fmt.Errorf("reload: %s", ans.Error)
		}
		return errors.New("reload: the node sent no report")
	}
	if err := printReport(stdout, ans.Report, *asJSON); err != nil {
		return err
	}
	if ans.Error != "" {
		return fmt.Errorf("reload: %s", ans.Error)
	}
	return nil
}

// printReport writes rep as `peer reload` prints it, or as JSON.
func printReport(w io.Writer, rep *reloadReport, asJSON bool) error {
	if asJSON {
		b, err := json.Marshal(rep)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	_, err := io.WriteString(w, rep.String())
	return err
}
