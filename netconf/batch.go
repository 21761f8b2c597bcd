package netconf

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// A mesh of a thousand peers means ten thousand routes; one `ip` process
// each would take many seconds, so runs of plain `ip` commands go to a
// single `ip -batch -` instead.

// batchable reports whether c can be a line of `ip -batch`: an ip command
// whose arguments need no quoting, and whose family, if it names one with
// -4 or -6, is also carried by its first address. A batch line cannot
// carry -4/-6 (batchLine drops them), so `ip -6 rule add table main
// suppress_prefixlength 0`, which has no address, would become an IPv4
// rule in a batch; such commands run on their own.
func batchable(c []string) bool {
	if len(c) < 2 || c[0] != "ip" {
		return false
	}
	for _, a := range c[1:] {
		if a == "" || strings.ContainsAny(a, " \t\n\"'\\#") {
			return false
		}
	}
	// Options other than the family cannot go on a batch line, and
	// `ip netns exec` runs another program.
	args := c[1:]
	family := ""
	for len(args) > 0 && (args[0] == "-4" || args[0] == "-6") {
		family = args[0]
		args = args[1:]
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return false
	}
	if len(args) > 1 && args[0] == "netns" && args[1] == "exec" {
		return false
	}
	return family == "" || addressFamily(args) == family
}

// addressFamily returns "-4" or "-6" for the first argument that is an IP
// address or prefix, as ip would take the family from it, and "" if there
// is none.
func addressFamily(args []string) string {
	for _, a := range args {
		addr, err := netip.ParseAddr(a)
		if err != nil {
			p, perr := netip.ParsePrefix(a)
			if perr != nil {
				continue
			}
			addr = p.Addr()
		}
		if addr.Is4() {
			return "-4"
		}
		return "-6"
	}
	return ""
}

// batchEnd returns the end of the run of batchable commands starting at i.
func batchEnd(cmds [][]string, i int) int {
	j := i
	for j < len(cmds) && batchable(cmds[j]) {
		j++
	}
	return j
}

// batchLine is c without the leading "ip" and without -4/-6: a batch line
// cannot carry options, and ip takes the family from the address, which
// batchable made sure agrees.
func batchLine(c []string) string {
	args := c[1:]
	for len(args) > 0 && (args[0] == "-4" || args[0] == "-6") {
		args = args[1:]
	}
	return strings.Join(args, " ")
}

var failedLine = regexp.MustCompile(`Command failed -:(\d+)`)

// runBatch feeds cmds (all batchable) to one `ip -batch -`. Without force it
// stops at the first failing line and reports that command; with force it
// runs every line and reports the failures together.
func runBatch(ctx context.Context, cmds [][]string, force bool) error {
	args := []string{"-batch", "-"}
	if force {
		args = append([]string{"-force"}, args...)
	}
	var in strings.Builder
	for _, c := range cmds {
		in.WriteString(batchLine(c))
		in.WriteByte('\n')
	}
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Stdin = strings.NewReader(in.String())
	var stderr capped
	cmd.Stderr = &stderr
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if err == nil {
		return nil
	}
	msg := strings.TrimSpace(stderr.String())
	if ctxErr := ctx.Err(); ctxErr != nil {
		err = fmt.Errorf("%w (%v)", ctxErr, err)
	}
	var errs []error
	for _, m := range failedLine.FindAllStringSubmatch(msg, -1) {
		if n, _ := strconv.Atoi(m[1]); n >= 1 && n <= len(cmds) {
			errs = append(errs, &CommandError{Args: cmds[n-1], Stderr: msg, Err: err})
		}
	}
	if len(errs) == 0 {
		errs = append(errs, &CommandError{Args: append([]string{"ip"}, args...), Stderr: msg, Err: err})
	}
	if !force {
		return errs[0]
	}
	return errors.Join(errs...)
}
