package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(childDirEnv); dir != "" {
		os.Exit(runChild(dir))
	}
	goleak.VerifyTestMain(m)
}

// openTest opens a store that is closed when the test ends.
func openTest(t *testing.T, opts Options) *Store {
	t.Helper()
	s, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// modes are the two ways tests open a store.
func modes(t *testing.T) map[string]Options {
	return map[string]Options{
		"disk":   {Dir: t.TempDir(), SmallMemory: true},
		"memory": {InMemory: true, SmallMemory: true},
	}
}

func mustPut(t *testing.T, k *Keyspace, key, val string, opts ...PutOption) {
	t.Helper()
	if err := k.Put([]byte(key), []byte(val), opts...); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func wantValue(t *testing.T, k *Keyspace, key, want string) {
	t.Helper()
	got, err := k.Get([]byte(key))
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if string(got) != want {
		t.Fatalf("Get(%q) = %q, want %q", key, got, want)
	}
}

func wantNotFound(t *testing.T, k *Keyspace, key string) {
	t.Helper()
	_, err := k.Get([]byte(key))
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(%q) error = %v, want ErrNotFound", key, err)
	}
}

func TestPutGetDelete(t *testing.T) {
	for name, opts := range modes(t) {
		t.Run(name, func(t *testing.T) {
			k := openTest(t, opts).Keyspace("calls")
			wantNotFound(t, k, "c1")

			mustPut(t, k, "c1", "ringing")
			wantValue(t, k, "c1", "ringing")
			mustPut(t, k, "c1", "answered")
			wantValue(t, k, "c1", "answered")

			// The returned value is a copy the caller may keep and modify.
			got, _ := k.Get([]byte("c1"))
			got[0] = 'X'
			wantValue(t, k, "c1", "answered")

			if err := k.Delete([]byte("c1")); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			wantNotFound(t, k, "c1")
			if err := k.Delete([]byte("never-written")); err != nil {
				t.Fatalf("Delete of a missing key: %v", err)
			}
		})
	}
}

func TestNotFoundError(t *testing.T) {
	k := openTest(t, Options{InMemory: true, SmallMemory: true}).Keyspace("peers")
	_, err := k.Get([]byte("12D3KooW"))
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("error = %v, want ErrNotFound", err)
	}
	if want := `store: get "12D3KooW" in peers: not found`; err.Error() != want {
		t.Fatalf("error = %q, want %q", err, want)
	}
}

func TestKeyspacesIsolated(t *testing.T) {
	s := openTest(t, Options{InMemory: true, SmallMemory: true})
	a, b, ab := s.Keyspace("a"), s.Keyspace("b"), s.Keyspace("ab")

	mustPut(t, a, "k", "from a")
	mustPut(t, b, "k", "from b")
	mustPut(t, ab, "k", "from ab")
	mustPut(t, a, "b\x00k", "a key that looks like keyspace ab")

	wantValue(t, a, "k", "from a")
	wantValue(t, b, "k", "from b")
	wantValue(t, ab, "k", "from ab")

	if err := a.Delete([]byte("k")); err != nil {
		t.Fatal(err)
	}
	wantNotFound(t, a, "k")
	wantValue(t, b, "k", "from b")

	for _, tc := range []struct {
		k    *Keyspace
		want int
	}{{a, 1}, {b, 1}, {ab, 1}} {
		if n, err := tc.k.Count(nil); err != nil || n != tc.want {
			t.Errorf("keyspace %s: Count = %d, %v; want %d", tc.k.name, n, err, tc.want)
		}
	}
}

func TestKeyspaceNamePanics(t *testing.T) {
	s := openTest(t, Options{InMemory: true, SmallMemory: true})
	for _, name := range []string{"", "a\x00b", "!badger!head"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Keyspace(%q) did not panic", name)
				}
			}()
			s.Keyspace(name)
		}()
	}
}

func TestIterate(t *testing.T) {
	for name, opts := range modes(t) {
		t.Run(name, func(t *testing.T) {
			s := openTest(t, opts)
			k := s.Keyspace("regs")
			for _, key := range []string{"user/carol", "user/alice", "trunk/1", "user/bob", "users", "user/"} {
				mustPut(t, k, key, "v:"+key)
			}
			mustPut(t, s.Keyspace("regs2"), "user/zed", "other keyspace")

			var keys []string
			err := k.Iterate([]byte("user/"), func(key, val []byte) error {
				if string(val) != "v:"+string(key) {
					t.Errorf("key %q has value %q", key, val)
				}
				keys = append(keys, string(key))
				return nil
			})
			if err != nil {
				t.Fatalf("Iterate: %v", err)
			}
			want := []string{"user/", "user/alice", "user/bob", "user/carol"}
			if fmt.Sprint(keys) != fmt.Sprint(want) {
				t.Fatalf("keys = %q, want %q", keys, want)
			}

			if n, err := k.Count([]byte("user/")); err != nil || n != 4 {
				t.Fatalf("Count(user/) = %d, %v; want 4", n, err)
			}
			if n, err := k.Count(nil); err != nil || n != 6 {
				t.Fatalf("Count(nil) = %d, %v; want 6", n, err)
			}
			if n, err := k.Count([]byte("nobody/")); err != nil || n != 0 {
				t.Fatalf("Count(nobody/) = %d, %v; want 0", n, err)
			}

			stop := errors.New("stop here")
			calls := 0
			err = k.Iterate(nil, func(key, _ []byte) error {
				calls++
				if string(key) == "user/" {
					return stop
				}
				return nil
			})
			if err != stop {
				t.Fatalf("Iterate error = %v, want the callback's error unchanged", err)
			}
			if calls != 2 { // "trunk/1", then "user/"
				t.Fatalf("callback ran %d times, want 2", calls)
			}
		})
	}
}

