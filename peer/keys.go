package main

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/peer-vpn/peer/keys"
)

func cmdGenkey(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("genkey", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	k, err := keys.NewPrivate()
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, k.Base64())
	return err
}

func cmdPubkey(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("pubkey", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 1024)).ReadString('\n')
	if err != nil && err != io.EOF {
		return fmt.Errorf("reading private key from stdin: %w", err)
	}
	k, err := keys.ParsePrivate(strings.TrimSpace(line))
	if err != nil {
		return usageError{fmt.Errorf("stdin: %w", err)}
	}
	_, err = fmt.Fprintln(stdout, k.Public())
	return err
}
