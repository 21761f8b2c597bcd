package uapi

import (
	"bufio"
	"errors"
	"net"
	"strconv"
	"syscall"
	"time"
)

// Timeouts: a client has idleTimeout to send each request (wg sends its
// request at once; a connection left open is closed), and the server
// writeTimeout to deliver an answer.
const (
	idleTimeout  = 10 * time.Second
	writeTimeout = 5 * time.Second
)

// Handler answers the requests of a Server.
type Handler struct {
	// Get describes the device at the moment of a get request; it is
	// called once per request, so the answer is always live.
	Get func() Device
	// Set decides a set request and returns the errno to answer with, 0
	// for success. Nil refuses every set with EOPNOTSUPP.
	Set func(Request) syscall.Errno
}

// Serve answers requests on ln until ln is closed, each connection in a
// goroutine of its own, as many requests per connection as the client
// sends (wireguard-go does the same). It returns nil once ln is closed.
func Serve(ln net.Listener, h Handler) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		go h.serveConn(c)
	}
}

func (h Handler) serveConn(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		c.SetReadDeadline(time.Now().Add(idleTimeout))
		req, err := ReadRequest(r)
		if err != nil {
			// The end of input, a dead client or bytes out of step:
			// wireguard-go too closes the connection on an unknown
			// operation.
			return
		}
		c.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := c.Write(h.answer(req)); err != nil {
			return
		}
	}
}

// answer is the whole answer to req, errno line and blank line included.
func (h Handler) answer(req Request) []byte {
	if req.Op == Get {
		var d Device
		if h.Get != nil {
			d = h.Get()
		}
		return append(AppendGet(nil, &d), "errno=0\n\n"...)
	}
	errno := syscall.EOPNOTSUPP
	if h.Set != nil {
		errno = h.Set(req)
	}
	return AppendErrno(nil, Set, errno)
}

// AppendErrno appends the errno line and the blank line that end the answer
// to an op. A set's error goes on the wire negated: wg reads errno=-N after a
// set as error N (wireguard-go writes -EINVAL and so on), while after a get
// it reads errno=N, a non-negative number, as error N.
func AppendErrno(b []byte, op Op, errno syscall.Errno) []byte {
	n := int64(errno)
	if op == Set {
		n = -n
	}
	b = append(b, "errno="...)
	b = strconv.AppendInt(b, n, 10)
	return append(b, "\n\n"...)
}
