package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

// TestLogFormat: -log-format takes text or json; anything else is a usage
// error (exit 2) before anything is touched.
func TestLogFormat(t *testing.T) {
	mesh, key := writeMesh(t, "")
	code, _, stderr := runCmd(t, "", "-config", mesh, "-key", key, "-log-format", "xml")
	if code != 2 || !strings.Contains(stderr, `-log-format "xml": want text or json`) {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	for _, tc := range []struct {
		format string
		ok     func(line string) bool
	}{
		{"text", func(l string) bool {
			return strings.Contains(l, "msg=\"peer up\"") && strings.Contains(l, "iface=peer0")
		}},
		{"json", func(l string) bool {
			var m map[string]any
			return json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "peer up" && m["iface"] == "peer0"
		}},
	} {
		var b bytes.Buffer
		slog.New(logHandler(tc.format, &b, slog.LevelInfo)).Info("peer up", "iface", "peer0")
		if line := strings.TrimSpace(b.String()); !tc.ok(line) {
			t.Errorf("%s: %q", tc.format, line)
		}
	}
}
