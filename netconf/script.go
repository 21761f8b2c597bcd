package netconf

import (
	"strings"
)

// Script renders cmds as a POSIX sh script: a #!/bin/sh line, header as
// comment lines (each line prefixed with "# "; it should name the
// interface), `set -e`, and one line per command with every argument that
// needs it single-quoted.
//
// Script makes the result safe to run twice. Commands that remove state
// (`ip ... del|delete|flush`, `route ... delete`, `ifconfig ... -alias|delete`,
// `nft delete ...`, also when wrapped by InNamespace) get `|| true`, so a
// route or table that is already gone does not stop the script. A darwin
// `route ... add ...`, which fails when the route exists, is rendered as
// `route ... change ... 2>/dev/null || route ... add ...`, so an existing
// route is updated and a real failure of add still stops the script. An
// `ip ... rule add ARGS`, which adds a second copy of an existing rule, is
// rendered as the line `ip ... rule del ARGS 2>/dev/null || true` followed
// by the add, so the script leaves one copy (Run executes the plain add: a
// node cleans up leftovers itself before it starts). The other Linux
// commands from this package (`ip ... replace`, `sysctl -w`, the nft script
// that replaces its table) are idempotent as they are.
func Script(header string, cmds [][]string) string {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	header = strings.ReplaceAll(header, "\r", "")
	if header != "" {
		for line := range strings.SplitSeq(header, "\n") {
			b.WriteString(strings.TrimRight("# "+line, " "))
			b.WriteByte('\n')
		}
	}
	b.WriteString("set -e\n")
	for _, c := range cmds {
		if len(c) == 0 {
			continue
		}
		switch kind(c) {
		case teardown:
			b.WriteString(Quote(c))
			b.WriteString(" || true")
		case routeAdd:
			change := append([]string(nil), c...)
			change[verbIndex(c)] = "change"
			b.WriteString(Quote(change))
			b.WriteString(" 2>/dev/null || ")
			b.WriteString(Quote(c))
		case ruleAdd:
			del := append([]string(nil), c...)
			del[verbIndex(c)] = "del"
			b.WriteString(Quote(del))
			b.WriteString(" 2>/dev/null || true\n")
			b.WriteString(Quote(c))
		default:
			b.WriteString(Quote(c))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// Quote renders one command as a shell command line, quoting each argument
// that contains anything beyond letters, digits and @%+=:,./_- (and an
// empty argument) in single quotes. The first word is also quoted if it
// contains '=', which sh would take as a variable assignment.
func Quote(cmd []string) string {
	var b strings.Builder
	for i, arg := range cmd {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(quoteArg(arg, i == 0))
	}
	return b.String()
}

func quoteArg(s string, first bool) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("@%+=:,./_-", c) >= 0) || first && c == '=' {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

type cmdKind int

const (
	plain cmdKind = iota
	teardown
	routeAdd
	ruleAdd
)

// unwrap strips an `ip netns exec NS` prefix and returns the index of the
// inner command's first word.
func unwrap(c []string) int {
	if len(c) >= 4 && c[0] == "ip" && c[1] == "netns" && c[2] == "exec" {
		return 4
	}
	return 0
}

// verbIndex returns the index in c of the command's verb (the action word:
// "add", "del", "replace", ...), or -1 if it has none.
func verbIndex(c []string) int {
	i := unwrap(c)
	if i >= len(c) {
		return -1
	}
	switch c[i] {
	case "ip":
		// ip [OPTIONS] OBJECT VERB ...; -n/-netns take an argument.
		i++
		for i < len(c) && strings.HasPrefix(c[i], "-") {
			if c[i] == "-n" || c[i] == "-netns" {
				i++
			}
			i++
		}
		i++ // the object
	case "route":
		// route [-flags] VERB ...
		i++
		for i < len(c) && strings.HasPrefix(c[i], "-") {
			i++
		}
	default:
		return -1
	}
	if i >= len(c) {
		return -1
	}
	return i
}

func kind(c []string) cmdKind {
	inner := c[unwrap(c):]
	if len(inner) == 0 {
		return plain
	}
	if inner[0] == "ifconfig" {
		for _, a := range inner[1:] {
			if a == "-alias" || a == "delete" {
				return teardown
			}
		}
		return plain
	}
	if inner[0] == "nft" {
		// nft [OPTIONS] delete ...; an nft script in one argument is
		// not a teardown even if it deletes (ours re-creates).
		for _, a := range inner[1:] {
			if !strings.HasPrefix(a, "-") {
				if a == "delete" {
					return teardown
				}
				break
			}
		}
		return plain
	}
	v := verbIndex(c)
	if v < 0 {
		return plain
	}
	switch verb := c[v]; {
	case verb == "del" || verb == "delete" || inner[0] == "ip" && verb == "flush":
		return teardown
	case inner[0] == "route" && verb == "add":
		return routeAdd
	case inner[0] == "ip" && verb == "add" && c[v-1] == "rule":
		return ruleAdd
	}
	return plain
}
