package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/peer-vpn/peer/config"
	"github.com/peer-vpn/peer/meshstore"
)

// A meshSource is where a node's mesh comes from: a file (-config FILE) or
// etcd (-config etcd://HOST:PORT/PREFIX). The start and every reload load
// through it; its watch is one more reload trigger beside SIGHUP and `peer
// reload`, all three running the one reloader.
type meshSource interface {
	// load returns the mesh as it is now; its File names it in errors.
	load() (*config.Mesh, error)
	// watch returns a channel with a report for each change to apply,
	// and the trigger name reloads log; a nil channel for none.
	watch(ctx context.Context, log *slog.Logger) (<-chan struct{}, string, error)
	// applied says that the mesh of the last load is the node's now.
	applied(log *slog.Logger)
	// state is what `peer status` and the metrics show of the source.
	state() sourceState
}

// sourceState is where the node's mesh comes from, as `peer status` shows it.
type sourceState struct {
	// Source is the -config: a file's path or etcd's URL.
	Source string `json:"source"`
	// Etcd is the node's link to etcd, for a mesh there; nil for a file.
	Etcd *etcdState `json:"etcd,omitempty"`
}

// etcdState is the link of a node to its mesh in etcd.
type etcdState struct {
	// Revision is the etcd revision of the mesh the node runs (0: a cache
	// without one).
	Revision int64 `json:"revision"`
	// FromCache says the node runs the cached mesh it started from, none
	// read from etcd yet.
	FromCache bool `json:"from_cache,omitempty"`
	// Connected says etcd answers; Since is when that last changed, or the
	// start of the watch.
	Connected bool      `json:"connected"`
	Since     time.Time `json:"since"`
}

// isEtcdURL reports whether -config names a mesh in etcd.
func isEtcdURL(s string) bool {
	return strings.HasPrefix(s, "etcd://") || strings.HasPrefix(s, "etcds://")
}

// fileSource is a mesh file, watched with -watch.
type fileSource struct {
	path    string
	watchOn bool
}

func (f *fileSource) load() (*config.Mesh, error) { return config.Load(f.path) }

func (f *fileSource) watch(ctx context.Context, log *slog.Logger) (<-chan struct{}, string, error) {
	if !f.watchOn {
		return nil, "", nil
	}
	ch, err := watchFile(ctx, f.path, watchQuiet, log)
	return ch, "watch", err
}

func (f *fileSource) applied(*slog.Logger) {}

func (f *fileSource) state() sourceState { return sourceState{Source: f.path} }

// The timing of the etcd source. Variables, so that tests can shorten them.
var (
	// etcdTimeout bounds one read of etcd; at the start, how long a node
	// waits for etcd before it starts from its cache.
	etcdTimeout = 5 * time.Second
	// etcdProbeEvery is how often a connected node checks that etcd
	// still answers: a watch of an unreachable etcd just stays silent.
	etcdProbeEvery = 2 * time.Second
	// etcdBackoffMin and etcdBackoffMax bound the wait between two tries
	// to reach a lost etcd, doubling from one to the other. A try is one
	// small read, so a node comes back within a few seconds of etcd.
	etcdBackoffMin = 200 * time.Millisecond
	etcdBackoffMax = 4 * time.Second
)

// defaultCacheDir is where a node keeps the last mesh it applied from etcd.
const defaultCacheDir = "/var/lib/peer"

// defaultCachePath is the -cache of a mesh at target: named after the
// prefix, which is known before etcd answers (the interface name is not).
func defaultCachePath(t meshstore.Target) string {
	name := strings.ReplaceAll(strings.TrimPrefix(t.Prefix, "/"), "/", "_")
	return filepath.Join(defaultCacheDir, name+".mesh.yaml")
}

