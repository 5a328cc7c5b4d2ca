package store

import (
	"errors"
	"strings"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

func TestTTLExpiryDeterministic(t *testing.T) {
	s := openTest(t, Options{InMemory: true, SmallMemory: true})
	k := s.Keyspace("reg")

	// Badger compares expiry with the wall clock; writing as if an hour
	// ago gives an entry whose one-minute TTL ran out long since.
	s.now = func() time.Time { return time.Now().Add(-time.Hour) }
	mustPut(t, k, "expired", "x", WithTTL(time.Minute))
	s.now = time.Now
	mustPut(t, k, "live", "y", WithTTL(time.Hour))

	wantNotFound(t, k, "expired")
	wantValue(t, k, "live", "y")
	if n, err := k.Count(nil); err != nil || n != 1 {
		t.Fatalf("Count = %d, %v; want 1", n, err)
	}
	err := k.Iterate(nil, func(key, _ []byte) error {
		if string(key) != "live" {
			t.Errorf("Iterate visited %q", key)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestTTLRoundsUpToWholeSeconds(t *testing.T) {
	s := openTest(t, Options{InMemory: true, SmallMemory: true})
	k := s.Keyspace("reg")
	base := time.Now().Add(time.Hour).Truncate(time.Second)
	s.now = func() time.Time { return base }

	for _, tc := range []struct {
		ttl  time.Duration
		want int64 // seconds after base
	}{{90 * time.Second, 90}, {1500 * time.Millisecond, 2}, {time.Nanosecond, 1}} {
		key := []byte(tc.ttl.String())
		if err := k.Put(key, nil, WithTTL(tc.ttl)); err != nil {
			t.Fatal(err)
		}
		var got uint64
		err := s.db.View(func(txn *badger.Txn) error {
			item, err := txn.Get(k.full(key))
			if err == nil {
				got = item.ExpiresAt()
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := uint64(base.Unix() + tc.want); got != want {
			t.Errorf("TTL %v: ExpiresAt = base%+d, want base%+d", tc.ttl, int64(got)-base.Unix(), tc.want)
		}
	}
}

func TestTTLInvalid(t *testing.T) {
	k := openTest(t, Options{InMemory: true, SmallMemory: true}).Keyspace("reg")
	for _, d := range []time.Duration{0, -time.Second} {
		if err := k.Put([]byte("k"), nil, WithTTL(d)); err == nil || !strings.Contains(err.Error(), "ttl") {
			t.Errorf("Put with TTL %v: error = %v, want a ttl error", d, err)
		}
	}
	if err := k.Delete([]byte("k"), WithTTL(time.Second)); err == nil {
		t.Error("Delete with a TTL succeeded")
	}
	wantNotFound(t, k, "k")
}

// TestTTLExpiresWithRealClock checks the end-to-end path against Badger's
// own clock, polling rather than sleeping for a fixed time.
func TestTTLExpiresWithRealClock(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a 1s TTL")
	}
	k := openTest(t, Options{Dir: t.TempDir(), SmallMemory: true}).Keyspace("reg")
	start := time.Now()
	mustPut(t, k, "k", "v", WithTTL(time.Second))
	if _, err := k.Get([]byte("k")); err != nil && time.Since(start) < 900*time.Millisecond {
		t.Fatalf("Get right after Put: %v", err)
	}
	deadline := start.Add(5 * time.Second)
	for {
		_, err := k.Get([]byte("k"))
		if errors.Is(err, ErrNotFound) {
			break
		}
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("entry with a 1s TTL still present after 5s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if elapsed := time.Since(start); elapsed < time.Second {
		t.Fatalf("entry with a 1s TTL expired after %v", elapsed)
	}
}
