package uapi

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Op is the operation of a request.
type Op int

// The two operations of the protocol.
const (
	Get Op = iota + 1 // "get=1": describe the device
	Set               // "set=1": change it
)

// Limits on what a client may send: a line of the protocol is at most a
// key and a 64-digit hex value or an endpoint with a DNS-free address, far
// below maxLine; a set may be long (every allowed IP of every peer) and is
// read to its end, but only its first maxKeys distinct keys are kept.
const (
	maxLine = 1024
	maxKeys = 16
)

// ErrProtocol is returned (wrapped) by ReadRequest for bytes that are not a
// request of the protocol.
var ErrProtocol = errors.New("uapi: protocol error")

// Request is one request read from a client.
type Request struct {
	Op Op
	// Keys are the distinct keys of a set request's lines in the order
	// they first appear (at most maxKeys), for the server to say what was
	// asked for.
	Keys []string
	// Peers is the number of peers a set request names (public_key lines).
	Peers int
}

// ReadRequest reads one request from r. At the end of input before a
// request begins it returns io.EOF; for anything that is not a request it
// returns an error wrapping ErrProtocol, after which the connection is no
// longer in step and should be closed. A set request is read to its blank
// line, so that the answer is what the client reads next.
func ReadRequest(r *bufio.Reader) (Request, error) {
	op, err := readLine(r)
	if err != nil {
		return Request{}, err
	}
	var req Request
	switch op {
	case "get=1":
		req.Op = Get
		blank, err := readLine(r)
		if err != nil {
			return Request{}, noEOF(err)
		}
		if blank != "" {
			return Request{}, fmt.Errorf("%w: get=1 followed by %q, not a blank line", ErrProtocol, blank)
		}
		return req, nil
	case "set=1":
		req.Op = Set
	default:
		return Request{}, fmt.Errorf("%w: unknown operation %q", ErrProtocol, op)
	}
	seen := map[string]bool{}
	for {
		line, err := readLine(r)
		if err != nil {
			return Request{}, noEOF(err)
		}
		if line == "" {
			return req, nil
		}
		key, _, ok := strings.Cut(line, "=")
		if !ok || key == "" {
			return Request{}, fmt.Errorf("%w: set line %q is not key=value", ErrProtocol, line)
		}
		if key == "public_key" {
			req.Peers++
		}
		if !seen[key] && len(req.Keys) < maxKeys {
			seen[key] = true
			req.Keys = append(req.Keys, key)
		}
	}
}

// readLine reads a line ending in "\n" and returns it without the newline.
// It returns io.EOF only when r ends before the line's first byte.
func readLine(r *bufio.Reader) (string, error) {
	var buf []byte
	for {
		frag, err := r.ReadSlice('\n')
		if len(buf)+len(frag) > maxLine+1 {
			return "", fmt.Errorf("%w: a line longer than %d bytes", ErrProtocol, maxLine)
		}
		buf = append(buf, frag...)
		switch {
		case err == nil:
			line := buf[:len(buf)-1]
			if bytes.IndexByte(line, 0) >= 0 {
				return "", fmt.Errorf("%w: a NUL byte in a line", ErrProtocol)
			}
			return string(line), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(buf) == 0:
			return "", io.EOF
		case errors.Is(err, io.EOF):
			return "", fmt.Errorf("%w: input ends inside a line", ErrProtocol)
		default:
			return "", err
		}
	}
}

// noEOF turns the end of input inside a request into a protocol error.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: input ends inside a request", ErrProtocol)
	}
	return err
}
