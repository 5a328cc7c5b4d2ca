package accounts

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callmesh/callmesh/node/digest"
	"github.com/callmesh/callmesh/node/store"
)

func memoryStore(t *testing.T) (*Store, *store.Store) {
	t.Helper()
	st, err := store.Open(store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return NewStore(st.Keyspace("accounts")), st
}

func TestAccountStoreCRUD(t *testing.T) {
	s, _ := memoryStore(t)

	if list, err := s.List(); err != nil || len(list) != 0 {
		t.Fatalf("List of an empty store: %v, %v", list, err)
	}
	alice := testAccount(t, "alice")
	got, err := s.Add(alice)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Created.Equal(alice.Created) {
		t.Fatalf("Add changed Created: %v, want %v", got.Created, alice.Created)
	}
	if _, err := s.Add(alice); !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), `user "alice"`) {
		t.Fatalf("second Add: %v; want ErrExists naming the user", err)
	}
	// Names are case-sensitive.
	if _, err := s.Add(testAccount(t, "Alice")); err != nil {
		t.Fatalf("Add Alice next to alice: %v", err)
	}
	noCreated := testAccount(t, "zed")
	noCreated.Created = time.Time{}
	before := time.Now()
	if got, err := s.Add(noCreated); err != nil || got.Created.Before(before.Add(-time.Second)) || got.Created.Location() != time.UTC {
		t.Fatalf("Add without Created: %v, created %v", err, got.Created)
	}
	if _, err := s.Add(Account{Name: "bad", Class: "platinum"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Add of an invalid account: %v", err)
	}

	a, err := s.Get("alice")
	if err != nil {
		t.Fatal(err)
	}
	if a.Name != "alice" || a.Credentials != alice.Credentials || !a.Created.Equal(alice.Created) || !slices.Equal(a.Allow, alice.Allow) {
		t.Fatalf("Get = %+v, want %+v", a, alice)
	}
	if _, err := s.Get("nobody"); !errors.Is(err, ErrNotFound) || !errors.Is(err, store.ErrNotFound) ||
		err.Error() != `user "nobody": not found` {
		t.Fatalf("Get of a missing user: %v", err)
	}
	if _, err := s.Get(".bad"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Get of an invalid name: %v", err)
	}

	updated, err := s.Update("alice", func(a *Account) error {
		a.Class, a.Balance = Gold, 125000
		return nil
	})
	if err != nil || updated.Class != Gold || updated.Balance != 125000 {
		t.Fatalf("Update: %+v, %v", updated, err)
	}
	if a, _ := s.Get("alice"); a.Class != Gold || a.Balance != 125000 {
		t.Fatalf("after Update, Get = %+v", a)
	}
	boom := errors.New("boom")
	if _, err := s.Update("alice", func(a *Account) error { a.Class = Silver; return boom }); err != boom {
		t.Fatalf("Update returning an error: %v", err)
	}
	if _, err := s.Update("alice", func(a *Account) error { a.Class = "platinum"; return nil }); !errors.Is(err, ErrInvalid) ||
		!strings.Contains(err.Error(), "user.class") {
		t.Fatalf("Update to an invalid class: %v", err)
	}
	if _, err := s.Update("alice", func(a *Account) error { a.Name = "alicia"; return nil }); !errors.Is(err, ErrInvalid) ||
		!strings.Contains(err.Error(), "cannot be changed") {
		t.Fatalf("Update renaming: %v", err)
	}
	if a, _ := s.Get("alice"); a.Class != Gold {
		t.Fatalf("a failed Update changed the account: %+v", a)
	}
	if _, err := s.Update("nobody", func(*Account) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Update of a missing user: %v", err)
	}

	if err := s.SetPassword("alice", "other.realm", "new password"); err != nil {
		t.Fatal(err)
	}
	a, _ = s.Get("alice")
	if a.Realm != "other.realm" || a.Credentials != digest.NewCredentials("alice", "other.realm", "new password") {
		t.Fatalf("after SetPassword: realm %q credentials %+v", a.Realm, a.Credentials)
	}
	if err := s.SetPassword("alice", "other.realm", "a\nb"); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "user.password") {
		t.Fatalf("SetPassword with a newline: %v", err)
	}
	if err := s.SetPassword("nobody", "r", "pw"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetPassword of a missing user: %v", err)
	}

	for _, n := range []string{"bob", "Zoe", "carol", "alice2"} {
		if _, err := s.Add(testAccount(t, n)); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range list {
		names = append(names, a.Name)
	}
	if want := []string{"Alice", "Zoe", "alice", "alice2", "bob", "carol", "zed"}; !slices.Equal(names, want) {
		t.Fatalf("List names %v, want %v", names, want)
	}

	if err := s.Delete("alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("alice"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
	if err := s.Delete("alice"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Delete: %v", err)
	}
	if _, err := s.Get("alice2"); err != nil {
		t.Fatalf("Delete of alice touched alice2: %v", err)
	}
}

func TestAccountStoreCorruptRecord(t *testing.T) {
	s, st := memoryStore(t)
	if err := st.Keyspace("accounts").Put([]byte("broken"), []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("broken"); err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `user "broken"`) {
		t.Fatalf("Get of a corrupt record: %v", err)
	}
	if _, err := s.List(); err == nil || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("List with a corrupt record: %v", err)
	}
	if err := s.Delete("broken"); err != nil {
		t.Fatalf("Delete of a corrupt record: %v", err)
	}
	if list, err := s.List(); err != nil || len(list) != 0 {
		t.Fatalf("List after removing the corrupt record: %v, %v", list, err)
	}
}

func TestAccountStoreDurableReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	open := func() (*Store, *store.Store) {
		st, err := store.Open(store.Options{Dir: dir, SmallMemory: true, GCInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		return NewStore(st.Keyspace("accounts")), st
	}
	s, st := open()
	for _, n := range []string{"alice", "bob", "carol"} {
		if _, err := s.Add(testAccount(t, n)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Update("bob", func(a *Account) error { a.Balance = -5000; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("carol"); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("alice"); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Get on a closed store: %v", err)
	}

	s, st = open()
	defer st.Close()
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "alice" || list[1].Name != "bob" || list[1].Balance != -5000 {
		t.Fatalf("after reopening: %+v", list)
	}
	if want := testAccount(t, "alice"); list[0].Credentials != want.Credentials || !list[0].Created.Equal(want.Created) {
		t.Fatalf("alice after reopening: %+v", list[0])
	}
}

func TestAccountStoreConcurrentUpdate(t *testing.T) {
	s, _ := memoryStore(t)
	if _, err := s.Add(testAccount(t, "alice")); err != nil {
		t.Fatal(err)
	}
	const workers, rounds = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for range rounds {
				if _, err := s.Update("alice", func(a *Account) error { a.Balance += AmountScale; return nil }); err != nil {
					errs <- err
					return
				}
			}
			// Concurrent Adds of one name: exactly one wins.
			if _, err := s.Add(testAccount(t, "shared")); err != nil && !errors.Is(err, ErrExists) {
				errs <- fmt.Errorf("worker %d: %w", w, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	a, err := s.Get("alice")
	if err != nil {
		t.Fatal(err)
	}
	if want := Amount(workers * rounds * AmountScale); a.Balance != want {
		t.Fatalf("balance %s after %d concurrent increments of 1.00; want %s", a.Balance, workers*rounds, want)
	}
}

// Reads are served from decoded copies: a caller changing what it got
// changes nothing stored, and every change through the store is seen by
// the next read.
func TestAccountStoreCachedReads(t *testing.T) {
	s, _ := memoryStore(t)
	a := testAccount(t, "carol")
	a.Allow = []string{RightP2P, "external:+44"}
	if _, err := s.Add(a); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get("carol")
	if err != nil {
		t.Fatal(err)
	}
	got.Allow[0] = "conference"
	got.MaxCalls = 99
	again, err := s.Get("carol")
	if err != nil {
		t.Fatal(err)
	}
	if again.Allow[0] != RightP2P || again.MaxCalls != a.MaxCalls {
		t.Fatalf("a caller's change reached the store: allow %v, max_calls %d", again.Allow, again.MaxCalls)
	}
	if _, err := s.Update("carol", func(x *Account) error { x.MaxCalls = 7; return nil }); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get("carol"); err != nil || got.MaxCalls != 7 {
		t.Fatalf("after Update: max_calls %d, %v; want 7", got.MaxCalls, err)
	}
	if err := s.Delete("carol"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("carol"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after Delete: %v; want ErrNotFound", err)
	}
}
