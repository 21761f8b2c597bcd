package proxy

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseListen(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want "" with err: refused, err a part of the message
		err      string
	}{
		{in: "1080", want: "127.0.0.1:1080"},
		{in: ":1080", want: "127.0.0.1:1080"},
		{in: "0.0.0.0:1080", want: "0.0.0.0:1080"},
		{in: "[::1]:1080", want: "[::1]:1080"},
		{in: "[::]:65535", want: "[::]:65535"},
		{in: "192.0.2.1:1", want: "192.0.2.1:1"},
		{in: "", err: `port ""`},
		{in: "0", err: `port "0"`},
		{in: ":65536", err: `port "65536"`},
		{in: "-1", err: `port "-1"`},
		{in: "localhost:1080", err: `host "localhost": want an IP`},
		{in: "::1:1080", err: "too many colons"},
		{in: "[::1]", err: "missing port"},
		{in: "1.2.3.4:", err: `port ""`},
		{in: "1.2.3:80", err: `host "1.2.3"`},
	} {
		got, err := ParseListen(tc.in)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("ParseListen(%q): %v", tc.in, err)
		case tc.err == "" && got.String() != tc.want:
			t.Errorf("ParseListen(%q) = %v, want %v", tc.in, got, tc.want)
		case tc.err != "" && err == nil:
			t.Errorf("ParseListen(%q) = %v, want an error", tc.in, got)
		case tc.err != "" && !strings.Contains(err.Error(), tc.err):
			t.Errorf("ParseListen(%q): %v, want it to say %q", tc.in, err, tc.err)
		}
	}
}

func TestParseForward(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "tcp:127.0.0.1:8080=beta:80", want: "tcp:127.0.0.1:8080=beta:80"},
		{in: "udp:5353=10.10.0.2:53", want: "udp:127.0.0.1:5353=10.10.0.2:53"},
		{in: "tcp::2222=beta:22", want: "tcp:127.0.0.1:2222=beta:22"},
		{in: "tcp:[::1]:8080=[fd00::2]:80", want: "tcp:[::1]:8080=[fd00::2]:80"},
		{in: "tcp:0.0.0.0:443=web.example.com.:443", want: "tcp:0.0.0.0:443=web.example.com.:443"},
		{in: "tcp:8080=_svc.beta:80", want: "tcp:127.0.0.1:8080=_svc.beta:80"},
		{in: "sctp:8080=beta:80", err: `protocol "sctp"`},
		{in: "TCP:8080=beta:80", err: `protocol "TCP"`},
		{in: "8080=beta:80", err: `protocol "8080=beta"`},
		{in: "tcp", err: "want tcp|udp"},
		{in: "tcp:8080", err: "missing '='"},
		{in: "tcp:8080=beta", err: `mesh address "beta"`},
		{in: "tcp:8080=beta:0", err: `port "0"`},
		{in: "tcp:8080=:80", err: "missing host"},
		{in: "tcp:8080=fd00::2:80", err: "too many colons"},
		{in: "tcp:8080=be ta:80", err: "not allowed"},
		{in: "tcp:8080=-beta:80", err: "starts or ends"},
		{in: "tcp:8080=a..b:80", err: "empty label"},
		{in: "tcp:8080=" + strings.Repeat("a", 64) + ":80", err: "longer than 63"},
		{in: "tcp:8080=beta:80=x", err: `port "80=x"`},
		{in: "tcp:localhost:8080=beta:80", err: `local address "localhost:8080"`},
		{in: "tcp:0=beta:80", err: `port "0"`},
	} {
		got, err := ParseForward(tc.in)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("ParseForward(%q): %v", tc.in, err)
		case tc.err == "" && got.String() != tc.want:
			t.Errorf("ParseForward(%q) = %v, want %v", tc.in, got, tc.want)
		case tc.err != "" && err == nil:
			t.Errorf("ParseForward(%q) = %v, want an error", tc.in, got)
		case tc.err != "" && !strings.Contains(err.Error(), tc.err):
			t.Errorf("ParseForward(%q): %v, want it to say %q", tc.in, err, tc.err)
		}
	}
	f, err := ParseForward("udp:5353=beta:53")
	if err != nil || f.Net != "udp" || f.Local != netip.MustParseAddrPort("127.0.0.1:5353") || f.Target != (HostPort{"beta", 53}) {
		t.Errorf("ParseForward fields: %+v, %v", f, err)
	}
}

func TestParseExpose(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "tcp:8080=127.0.0.1:80", want: "tcp:8080=127.0.0.1:80"},
		{in: "udp:53=127.0.0.1:5353", want: "udp:53=127.0.0.1:5353"},
		{in: "tcp:22=localhost:22", want: "tcp:22=localhost:22"},
		{in: "tcp:8080=[::1]:80", want: "tcp:8080=[::1]:80"},
		{in: "tcp:8080=80", err: `local address "80"`},
		{in: "tcp:8080=:80", err: "missing host"},
		{in: "tcp::8080=127.0.0.1:80", err: `mesh port ":8080"`},
		{in: "tcp:0=127.0.0.1:80", err: `mesh port "0"`},
		{in: "udp:70000=127.0.0.1:80", err: `mesh port "70000"`},
		{in: "icmp:1=127.0.0.1:80", err: `protocol "icmp"`},
		{in: "tcp:8080", err: "missing '='"},
	} {
		got, err := ParseExpose(tc.in)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("ParseExpose(%q): %v", tc.in, err)
		case tc.err == "" && got.String() != tc.want:
			t.Errorf("ParseExpose(%q) = %v, want %v", tc.in, got, tc.want)
		case tc.err != "" && err == nil:
			t.Errorf("ParseExpose(%q) = %v, want an error", tc.in, got)
		case tc.err != "" && !strings.Contains(err.Error(), tc.err):
			t.Errorf("ParseExpose(%q): %v, want it to say %q", tc.in, err, tc.err)
		}
	}
}

// FuzzParseForward checks that ParseForward never panics and that what it
// accepts prints in a form that parses back to the same value.
func FuzzParseForward(f *testing.F) {
	for _, s := range []string{
		"tcp:127.0.0.1:8080=beta:80", "udp:5353=10.10.0.2:53", "tcp:[::1]:1=[fd00::2]:2",
		"tcp:[fe80::1%eth0]:80=[fe80::2%eth0]:80", "tcp:8080=web.example.com.:443",
		"tcp:8080=beta", "sctp:1=a:1", "tcp:=:", "tcp:[::ffff:1.2.3.4]:80=::ffff:1.2.3.4:80", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fw, err := ParseForward(s)
		if err != nil {
			return
		}
		again, err := ParseForward(fw.String())
		if err != nil || again != fw {
			t.Fatalf("ParseForward(%q) = %+v prints %q, which parses as %+v, %v", s, fw, fw.String(), again, err)
		}
	})
}

// FuzzParseExpose is FuzzParseForward's twin for ParseExpose.
func FuzzParseExpose(f *testing.F) {
	for _, s := range []string{"tcp:8080=127.0.0.1:80", "udp:53=localhost:5353", "tcp:1=[::1]:1", "tcp:x=y", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseExpose(s)
		if err != nil {
			return
		}
		again, err := ParseExpose(e.String())
		if err != nil || again != e {
			t.Fatalf("ParseExpose(%q) = %+v prints %q, which parses as %+v, %v", s, e, e.String(), again, err)
		}
	})
}
