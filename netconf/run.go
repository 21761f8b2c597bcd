package netconf

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// maxStderr bounds how much of a failing command's stderr is kept.
const maxStderr = 4096

// CommandError reports a command that could not be run or exited non-zero.
type CommandError struct {
	Args   []string // the command
	Stderr string   // its standard error, trimmed and possibly truncated
	Err    error    // from os/exec or the context
}

// Error names the command (shell-quoted) and includes its stderr.
func (e *CommandError) Error() string {
	msg := fmt.Sprintf("netconf: %s: %v", Quote(e.Args), e.Err)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

// Unwrap returns the underlying error.
func (e *CommandError) Unwrap() error { return e.Err }

// Run executes cmds in order, directly (no shell), stopping at the first
// failure, which it returns as a *CommandError naming the command and
// carrying its stderr. It stops before the next command once ctx is done; a
// running command is killed when ctx is done.
//
// Consecutive `ip` commands run as one `ip -batch -` process; an error still
// names the failing command.
func Run(ctx context.Context, cmds [][]string) error {
	for i := 0; i < len(cmds); {
		if j := batchEnd(cmds, i); j-i >= 2 {
			if err := runBatch(ctx, cmds[i:j], false); err != nil {
				return err
			}
			i = j
			continue
		}
		if err := run1(ctx, cmds[i]); err != nil {
			return err
		}
		i++
	}
	return nil
}

// RunTolerant executes every command in cmds, in order, even after failures,
// and returns the failures joined with errors.Join (nil if none). It is meant
// for teardown, where one missing route must not keep the others installed.
// It still stops early once ctx is done, reporting that.
func RunTolerant(ctx context.Context, cmds [][]string) error {
	var errs []error
	for i := 0; i < len(cmds); {
		var err error
		if j := batchEnd(cmds, i); j-i >= 2 {
			err = runBatch(ctx, cmds[i:j], true)
			i = j
		} else {
			err = run1(ctx, cmds[i])
			i++
		}
		if err != nil {
			if many, ok := err.(interface{ Unwrap() []error }); ok {
				errs = append(errs, many.Unwrap()...)
			} else {
				errs = append(errs, err)
			}
			if ctx.Err() != nil {
				break
			}
		}
	}
	return errors.Join(errs...)
}

func run1(ctx context.Context, c []string) error {
	if len(c) == 0 || c[0] == "" {
		return &CommandError{Args: c, Err: errors.New("empty command")}
	}
	if err := ctx.Err(); err != nil {
		return &CommandError{Args: c, Err: err}
	}
	cmd := exec.CommandContext(ctx, c[0], c[1:]...)
	var stderr capped
	cmd.Stderr = &stderr
	// Do not wait forever for a grandchild that inherited stderr.
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = fmt.Errorf("%w (%v)", ctxErr, err)
		}
		return &CommandError{Args: c, Stderr: strings.TrimSpace(stderr.String()), Err: err}
	}
	return nil
}

// capped is an io.Writer keeping the first maxStderr bytes written to it.
type capped struct {
	b         strings.Builder
	truncated bool
}

func (w *capped) Write(p []byte) (int, error) {
	if room := maxStderr - w.b.Len(); room < len(p) {
		w.truncated = true
		w.b.Write(p[:max(room, 0)])
	} else {
		w.b.Write(p)
	}
	return len(p), nil
}

func (w *capped) String() string {
	if w.truncated {
		return w.b.String() + "..."
	}
	return w.b.String()
}
