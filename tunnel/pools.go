package tunnel

import "sync"

// bufferPool recycles packet buffers of bufSize bytes, so the steady state
// allocates nothing.
var bufferPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

func getBuffer() []byte { return (*bufferPool.Get().(*[]byte))[:bufSize] }

func putBuffer(b []byte) {
	b = b[:cap(b)]
	bufferPool.Put(&b)
}
