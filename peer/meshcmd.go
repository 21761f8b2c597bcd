package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	cfg "github.com/peer-vpn/peer/config"
	"github.com/peer-vpn/peer/meshstore"
)

// meshTimeout bounds a mesh push, pull or diff: a few round trips to etcd.
const meshTimeout = 30 * time.Second

// etcdFlags are the flags of every mesh subcommand that reach etcd.
type etcdFlags struct {
	url                *string
	ca, cert, key      *string
	urlFlag, urlAction string
}

func (f *etcdFlags) register(fs *flag.FlagSet, name, action string) {
	f.urlFlag = name
	f.url = fs.String(name, "", "etcd `URL` of the mesh to "+action+": etcd://HOST:PORT[,HOST:PORT...]/PREFIX, etcds:// for TLS\n(user and password from $ETCD_USERNAME, $ETCD_PASSWORD)")
	f.ca = fs.String("etcd-ca", "", "PEM `FILE` of the CA that signed etcd's certificate (etcds://)")
	f.cert = fs.String("etcd-cert", "", "PEM `FILE` of our client certificate (etcds://)")
	f.key = fs.String("etcd-key", "", "PEM `FILE` of our client certificate's key (etcds://)")
}

// open checks the URL and the TLS flags (a usage error if wrong) and
// connects.
// with opens the store, runs do with a context bounded by meshTimeout,
// and closes the store.
func (f *etcdFlags) with(do func(context.Context, *meshstore.Store) error) error {
	s, err := f.open()
	if err != nil {
		return err
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), meshTimeout)
	defer cancel()
	return do(ctx, s)
}

func (f *etcdFlags) open() (*meshstore.Store, error) {
	if *f.url == "" {
		return nil, usageError{fmt.Errorf("-%s URL is required", f.urlFlag)}
	}
	t, err := meshstore.ParseURL(*f.url)
	if err != nil {
		return nil, usageError{err}
	}
	o := meshstore.OptionsFromEnv()
	o.CA, o.Cert, o.Key = *f.ca, *f.cert, *f.key
	s, err := meshstore.Open(t, o)
	if err != nil {
		return nil, usageError{err}
	}
	return s, nil
}

// loadForStore reads the mesh file as peer check does, and checks it is
// one etcd can hold; every problem is a usage error with FILE:LINE, found
// before etcd is contacted.
func loadForStore(path string) (*cfg.Mesh, error) {
	if path == "" {
		return nil, usageError{errors.New("-config FILE is required")}
	}
	m, err := cfg.Load(path)
	if err == nil {
		err = meshstore.Check(m)
	}
	if err != nil {
		return nil, usageError{err}
	}
	return m, nil
}

func cmdMeshPush(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("mesh push", stderr)
	config := fs.String("config", "", "mesh `FILE` to push (checked in full first, as by peer check)")
	ifRev := fs.Int64("if-revision", meshstore.NoRevision, "push only if the mesh is still at revision `N` (as pull or diff printed it; 0: no mesh yet)")
	signFile := fs.String("sign", "", "sign the mesh with the Ed25519 key in `KEYFILE` (peer mesh signkey; mode 0600); without it\nthe push removes any old signature")
	var ef etcdFlags
	ef.register(fs, "to", "write")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	m, err := loadForStore(*config)
	if err != nil {
		return err
	}
	var key ed25519.PrivateKey
	if *signFile != "" {
		if key, err = cfg.ReadSigningKey(*signFile); err != nil {
			return usageError{err}
		}
	}
	var d *meshstore.Diff
	err = ef.with(func(ctx context.Context, s *meshstore.Store) (err error) {
		if key != nil {
			d, err = s.PushSigned(ctx, m, *ifRev, key)
		} else {
			d, err = s.Push(ctx, m, *ifRev)
		}
		return err
	})
	if err != nil {
		return err
	}
	signed := ""
	if key != nil {
		signed = "; signed by " + cfg.SignerString(key.Public().(ed25519.PublicKey))
	}
	fmt.Fprintf(stdout, "pushed revision %d: %s%s\n", d.Revision, d.Summary(), signed)
	return nil
}

// cmdMeshSignkey makes a mesh signing key, or shows the public key of one.
func cmdMeshSignkey(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("mesh signkey", stderr)
	out := fs.String("out", "", "write a new Ed25519 signing key to `FILE` (mode 0600; never replaced) and print its public key")
	show := fs.String("pub", "", "print the public key of the signing key in `FILE`, for trusted_signers")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if (*out == "") == (*show == "") {
		return usageError{errors.New("give one of -out FILE or -pub FILE")}
	}
	if *show != "" {
		k, err := cfg.ReadSigningKey(*show)
		if err != nil {
			return usageError{err}
		}
		_, err = fmt.Fprintln(stdout, cfg.SignerString(k.Public().(ed25519.PublicKey)))
		return err
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return usageError{err}
	}
	if _, err := fmt.Fprintln(f, base64.StdEncoding.EncodeToString(key.Seed())); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, cfg.SignerString(pub))
	return err
}

func cmdMeshPull(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("mesh pull", stderr)
	var ef etcdFlags
	ef.register(fs, "from", "read")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var p *meshstore.Pulled
	err := ef.with(func(ctx context.Context, s *meshstore.Store) (err error) {
		p, err = s.Pull(ctx)
		return err
	})
	if err != nil {
		return err
	}
	_, err = stdout.Write(p.YAML)
	return err
}

func cmdMeshDiff(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("mesh diff", stderr)
	config := fs.String("config", "", "mesh `FILE` to compare (checked in full first, as by peer check)")
	var ef etcdFlags
	ef.register(fs, "to", "compare with")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	m, err := loadForStore(*config)
	if err != nil {
		return err
	}
	var d *meshstore.Diff
	err = ef.with(func(ctx context.Context, s *meshstore.Store) (err error) {
		d, err = s.Diff(ctx, m)
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "against revision %d: %s\n", d.Revision, d.Summary())
	for _, e := range d.Entries {
		fmt.Fprintf(stdout, "%s:\n", e.Key)
		for _, l := range lineDiff(string(e.Old), string(e.New)) {
			fmt.Fprintf(stdout, "  %s\n", l)
		}
	}
	return nil
}

// lineDiff returns the lines of a and b as a diff: " " both, "-" only a,
// "+" only b (longest common subsequence; entries are a few lines).
func lineDiff(a, b string) []string {
	split := func(s string) []string {
		if s == "" {
			return nil
		}
		return strings.Split(strings.TrimRight(s, "\n"), "\n")
	}
	x, y := split(a), split(b)
	lcs := make([][]int, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []string
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case i < len(x) && j < len(y) && x[i] == y[j]:
			out = append(out, "  "+x[i])
			i, j = i+1, j+1
		case i < len(x) && (j == len(y) || lcs[i+1][j] >= lcs[i][j+1]):
			out = append(out, "- "+x[i])
			i++
		default:
			out = append(out, "+ "+y[j])
			j++
		}
	}
	return out
}
