package meshstore

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Target
		err  string
	}{
		{"etcd://127.0.0.1:2379/fleet", Target{Endpoints: []string{"127.0.0.1:2379"}, Prefix: "/fleet"}, ""},
		{"etcds://a:1,b:2,[::1]:3/x/y/", Target{Endpoints: []string{"a:1", "b:2", "[::1]:3"}, TLS: true, Prefix: "/x/y"}, ""},
		{"http://a:1/x", Target{}, "neither etcd nor etcds"},
		{"a:1/x", Target{}, "no scheme"},
		{"etcd://a/x", Target{}, "not HOST:PORT"},
		{"etcd://a:0/x", Target{}, "port must be"},
		{"etcd://:1/x", Target{}, "no host"},
		{"etcd://a:1", Target{}, "no /PREFIX"},
		{"etcd://a:1/", Target{}, "no /PREFIX"},
		{"etcd:///x", Target{}, "no HOST:PORT"},
		{"etcd://u:p@a:1/x", Target{}, "ETCD_USERNAME"},
		{"etcd://a:1/x//y", Target{}, "empty element"},
	} {
		got, err := ParseURL(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %+v %v", c.in, got, err)
		}
		if back, _ := ParseURL(got.URL()); !reflect.DeepEqual(back, got) {
			t.Errorf("%s: URL() %s reads back as %+v", c.in, got.URL(), back)
		}
	}
}

func TestClientConfigTLSFlags(t *testing.T) {
	plain, _ := ParseURL("etcd://a:1/x")
	if _, err := clientConfig(plain, Options{CA: "ca.pem"}); err == nil {
		t.Error("-etcd-ca with etcd:// accepted")
	}
	tls, _ := ParseURL("etcds://a:1/x")
	if _, err := clientConfig(tls, Options{Cert: "c.pem"}); err == nil {
		t.Error("-etcd-cert without -etcd-key accepted")
	}
	cfg, err := clientConfig(tls, Options{})
	if err != nil || cfg.TLS == nil || cfg.Endpoints[0] != "https://a:1" {
		t.Errorf("etcds: %+v %v", cfg, err)
	}
}