// etcdSource is a mesh in etcd. It keeps the latest whole revision read
// (or why it could not be used), which load parses; its watch reads a new
// one whenever a push rewrote PREFIX/mesh, so half a push is never seen.
type etcdSource struct {
	store *meshstore.Store
	cache string // "" for none (peer check, peer routes)
	timeout, probeEvery,
	backoffMin, backoffMax time.Duration

	mu   sync.Mutex
	read bool   // data, rev and err hold a read
	data []byte // the mesh file, as meshstore.Snapshot renders it
	name string // data's name in errors
	rev  int64  // data's revision (0: unknown)
	err  error  // a mesh etcd holds but that is not valid, instead of data
	// fromCache is etcd's error at the start when the node started from
	// its cache, nil when it started from etcd.
	fromCache error
	loaded    []byte // what the last load parsed: the cache once applied
	// trusted is the node's -trust list: when not nil, a mesh from etcd
	// is applied only if one of these keys signed it. refused is why etcd's
	// mesh was refused at the start, for the watch to log.
	trusted []ed25519.PublicKey
	refused error

	// cached says data is the cache's; loadedRev and loadedCached are
	// rev and cached as the last load parsed them, appliedRev and
	// appliedCached as the node runs them.
	cached                      bool
	loadedRev, appliedRev       int64
	loadedCached, appliedCached bool
	// connected and since are the watch's view of etcd (since: when it
	// last changed); watching says the watch has begun.
	watching, connected bool
	since               time.Time
}

// newEtcdSource opens the mesh at url; cache is the file that keeps the
// last applied mesh ("" for none).
func newEtcdSource(url string, o meshstore.Options, cache string, trusted []ed25519.PublicKey) (*etcdSource, error) {
	t, err := meshstore.ParseURL(url)
	if err != nil {
		return nil, err
	}
	st, err := meshstore.Open(t, o)
	if err != nil {
		return nil, err
	}
	return &etcdSource{store: st, cache: cache, timeout: etcdTimeout, probeEvery: etcdProbeEvery,
		backoffMin: etcdBackoffMin, backoffMax: etcdBackoffMax, trusted: trusted}, nil
}

// isMeshError reports whether err (from Snapshot) is about the mesh etcd
// holds rather than about reaching etcd.
func isMeshError(err error) bool {
	var l config.ErrorList
	var e *config.Error
	return errors.As(err, &l) || errors.As(err, &e)
}

// snapshot reads the whole mesh at its latest revision.
func (s *etcdSource) snapshot(ctx context.Context) (*meshstore.Pulled, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return s.store.Pull(ctx)
}

// untrustedError is a mesh from etcd that the node's -trust list refuses.
type untrustedError struct{ reason string }

func (e *untrustedError) Error() string {
	return "mesh from etcd refused: not signed by a trusted signer (" + e.reason + ")"
}

// isTrusted reports whether k is in the -trust list.
func (s *etcdSource) isTrusted(k ed25519.PublicKey) bool {
	return slices.ContainsFunc(s.trusted, func(t ed25519.PublicKey) bool { return t.Equal(k) })
}

// check refuses, with the reason, a mesh not signed by a trusted signer;
// without a -trust list every mesh passes.
func (s *etcdSource) check(p *meshstore.Pulled) error {
	switch {
	case s.trusted == nil || (p.Signer != nil && s.isTrusted(p.Signer)):
		return nil
	case p.Signer != nil:
		return &untrustedError{"unknown signer " + config.SignerString(p.Signer)}
	case errors.Is(p.SignErr, meshstore.ErrUnsigned):
		return &untrustedError{"unsigned"}
	default:
		return &untrustedError{p.SignErr.Error()}
	}
}

// first is the read of the start: etcd, else the cache. With a -trust list
// a mesh from etcd the list refuses is no start either, and the cache is
// used only if it says a trusted signer signed it: the cache holds what the
// node applied, and what it applied was checked.
func (s *etcdSource) first() error {
	p, err := s.snapshot(context.Background())
	if err == nil {
		if err = s.check(p); err == nil {
			s.setLocked(p.YAML, p.Revision, nil)
			return nil
		}
		s.refused = err
	}
	if s.cache == "" {
		return err
	}
	cached, cerr := readCache(s.cache)
	if cerr == nil && s.trusted != nil {
		if k := cachedSigner(cached); k == nil || !s.isTrusted(k) {
			cerr = fmt.Errorf("%s was not signed by a trusted signer", s.cache)
		}
	}
	if cerr != nil {
		return fmt.Errorf("%w; and no usable cache: %v", err, cerr)
	}
	s.read, s.data, s.rev, s.err, s.fromCache, s.cached = true, cached, cachedRevision(cached), nil, err, true
	s.name = fmt.Sprintf("%s (cache of %s, revision %d)", s.cache, s.store.Target().URL(), s.rev)
	return nil
}

