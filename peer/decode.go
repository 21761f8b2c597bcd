package main

import (
	"errors"
	"io"

	"github.com/peer-vpn/peer/capture"
)

func cmdDecode(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("decode", stderr)
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() != 1 {
		return usageError{errors.New("decode: want exactly one FILE (pcap or pcapng)")}
	}
	return capture.DecodeFile(stdout, fs.Arg(0))
}
