package config

import (
	"fmt"
	"strings"
)

// Error is a problem in a mesh file (or in a file it names, such as a key
// file), located at a line when there is one.
//
// Error() is "FILE:LINE: message", or "FILE: message" when Line is 0.
type Error struct {
	File string // path of the file at fault
	Line int    // 1-based line, 0 if the problem has no single line
	Msg  string // what is wrong, in words for the person editing the file
	Err  error  // underlying cause, if any (for errors.Is); already part of Msg
}

// Error formats e as FILE:LINE: message.
func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Unwrap returns the underlying cause, if any.
func (e *Error) Unwrap() error { return e.Err }

// ErrorList is every problem Parse found in one mesh file, in line order. It
// is never empty when returned as an error. errors.As(err, &target) with a
// target of type *Error yields the first problem.
type ErrorList []*Error

// Error returns one "FILE:LINE: message" per problem, separated by newlines.
func (l ErrorList) Error() string {
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap returns the problems, so errors.As and errors.Is see each of them.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}
