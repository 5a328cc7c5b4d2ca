package node

import (
	"testing"
	"time"

	"github.com/callmesh/callmesh/node/sipedge"
	"github.com/callmesh/callmesh/node/store"
)

// The in-memory copy answers as Badger would: what was saved, without the
// expired bindings, unaffected by a caller's changes to what it got, and
// gone when the AOR's bindings are removed; a second store on the same
// keyspace (a restarted node) reads the same from Badger.
func TestBindingStoreCache(t *testing.T) {
	s, err := store.Open(store.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ks := s.Keyspace(keyspaceBindings)
	b := newBindingStore(ks)
	now := time.Now()
	aor := "alice@example.org"
	saved := []sipedge.Binding{
		{AOR: aor, URI: "sip:alice@192.0.2.1:5060", Expires: now.Add(time.Hour)},
		{AOR: aor, URI: "sip:alice@192.0.2.2:5060", Expires: now.Add(-time.Second)},
	}
	if err := b.Save(aor, saved); err != nil {
		t.Fatal(err)
	}
	got, err := b.Load(aor)
	if err != nil || len(got) != 1 || got[0].URI != saved[0].URI {
		t.Fatalf("Load = %v, %v; want the unexpired binding", got, err)
	}
	got[0].URI = "sip:changed@192.0.2.9"
	if again, _ := b.Load(aor); len(again) != 1 || again[0].URI != saved[0].URI {
		t.Fatalf("Load after the caller's change = %v", again)
	}
	if fresh, err := newBindingStore(ks).Load(aor); err != nil || len(fresh) != 1 || fresh[0].URI != saved[0].URI {
		t.Fatalf("Badger holds %v, %v; want what the cache holds", fresh, err)
	}
	if err := b.Save(aor, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Load(aor); err != nil || len(got) != 0 {
		t.Fatalf("Load after removal = %v, %v", got, err)
	}
	if got, _ := newBindingStore(ks).Load(aor); len(got) != 0 {
		t.Fatalf("Badger still holds %v", got)
	}
	if got, err := b.Load("nobody@example.org"); err != nil || got != nil {
		t.Fatalf("unknown AOR: %v, %v", got, err)
	}
	// Bindings that have all expired are not kept.
	gone := "bob@example.org"
	if err := b.Save(gone, []sipedge.Binding{{AOR: gone, URI: "sip:bob@192.0.2.3", Expires: now.Add(-time.Minute)}}); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Load(gone); err != nil || len(got) != 0 {
		t.Fatalf("expired AOR: %v, %v", got, err)
	}
	b.mu.RLock()
	n := len(b.cached)
	b.mu.RUnlock()
	if n != 0 {
		t.Errorf("%d AORs cached after removal, a miss and an expiry, want 0", n)
	}
}
