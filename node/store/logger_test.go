package store

import (
	"context"
	"log/slog"
	"sync"
	"testing"
)

// recordingHandler keeps every record it is given.
type recordingHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}

func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

func (h *recordingHandler) badgerRecords() []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []slog.Record
	for _, r := range h.records {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "component" && a.Value.String() == "badger" {
				out = append(out, r)
				return false
			}
			return true
		})
	}
	return out
}

func TestBadgerLogsThroughSlog(t *testing.T) {
	h := &recordingHandler{}
	s, err := Open(Options{Dir: t.TempDir(), SmallMemory: true, Logger: slog.New(h)})
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, s.Keyspace("k"), "a", "1")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	recs := h.badgerRecords()
	if len(recs) == 0 {
		t.Fatal("no Badger log records reached the slog handler")
	}
	for _, r := range recs {
		if r.Level > slog.LevelDebug {
			t.Errorf("Badger record at %v, want Debug or below: %q", r.Level, r.Message)
		}
		if n := len(r.Message); n > 0 && r.Message[n-1] == '\n' {
			t.Errorf("message keeps its trailing newline: %q", r.Message)
		}
	}
}

func TestBadgerLoggerLevels(t *testing.T) {
	h := &recordingHandler{}
	l := badgerLogger{slog.New(h)}
	l.Errorf("e %d\n", 1)
	l.Warningf("w")
	l.Infof("i")
	l.Debugf("d")
	want := []slog.Level{slog.LevelError, slog.LevelWarn, slog.LevelDebug, levelBadgerDebug}
	if len(h.records) != len(want) {
		t.Fatalf("got %d records, want %d", len(h.records), len(want))
	}
	for i, r := range h.records {
		if r.Level != want[i] {
			t.Errorf("record %d (%q) at %v, want %v", i, r.Message, r.Level, want[i])
		}
	}
	if h.records[0].Message != "e 1" {
		t.Errorf("message = %q, want %q", h.records[0].Message, "e 1")
	}
}
