package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/peer-vpn/peer/capture"
	"github.com/peer-vpn/peer/control"
)

// cmdCapture attaches to the running node and writes its live capture,
// pcapng, to -w (a file, or stdout for `| wireshark -k -i -`), until SIGINT
// or -c packets. Either way it then tells the node it is done and copies
// the end of the stream (the statistics with the drop counts) before it
// exits, so the file is complete.
func cmdCapture(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("capture", stderr)
	iface := fs.String("iface", "peer0", "interface of the node to capture on")
	socket := fs.String("socket", "", "control socket path (default /run/peer/<iface>.sock, for users but root\n$XDG_RUNTIME_DIR/peer/<iface>.sock)")
	peerName := fs.String("peer", "", "only this peer's packets (and with -outer its endpoint's datagrams)")
	outer := fs.Bool("outer", false, "also capture the encrypted UDP datagrams")
	withKeys := fs.Bool("keys", false, "embed the key log Wireshark needs to decrypt (needs -outer): it holds this node's\n"+
		"PRIVATE KEY; whoever has the capture can impersonate the node: treat it as the key, rotate the key after sharing it")
	count := fs.Int("c", 0, "stop after this many packets (0: at SIGINT)")
	out := fs.String("w", "", "write the pcapng stream to this file, or - for stdout")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *out == "":
		return usageError{errors.New("capture: -w FILE or -w - (stdout) is required")}
	case *count < 0:
		return usageError{errors.New("capture: -c must not be negative")}
	case *withKeys && !*outer:
		return usageError{errors.New("capture: -keys needs -outer: the keys decrypt only the encrypted datagrams")}
	}
	path := *socket
	if path == "" {
		path = control.SocketPath(*iface)
	}
	arg, _ := json.Marshal(captureRequest{Peer: *peerName, Outer: *outer, Keys: *withKeys})

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	st, err := control.OpenStream(ctx, path, control.RequestCapture, string(arg))
	cancel()
	if err != nil {
		return err
	}
	defer st.Close()
	var dst io.Writer = stdout
	if *out != "-" {
		f, err := capture.CreateFile(*out)
		if err != nil {
			return fmt.Errorf("capture: %w", err)
		}
		defer f.Close()
		dst = f
	}
	if *withKeys {
		fmt.Fprintf(stderr, "peer capture: -keys: %s\n", keysWarning)
	}

	// SIGINT (or SIGTERM) ends the capture the orderly way; a second one
	// gives up on the end of the stream.
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-sig:
			st.CloseWrite()
		case <-done:
			return
		}
		select {
		case <-sig:
			st.Close()
		case <-done:
		}
	}()

	n, err := copyPackets(dst, st, *count, func() { st.CloseWrite() })
	if err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	if f, ok := dst.(*os.File); ok && *out != "-" {
		if err := f.Close(); err != nil {
			return fmt.Errorf("capture: %w", err)
		}
	}
	fmt.Fprintf(stderr, "peer capture: %d packets\n", n)
	return nil
}

// pcapng block types copyPackets knows.
const (
	blockSHB = 0x0a0d0d0a
	blockEPB = 6
	blockSPB = 3
	blockPB  = 2
)

// maxBlock bounds a block the client accepts from the node.
const maxBlock = 1 << 24

// copyPackets copies a pcapng stream from r to w block by block, counting
// the packet blocks. Once it has copied count of them (count > 0), it calls
// enough, once, and from then on copies every block but packets, so the
// statistics that end the stream still arrive. It returns at r's EOF, at a
// block boundary, with the packets copied.
func copyPackets(w io.Writer, r io.Reader, count int, enough func()) (int, error) {
	var order binary.ByteOrder = binary.LittleEndian
	var hdr [12]byte
	var buf []byte
	n := 0
	for {
		if _, err := io.ReadFull(r, hdr[:8]); err != nil {
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return n, errors.New("the stream ended inside a block")
			}
			if n > 0 || count == 0 {
				// The connection closed under us (the node stopped, or a
				// second SIGINT): what was copied is still a capture.
				return n, nil
			}
			return n, err
		}
		hl := 8
		if binary.LittleEndian.Uint32(hdr[:4]) == blockSHB {
			// The section header's byte-order magic says how to read
			// every length of the section, its own included.
			if _, err := io.ReadFull(r, hdr[8:12]); err != nil {
				return n, errors.New("the stream ended inside a block")
			}
			hl = 12
			if binary.LittleEndian.Uint32(hdr[8:12]) == 0x1a2b3c4d {
				order = binary.LittleEndian
			} else {
				order = binary.BigEndian
			}
		}
		typ, size := order.Uint32(hdr[:4]), order.Uint32(hdr[4:8])
		if size < 12 || size%4 != 0 || size > maxBlock || int(size) < hl {
			return n, fmt.Errorf("not a pcapng stream: block of %d bytes", size)
		}
		if cap(buf) < int(size) {
			buf = make([]byte, size)
		}
		b := buf[:size]
		copy(b, hdr[:hl])
		if _, err := io.ReadFull(r, b[hl:]); err != nil {
			return n, errors.New("the stream ended inside a block")
		}
		isPacket := typ == blockEPB || typ == blockSPB || typ == blockPB
		if isPacket && count > 0 && n >= count {
			continue
		}
		if _, err := w.Write(b); err != nil {
			return n, err
		}
		if isPacket {
			n++
			if count > 0 && n == count {
				enough()
			}
		}
	}
}
