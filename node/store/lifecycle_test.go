package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestDurableWriteSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir, SmallMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, s.Keyspace("cdr"), "call-1", "billed", Durable())
	if err := s.Keyspace("cdr").Delete([]byte("none"), Durable()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := openTest(t, Options{Dir: dir, SmallMemory: true})
	wantValue(t, s2.Keyspace("cdr"), "call-1", "billed")
}

func TestSecondOpenIsLocked(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node-a")
	first := openTest(t, Options{Dir: dir, SmallMemory: true})

	second, err := Open(Options{Dir: dir, SmallMemory: true})
	if err == nil {
		second.Close()
		t.Fatal("second Open of a held directory succeeded")
	}
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("error = %v, want ErrLocked", err)
	}
	if want := "store " + dir + ": in use by another process (badger directory lock)"; err.Error() != want {
		t.Fatalf("error = %q, want %q", err, want)
	}
	// The failed Open must leave the first store working.
	mustPut(t, first.Keyspace("k"), "still", "works")
}

func TestReopenAfterClose(t *testing.T) {
	dir := t.TempDir()
	for i := range 3 {
		s, err := Open(Options{Dir: dir, SmallMemory: true})
		if err != nil {
			t.Fatalf("open #%d: %v", i+1, err)
		}
		k := s.Keyspace("n")
		if i > 0 {
			wantValue(t, k, fmt.Sprint(i-1), "v")
		}
		mustPut(t, k, fmt.Sprint(i), "v")
		if err := s.Close(); err != nil {
			t.Fatalf("close #%d: %v", i+1, err)
		}
	}
}

func TestOpenCreatesPrivateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	openTest(t, Options{Dir: dir, SmallMemory: true})
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		t.Fatalf("directory mode = %v, want no group/other access", perm)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		opts Options
		want string // "" = valid
	}{
		{Options{}, "store.dir: required unless in_memory"},
		{Options{Dir: "  "}, "store.dir: required unless in_memory"},
		{Options{Dir: "a\x00b"}, "store.dir: must not contain a NUL byte"},
		{Options{Dir: "data"}, ""},
		{Options{InMemory: true}, ""},
		{Options{InMemory: true, Dir: "ignored", GCInterval: -1}, ""},
	} {
		err := tc.opts.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: unexpected error %v", tc.opts, err)
		case tc.want != "" && (err == nil || err.Error() != tc.want):
			t.Errorf("%+v: error = %v, want %q", tc.opts, err, tc.want)
		}
	}
	if _, err := Open(Options{}); err == nil || !strings.Contains(err.Error(), "store.dir") {
		t.Errorf("Open with invalid options: error = %v, want it to name store.dir", err)
	}
}

func TestGCInterval(t *testing.T) {
	for _, tc := range []struct {
		opts Options
		want time.Duration
	}{
		{Options{Dir: "d"}, DefaultGCInterval},
		{Options{Dir: "d", GCInterval: time.Minute}, time.Minute},
		{Options{Dir: "d", GCInterval: -1}, 0},
		{Options{InMemory: true, GCInterval: time.Minute}, 0},
	} {
		if got := tc.opts.gcInterval(); got != tc.want {
			t.Errorf("%+v: gcInterval = %v, want %v", tc.opts, got, tc.want)
		}
	}
}

func TestGCGoroutineRunsAndStops(t *testing.T) {
	s, err := Open(Options{Dir: t.TempDir(), SmallMemory: true, GCInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("x"), 256<<10) // above the value threshold: goes to the value log
	k := s.Keyspace("blobs")
	for i := range 20 {
		if err := k.Put([]byte("b"), big); err != nil {
			t.Fatalf("put #%d: %v", i, err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.gcPasses.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("GC ran %d passes in 5s, want 3", s.gcPasses.Load())
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// goleak in TestMain checks that the goroutine is gone.
}

func TestClosed(t *testing.T) {
	for name, opts := range modes(t) {
		t.Run(name, func(t *testing.T) {
			s, err := Open(opts)
			if err != nil {
				t.Fatal(err)
			}
			k := s.Keyspace("k")
			mustPut(t, k, "a", "1")
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}

			_, getErr := k.Get([]byte("a"))
			_, countErr := k.Count(nil)
			_, jsonErr := GetJSON[int](k, []byte("a"))
			for op, err := range map[string]error{
				"Put":      k.Put([]byte("a"), nil),
				"Get":      getErr,
				"Delete":   k.Delete([]byte("a")),
				"Iterate":  k.Iterate(nil, func(_, _ []byte) error { return nil }),
				"Count":    countErr,
				"Sync":     s.Sync(),
				"PutJSON":  PutJSON(k, []byte("a"), 1),
				"GetJSON":  jsonErr,
				"Keyspace": s.Keyspace("new").Put([]byte("a"), nil),
			} {
				if !errors.Is(err, ErrClosed) {
					t.Errorf("%s after Close: error = %v, want ErrClosed", op, err)
				}
			}
		})
	}
}

func TestCloseDuringWrites(t *testing.T) {
	s, err := Open(Options{Dir: t.TempDir(), SmallMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	k := s.Keyspace("k")
	var wg sync.WaitGroup
	var puts atomic.Int64
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				err := k.Put(fmt.Appendf(nil, "%d/%d", w, i), []byte("v"))
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("Put: %v", err)
					return
				}
				puts.Add(1)
			}
		})
	}
	for puts.Load() < 100 { // close while the writers are busy
		runtime.Gosched()
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
}

func TestSync(t *testing.T) {
	for name, opts := range modes(t) {
		t.Run(name, func(t *testing.T) {
			s := openTest(t, opts)
			mustPut(t, s.Keyspace("k"), "a", "1")
			if err := s.Sync(); err != nil {
				t.Fatalf("Sync: %v", err)
			}
		})
	}
}