func (s *etcdSource) setLocked(data []byte, rev int64, err error) {
	s.read, s.data, s.rev, s.err, s.cached = true, data, rev, err, false
	s.name = fmt.Sprintf("%s (revision %d)", s.store.Target().URL(), rev)
}

func (s *etcdSource) load() (*config.Mesh, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.read {
		if err := s.first(); err != nil {
			return nil, err
		}
	}
	if s.err != nil {
		return nil, s.err
	}
	m, err := config.Parse(s.name, s.data)
	if err != nil {
		return nil, err
	}
	s.loaded, s.loadedRev, s.loadedCached = s.data, s.rev, s.cached
	return m, nil
}

func (s *etcdSource) applied(log *slog.Logger) {
	s.mu.Lock()
	data := s.loaded
	s.appliedRev, s.appliedCached = s.loadedRev, s.loadedCached
	s.mu.Unlock()
	if s.cache == "" || data == nil {
		return
	}
	if err := writeCache(s.cache, data); err != nil {
		log.Warn("cannot keep the mesh cache: a start while etcd is unreachable will fail", "cache", s.cache, "error", err)
	}
}

func (s *etcdSource) state() sourceState {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := sourceState{Source: s.store.Target().URL(), Etcd: &etcdState{Revision: s.appliedRev, FromCache: s.appliedCached}}
	if s.watching {
		st.Etcd.Connected, st.Etcd.Since = s.connected, s.since
	}
	return st
}

// setConnected records the watch's view of etcd.
func (s *etcdSource) setConnected(connected bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watching, s.connected, s.since = true, connected, time.Now()
}

// revision is the revision the watch resumes after.
func (s *etcdSource) revision() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rev
}

// refresh reads the latest revision and reports it on out when it is news.
// A mesh etcd holds that is not valid is reported too, for the reload to
// refuse with its reason; a mesh the -trust list refuses is logged and not
// reported, so the node keeps the mesh it runs. Only a failure to reach
// etcd is an error.
func (s *etcdSource) refresh(ctx context.Context, log *slog.Logger, out chan<- struct{}) error {
	p, err := s.snapshot(ctx)
	if err != nil && !isMeshError(err) {
		return err
	}
	var data []byte
	var rev int64
	if err == nil {
		if rerr := s.check(p); rerr != nil {
			reason := rerr.Error()
			if re := (*untrustedError)(nil); errors.As(rerr, &re) {
				reason = re.reason
			}
			log.Warn("mesh from etcd refused: not signed by a trusted signer", "url", s.store.Target().URL(), "revision", p.Revision, "reason", reason, "running_revision", s.revision())
			return nil
		}
		data, rev = p.YAML, p.Revision
	}
	s.mu.Lock()
	if err == nil && rev == s.rev && s.err == nil {
		s.mu.Unlock()
		return nil // a push that changed nothing, or one already read
	}
	if err != nil {
		s.read, s.err = true, err // rev stays: the watch goes on after it
	} else {
		s.setLocked(data, rev, nil)
	}
	s.mu.Unlock()
	select {
	case out <- struct{}{}:
	default:
	}
	return nil
}

// probe checks that etcd answers.
func (s *etcdSource) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	_, err := s.store.Client().Get(ctx, s.store.Target().Prefix+"/mesh", clientv3.WithCountOnly(), clientv3.WithSerializable())
	return err
}

