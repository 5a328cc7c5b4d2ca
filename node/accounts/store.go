package accounts

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/callmesh/callmesh/node/store"
)

// Store keeps a node's accounts in one keyspace of its store, keyed by
// name. Every change is validated and written durably. It is safe for
// concurrent use; changes are serialised so that a read-modify-write never
// loses another's update.
//
// Accounts read are kept decoded in memory (every INVITE reads its
// caller's), and every change through the store replaces or drops its
// copy. A store must therefore be the keyspace's only writer while it is
// in use.
type Store struct {
	ks       *store.Keyspace
	mu       sync.Mutex // held across every read-modify-write
	onChange func(name string, deleted bool)

	cmu   sync.RWMutex
	cache map[string]Account
	gen   uint64 // bumped by every change, so a read racing one is not kept
}

// cacheMax bounds the accounts kept decoded; past it an arbitrary one goes.
const cacheMax = 100_000

// OnChange sets fn to be called after every stored change of an account
// (deleted: the account was removed), for instance to publish where
// accounts live. Set it before the store is used; fn must not block.
func (s *Store) OnChange(fn func(name string, deleted bool)) { s.onChange = fn }

func (s *Store) changed(name string, deleted bool) {
	if s.onChange != nil {
		s.onChange(name, deleted)
	}
}

// NewStore returns the accounts kept in ks.
func NewStore(ks *store.Keyspace) *Store { return &Store{ks: ks} }

// Add stores a new account and returns it as stored: Created is set to the
// current time when zero. A name already taken gives an error wrapping
// ErrExists; an invalid account a *FieldError.
func (s *Store) Add(a Account) (Account, error) {
	if a.Created.IsZero() {
		a.Created = time.Now().UTC()
	}
	if err := a.Validate(); err != nil {
		return Account{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch _, err := s.get(a.Name); {
	case err == nil:
		return Account{}, fmt.Errorf("user %q: %w", a.Name, ErrExists)
	case !errors.Is(err, ErrNotFound):
		return Account{}, err
	}
	if err := s.put(a); err != nil {
		return Account{}, err
	}
	return a, nil
}

// Get returns the account called name, or an error wrapping ErrNotFound.
func (s *Store) Get(name string) (Account, error) {
	if err := ValidateName(name); err != nil {
		return Account{}, err
	}
	return s.get(name)
}

func (s *Store) get(name string) (Account, error) {
	s.cmu.RLock()
	a, ok := s.cache[name]
	gen := s.gen
	s.cmu.RUnlock()
	if ok && !s.ks.Closed() { // a closed store answers with its error, as uncached
		return a.clone(), nil
	}
	a, err := s.load(name)
	if err != nil {
		return Account{}, err
	}
	s.cmu.Lock()
	if s.gen == gen {
		if s.cache == nil {
			s.cache = make(map[string]Account)
		}
		if len(s.cache) >= cacheMax {
			for k := range s.cache {
				delete(s.cache, k)
				break
			}
		}
		s.cache[name] = a.clone()
	}
	s.cmu.Unlock()
	return a, nil
}

// forget drops a changed account's decoded copy; called after the change
// is written.
func (s *Store) forget(name string) {
	s.cmu.Lock()
	delete(s.cache, name)
	s.gen++
	s.cmu.Unlock()
}

// clone copies what a caller could change in place.
func (a Account) clone() Account {
	a.Allow = slices.Clone(a.Allow)
	return a
}

func (s *Store) load(name string) (Account, error) {
	data, err := s.ks.Get([]byte(name))
	if errors.Is(err, store.ErrNotFound) {
		return Account{}, fmt.Errorf("user %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return Account{}, fmt.Errorf("user %q: %w", name, err)
	}
	return decode(name, data)
}

func decode(name string, data []byte) (Account, error) {
	var a Account
	if err := json.Unmarshal(data, &a); err != nil {
		return Account{}, fmt.Errorf("user %q: stored record: %w", name, err)
	}
	return a, nil
}

// List returns every account, sorted by name (bytewise, so case-sensitive:
// "Zoe" before "adam").
func (s *Store) List() ([]Account, error) {
	var out []Account
	err := s.ks.Iterate(nil, func(key, val []byte) error {
		a, err := decode(string(key), val)
		if err != nil {
			return err
		}
		out = append(out, a)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("user list: %w", err)
	}
	return out, nil
}

// Update applies fn to the account called name and stores the result if
// fn returns nil and the result is valid; fn's error is returned
// unchanged. The name cannot be changed. It returns the account as stored.
func (s *Store) Update(name string, fn func(*Account) error) (Account, error) {
	if err := ValidateName(name); err != nil {
		return Account{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.get(name)
	if err != nil {
		return Account{}, err
	}
	if err := fn(&a); err != nil {
		return Account{}, err
	}
	if a.Name != name {
		return Account{}, fieldErr("user.name", a.Name, "cannot be changed (was %q)", name)
	}
	if err := a.Validate(); err != nil {
		return Account{}, err
	}
	if err := s.put(a); err != nil {
		return Account{}, err
	}
	return a, nil
}

// SetPassword replaces the credentials of the account called name with
// those of password for realm.
func (s *Store) SetPassword(name, realm, password string) error {
	_, err := s.Update(name, func(a *Account) error { return a.SetPassword(realm, password) })
	return err
}

// Delete removes the account called name, or returns an error wrapping
// ErrNotFound.
func (s *Store) Delete(name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Existence only: a record that no longer decodes can still be removed.
	if _, err := s.ks.Get([]byte(name)); errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("user %q: %w", name, ErrNotFound)
	} else if err != nil {
		return fmt.Errorf("user %q: %w", name, err)
	}
	err := s.ks.Delete([]byte(name), store.Durable())
	s.forget(name)
	if err != nil {
		return fmt.Errorf("user %q: %w", name, err)
	}
	s.changed(name, true)
	return nil
}

func (s *Store) put(a Account) error {
	err := store.PutJSON(s.ks, []byte(a.Name), a, store.Durable())
	// After the write: a read that fetched the old record before it either
	// sees the generation moved and keeps nothing, or kept it and loses it here.
	s.forget(a.Name)
	if err != nil {
		return fmt.Errorf("user %q: %w", a.Name, err)
	}
	s.changed(a.Name, false)
	return nil
}
