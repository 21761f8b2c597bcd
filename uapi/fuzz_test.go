package uapi

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

// FuzzReadRequest feeds the parser what a client may send: it must never
// panic, must return a request, io.EOF or a protocol error, and must not
// keep more than maxKeys keys however long the set.
func FuzzReadRequest(f *testing.F) {
	for _, s := range []string{
		"get=1\n\n",
		"set=1\n\n",
		"set=1\nprivate_key=abab\nlisten_port=51820\npublic_key=0101\nendpoint=[fd99::3]:51820\nallowed_ip=10.0.0.1/32\n\n",
		"get=1\nget=1\n\n",
		"set=1\nx\n\n",
		"",
		"\n",
		"set=1\n" + strings.Repeat("k=v\n", 100) + "\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		r := bufio.NewReaderSize(strings.NewReader(in), 16)
		for i := 0; i < 4; i++ {
			req, err := ReadRequest(r)
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, ErrProtocol) {
					t.Fatalf("error %v is neither io.EOF nor ErrProtocol", err)
				}
				return
			}
			if req.Op != Get && req.Op != Set {
				t.Fatalf("request with op %d", req.Op)
			}
			if len(req.Keys) > maxKeys {
				t.Fatalf("%d keys kept", len(req.Keys))
			}
		}
	})
}