func (s *etcdSource) watch(ctx context.Context, log *slog.Logger) (<-chan struct{}, string, error) {
	out := make(chan struct{}, 1)
	url := s.store.Target().URL()
	s.mu.Lock()
	lost, refused := s.fromCache, s.refused
	s.mu.Unlock()
	var re *untrustedError
	if errors.As(refused, &re) {
		log.Warn("started from the cached mesh, which a trusted signer signed: etcd's is refused", "url", url, "cache", s.cache, "revision", s.revision(), "reason", re.reason)
		// etcd answered: follow it from the cached revision (the watch logs
		// the refusal of each newer push it is shown).
		lost = nil
	} else if lost != nil {
		log.Warn("etcd unreachable: started from the cached mesh", "url", url, "cache", s.cache, "revision", s.revision(), "error", lost)
	}
	s.setConnected(lost == nil)
	go func() {
		defer s.store.Close()
		connected := lost == nil
		backoff := s.backoffMin
		for {
			if !connected {
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				}
				if err := s.probe(ctx); err != nil {
					backoff = min(2*backoff, s.backoffMax)
					continue
				}
				log.Info("etcd back", "url", url, "resuming_after_revision", s.revision())
				connected, backoff = true, s.backoffMin
				s.setConnected(true)
			}
			err := s.follow(ctx, log, out)
			if ctx.Err() != nil {
				return
			}
			if !errors.Is(err, errRewatch) {
				log.Warn("lost etcd: the node runs on the last applied mesh", "url", url, "error", err)
				connected = false
				s.setConnected(false)
			}
		}
	}()
	return out, "etcd", nil
}

// errRewatch ends a watch that must start again from the revision read.
var errRewatch = errors.New("watch again")

// follow watches the mesh after the revision read and refreshes for each
// push, until ctx ends (nil), etcd is lost (its error) or the watch must
// start again (errRewatch).
func (s *etcdSource) follow(ctx context.Context, log *slog.Logger, out chan<- struct{}) error {
	rev := s.revision()
	if rev == 0 {
		// Nothing to resume after (a cache without a revision).
		if err := s.refresh(ctx, log, out); err != nil {
			return err
		}
		if rev = s.revision(); rev == 0 {
			return fmt.Errorf("%s: no mesh there", s.store.Target().URL())
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	prefix := s.store.Target().Prefix
	// clientv3's Watch returns only once etcd has created the watch: with
	// an etcd that went away since the read it would wait for its return,
	// probing nothing. It waits aside; the cancel on return ends it.
	created := make(chan clientv3.WatchChan, 1)
	go func() {
		created <- s.store.Client().Watch(wctx, prefix+"/", clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	}()
	var wch clientv3.WatchChan // nil, which never delivers, until created
	tick := time.NewTicker(s.probeEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case wch = <-created:
			created = nil
		case <-tick.C:
			if err := s.probe(ctx); err != nil {
				return err
			}
		case resp, ok := <-wch:
			if !ok {
				return errors.New("the watch closed")
			}
			if resp.CompactRevision != 0 {
				log.Info("etcd compacted past our revision: reading the whole mesh again", "url", s.store.Target().URL(), "revision", rev, "compacted", resp.CompactRevision)
				if err := s.refresh(ctx, log, out); err != nil {
					return err
				}
				return errRewatch
			}
			if err := resp.Err(); err != nil {
				return err
			}
			// Every push rewrites PREFIX/mesh in its transaction: a batch
			// without it is no whole push.
			for _, ev := range resp.Events {
				if string(ev.Kv.Key) == prefix+"/mesh" {
					if err := s.refresh(ctx, log, out); err != nil {
						return err
					}
					break
				}
			}
		}
	}
}

// readCache reads the cache file, which must be private (see
// config.ReadPrivate): it says what the node's peers are.
func readCache(path string) ([]byte, error) { return config.ReadPrivate(path) }

// writeCache replaces the cache file by rename (mode 0600), so that a
// crash leaves the old cache or the new one.
func writeCache(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// cachedSigner is the key of the "# signed by KEY" line meshstore.Pull
// writes after the first when the signature verified, nil if none.
func cachedSigner(data []byte) ed25519.PublicKey {
	_, rest, _ := strings.Cut(string(data), "\n")
	second, _, _ := strings.Cut(rest, "\n")
	k, ok := strings.CutPrefix(second, "# signed by ")
	if !ok {
		return nil
	}
	pub, err := config.ParseSigner(k)
	if err != nil {
		return nil
	}
	return pub
}

// cachedRevision is the revision in the leading comment meshstore writes
// ("# mesh from URL at revision N ..."), 0 if none.
func cachedRevision(data []byte) int64 {
	first, _, _ := strings.Cut(string(data), "\n")
	_, after, ok := strings.Cut(first, " at revision ")
	if !ok {
		return 0
	}
	var rev int64
	fmt.Sscanf(after, "%d", &rev)
	return rev
}
