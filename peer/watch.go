package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchFile reports on the returned channel each change of the file at
// path, once the file has stayed quiet for quiet: one report for the
// several writes, renames and chmods of one save. Reports do not pile up
// (the channel holds one).
//
// It watches the directory, not the file, and filters by name: editors and
// config-management tools replace a file by writing another one and
// renaming it over the old, and a watch on the file itself would follow the
// old inode and miss every change after the first. It stops when ctx ends.
func watchFile(ctx context.Context, path string, quiet time.Duration, log *slog.Logger) (<-chan struct{}, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("-watch: %w", err)
	}
	dir, name := filepath.Dir(path), filepath.Base(path)
	if err := w.Add(dir); err != nil {
		w.Close()
		return nil, fmt.Errorf("-watch: watching %s: %w", dir, err)
	}
	out := make(chan struct{}, 1)
	go func() {
		defer w.Close()
		timer := time.NewTimer(quiet)
		timer.Stop()
		for {
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if filepath.Base(ev.Name) == name {
					timer.Reset(quiet)
				}
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				if errors.Is(err, fsnotify.ErrEventOverflow) {
					// Events were lost: one of them may have been ours.
					timer.Reset(quiet)
					continue
				}
				log.Warn("watching the mesh file", "dir", dir, "error", err)
			case <-timer.C:
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	}()
	return out, nil
}