func TestIterateCallbackMayUseStore(t *testing.T) {
	s := openTest(t, Options{InMemory: true, SmallMemory: true})
	k := s.Keyspace("k")
	mustPut(t, k, "a", "1")
	mustPut(t, k, "b", "2")
	err := k.Iterate(nil, func(key, val []byte) error {
		if _, err := k.Get(key); err != nil {
			return err
		}
		return k.Put(append([]byte("copy/"), key...), val)
	})
	if err != nil {
		t.Fatalf("Iterate: %v", err)
	}
	wantValue(t, k, "copy/a", "1")
}
func TestJSONRoundTrip(t *testing.T) {
	type peer struct {
		ID    string   `json:"id"`
		Addrs []string `json:"addrs"`
		Score float64  `json:"score"`
	}
	k := openTest(t, Options{InMemory: true, SmallMemory: true}).Keyspace("peers")
	in := peer{ID: "12D3KooW", Addrs: []string{"/ip4/10.0.0.1/udp/5060"}, Score: 0.5}
	if err := PutJSON(k, []byte(in.ID), in, WithTTL(time.Hour)); err != nil {
		t.Fatal(err)
	}
	out, err := GetJSON[peer](k, []byte(in.ID))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(out) != fmt.Sprint(in) {
		t.Fatalf("GetJSON = %+v, want %+v", out, in)
	}

	if _, err := GetJSON[peer](k, []byte("missing")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetJSON of a missing key: error = %v, want ErrNotFound", err)
	}
	mustPut(t, k, "garbage", "{not json")
	if _, err := GetJSON[peer](k, []byte("garbage")); err == nil || !strings.Contains(err.Error(), "decode json") {
		t.Fatalf("GetJSON of invalid JSON: error = %v, want a decode error", err)
	}
	if err := PutJSON(k, []byte("bad"), func() {}); err == nil || !strings.Contains(err.Error(), "encode json") {
		t.Fatalf("PutJSON of a func: error = %v, want an encode error", err)
	}
}
func TestSizeLimits(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opts     Options
		maxValue int
	}{
		{"memory-small", Options{InMemory: true, SmallMemory: true}, 128<<10 - 1},
		{"memory-default", Options{InMemory: true}, 1<<20 - 1},
		{"disk-small", Options{Dir: t.TempDir(), SmallMemory: true}, 8 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := openTest(t, tc.opts).Keyspace("blobs")
			if err := k.Put([]byte("max"), make([]byte, tc.maxValue)); err != nil {
				t.Fatalf("Put of a %d-byte value: %v", tc.maxValue, err)
			}
			if got, err := k.Get([]byte("max")); err != nil || len(got) != tc.maxValue {
				t.Fatalf("Get = %d bytes, %v", len(got), err)
			}
			err := k.Put([]byte("over"), make([]byte, tc.maxValue+1))
			want := fmt.Sprintf(`store: put "over" in blobs: value of %d bytes: exceeds the %d-byte limit`, tc.maxValue+1, tc.maxValue)
			if err == nil || err.Error() != want {
				t.Fatalf("Put of an oversized value: error = %v, want %q", err, want)
			}
		})
	}

	k := openTest(t, Options{InMemory: true, SmallMemory: true}).Keyspace("blobs")
	limit := maxKeySize - len("blobs\x00")
	if err := k.Put(bytes.Repeat([]byte("k"), limit), []byte("v")); err != nil {
		t.Fatalf("Put with a %d-byte key: %v", limit, err)
	}
	long := bytes.Repeat([]byte("k"), limit+1)
	for op, err := range map[string]error{"Put": k.Put(long, nil), "Delete": k.Delete(long)} {
		if err == nil || !strings.Contains(err.Error(), "exceeds the") || len(err.Error()) > 200 {
			t.Errorf("%s with a %d-byte key: error = %v, want a short size error", op, limit+1, err)
		}
	}
}
