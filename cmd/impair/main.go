// Command impair is the UDP impairment relay of the fault tests, and a flood
// generator.
//
//	impair -listen ADDR -upstream ADDR [-loss P] [-dup P] [-reorder N] [-reorder-share P]
//	       [-max-hold D] [-delay D] [-seed N] [-stats FILE]
//	impair flood -target ADDR -pubkey KEY [-garbage N] [-initiations M] [-rate PPS]
//	       [-burst N] [-seed N] [-bind ADDR] [-timeout D]
//
// The relay forwards datagrams from the upstream to the last client seen and
// from anyone else to the upstream, impaired as the flags say (see package
// impair). It writes its counters as JSON on SIGUSR1 and, before exiting, on
// SIGTERM or SIGINT: to -stats FILE (replaced atomically) or to stdout.
//
// flood sends -garbage random datagrams and -initiations handshake
// initiations (valid mac1 for -pubkey, from a key that is in no mesh) to
// -target at -rate datagrams per second on average, in bursts of -burst, prints
// what it did as JSON and exits.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/peer-vpn/peer/impair"
	"github.com/peer-vpn/peer/keys"
)

// defaultReorderShare is the share of datagrams held back when -reorder is
// given without -reorder-share.
const defaultReorderShare = 0.25

// errUsage marks errors that are the command line's fault (exit status 2).
var errUsage = errors.New("usage")

func main() {
	var err error
	if len(os.Args) > 1 && os.Args[1] == "flood" {
		err = cmdFlood(os.Args[2:], os.Stdout, os.Stderr)
	} else {
		err = cmdRelay(os.Args[1:], os.Stdout, os.Stderr)
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, "impair:", err)
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "impair:", err)
		os.Exit(1)
	}
}

func usageErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}

// parseAddr accepts host:port, [v6]:port and names that resolve.
func parseAddr(flagName, s string) (netip.AddrPort, error) {
	if s == "" {
		return netip.AddrPort{}, usageErr("-%s is required", flagName)
	}
	a, err := net.ResolveUDPAddr("udp", s)
	if err != nil {
		return netip.AddrPort{}, usageErr("-%s %q: %v", flagName, s, err)
	}
	ap := a.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

func cmdRelay(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("impair", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "", "address to listen on, host:port")
	upstream := fs.String("upstream", "", "address to relay to, host:port")
	var cfg impair.Config
	fs.Float64Var(&cfg.Loss, "loss", 0, "probability that a datagram is dropped")
	fs.Float64Var(&cfg.Duplicate, "dup", 0, "probability that a datagram is sent twice")
	fs.IntVar(&cfg.Reorder, "reorder", 0, "reordering window: a datagram held back is overtaken by up to N-1 later ones")
	fs.Float64Var(&cfg.ReorderShare, "reorder-share", defaultReorderShare, "share of datagrams held back (with -reorder)")
	fs.DurationVar(&cfg.MaxHold, "max-hold", impair.DefaultMaxHold, "longest a datagram is held back")
	fs.DurationVar(&cfg.Delay, "delay", 0, "delay added to every datagram")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "seed of every random decision")
	statsFile := fs.String("stats", "", "write the counters here as JSON (default: stdout)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	shareSet := false
	fs.Visit(func(f *flag.Flag) { shareSet = shareSet || f.Name == "reorder-share" })
	if cfg.Reorder < 2 && !shareSet {
		cfg.ReorderShare = 0
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	la, err := parseAddr("listen", *listen)
	if err != nil {
		return err
	}
	ua, err := parseAddr("upstream", *upstream)
	if err != nil {
		return err
	}
	r, err := impair.Listen(la, ua, cfg)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	done := make(chan error, 1)
	go func() { done <- r.Run() }()
	fmt.Fprintf(stderr, "impair: relaying %v <-> %v: loss %v dup %v reorder %d share %v max-hold %v delay %v seed %d\n",
		r.Addr(), ua, cfg.Loss, cfg.Duplicate, cfg.Reorder, cfg.ReorderShare, cfg.MaxHold, cfg.Delay, cfg.Seed)
	for {
		select {
		case err := <-done:
			writeStats(r.Stats(), *statsFile, stdout, stderr)
			return err
		case s := <-sigs:
			if s == syscall.SIGUSR1 {
				writeStats(r.Stats(), *statsFile, stdout, stderr)
				continue
			}
			r.Close()
			err := <-done
			if werr := writeStats(r.Stats(), *statsFile, stdout, stderr); err == nil {
				err = werr
			}
			return err
		}
	}
}

// writeStats writes st as one line of JSON to file (through a temporary
// file and a rename, so a reader never sees half of it) or to stdout.
func writeStats(st impair.Stats, file string, stdout, stderr io.Writer) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if file == "" {
		_, err = stdout.Write(b)
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), ".impair-stats-*")
	if err == nil {
		_, err = tmp.Write(b)
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp.Name(), file)
		}
		if err != nil {
			os.Remove(tmp.Name())
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "impair: writing stats:", err)
	}
	return err
}

func cmdFlood(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("impair flood", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := fs.String("target", "", "address to flood, host:port")
	pubkey := fs.String("pubkey", "", "the target's public key (base64), so initiations carry a valid mac1")
	bind := fs.String("bind", "", "local address to send from (default: any)")
	var cfg impair.FloodConfig
	fs.IntVar(&cfg.Garbage, "garbage", 0, "random datagrams to send")
	fs.IntVar(&cfg.Initiations, "initiations", 0, "handshake initiations from a key in no mesh to send")
	fs.IntVar(&cfg.Rate, "rate", 10_000, "datagrams per second, on average")
	fs.IntVar(&cfg.Burst, "burst", impair.DefaultFloodBurst, "datagrams sent back to back between pauses")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "seed of the order, the garbage and the sender indexes")
	timeout := fs.Duration("timeout", 0, "give up after this long (default: twice the time the rate needs, plus 10s)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if cfg.Target, err = parseAddr("target", *target); err != nil {
		return err
	}
	if *pubkey != "" {
		if cfg.TargetKey, err = keys.ParsePublic(*pubkey); err != nil {
			return usageErr("-pubkey: %v", err)
		}
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	var local *net.UDPAddr
	if *bind != "" {
		a, err := parseAddr("bind", *bind)
		if err != nil {
			return err
		}
		local = net.UDPAddrFromAddrPort(a)
	}
	conn, err := net.ListenUDP("udp", local)
	if err != nil {
		return fmt.Errorf("flood socket: %w", err)
	}
	defer conn.Close()
	if *timeout <= 0 {
		need := time.Duration(cfg.Garbage+cfg.Initiations) * time.Second / time.Duration(cfg.Rate)
		*timeout = 2*need + 10*time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	fmt.Fprintf(stderr, "impair flood: %d garbage datagrams and %d initiations from %v to %v at %d/s in bursts of %d\n",
		cfg.Garbage, cfg.Initiations, conn.LocalAddr(), cfg.Target, cfg.Rate, cfg.Burst)
	res, err := impair.Flood(ctx, conn, cfg)
	b, jerr := json.Marshal(res)
	if jerr == nil {
		fmt.Fprintf(stdout, "%s\n", b)
	}
	if err != nil {
		return fmt.Errorf("flood stopped early: %w", err)
	}
	return nil
}
