package config

import (
	"strings"
	"testing"
)

func TestCheckMetricsAddr(t *testing.T) {
	tests := []struct {
		addr string
		want string // "" accepted, else part of the error
	}{
		{"127.0.0.1:9586", ""},
		{"[::1]:9586", ""},
		{"10.10.0.1:9586", ""},
		{"[fe80::1%eth0]:9586", ""},
		{"0.0.0.0:9586", ""}, // every interface, written out: allowed
		{"[::]:9586", ""},
		{":9586", "has no host, which would listen on every interface; write 127.0.0.1:9586"},
		{":9586", "0.0.0.0:9586 or [::]:9586, written out"},
		{"localhost:9586", "must be an IP address, not a name; write 127.0.0.1:9586"},
		{"127.0.0.1", "is not HOST:PORT; write 127.0.0.1:9586"},
		{"::1:9586", "is not HOST:PORT"},
		{"127.0.0.1:0", `port "0" is not a number from 1 to 65535`},
		{"127.0.0.1:65536", "is not a number from 1 to 65535"},
		{"127.0.0.1:http", "is not a number"},
		{"", "is not HOST:PORT"},
	}
	for _, tc := range tests {
		err := CheckMetricsAddr(tc.addr)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q refused: %v", tc.addr, err)
		case tc.want != "" && err == nil:
			t.Errorf("%q accepted", tc.addr)
		case tc.want != "" && !strings.Contains(err.Error(), tc.want):
			t.Errorf("%q: %v\nwant it to say %q", tc.addr, err, tc.want)
		}
	}
}

func TestParseMetrics(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"metrics: 127.0.0.1:9586\n", "127.0.0.1:9586"},
		{"metrics: \"[::1]:9586\"\n", "[::1]:9586"},
		{"metrics: 0.0.0.0:9586\n", "0.0.0.0:9586"},
		{"metrics: \"\"\n", ""},
		{"metrics:\n", ""},
		{"", ""},
	} {
		m := mustParse(t, "mesh.yaml", tc.src+two)
		if m.Metrics != tc.want {
			t.Errorf("%q: Metrics = %q, want %q", tc.src, m.Metrics, tc.want)
		}
		if tc.want != "" && m.MetricsLine != 1 {
			t.Errorf("%q: MetricsLine = %d", tc.src, m.MetricsLine)
		}
	}
	for _, tc := range []struct{ src, msg string }{
		{"metrics: :9586\n", `metrics: ":9586" has no host, which would listen on every interface; write 127.0.0.1:9586`},
		{"metrics: localhost:9586\n", "metrics: \"localhost:9586\": the host must be an IP address"},
		{"metrics: [\"::1\"]\n", `metrics: expected HOST:PORT, got a list; quote an IPv6 address`},
		{"metrics: 9586\n", `metrics: "9586" is not HOST:PORT`},
		{"metrics: true\n", "metrics: expected a string, got the boolean true"},
		{"metric: 127.0.0.1:9586\n", `unknown field "metric" (did you mean "metrics"?)`},
	} {
		list := parseErrs(t, tc.src+two)
		if list[0].Line != 1 || !strings.Contains(list[0].Msg, tc.msg) {
			t.Errorf("%q: %v\nwant line 1 and %q", tc.src, list, tc.msg)
		}
	}
	// Unquoted, an IPv6 address starts a YAML list: refused, if with less
	// help than the quoting hint above.
	if list := parseErrs(t, "metrics: [::1]:9586\n"+two); !strings.Contains(list[0].Msg, "YAML syntax") {
		t.Errorf("unquoted IPv6: %v", list)
	}
}
