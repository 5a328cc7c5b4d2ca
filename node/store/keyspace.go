package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// badgerReserved is the key prefix Badger keeps for its own entries.
const badgerReserved = "!badger!"

// Keyspace is a named partition of a Store. Its keys are stored as
// name + 0x00 + key, so keyspaces never see each other's keys.
type Keyspace struct {
	s      *Store
	name   string
	prefix []byte // name + 0x00
}

// Keyspace returns the keyspace called name. Names are constants at call
// sites, so an invalid one (empty, containing a 0x00 byte, or starting with
// Badger's reserved "!badger!") panics.
func (s *Store) Keyspace(name string) *Keyspace {
	switch {
	case name == "":
		panic("store: keyspace name is empty")
	case strings.IndexByte(name, 0) >= 0:
		panic(fmt.Sprintf("store: keyspace name %q contains a 0x00 byte", name))
	case strings.HasPrefix(name, badgerReserved):
		panic(fmt.Sprintf("store: keyspace name %q uses Badger's reserved prefix", name))
	}
	return &Keyspace{s: s, name: name, prefix: append([]byte(name), 0)}
}

// PutOption modifies a single Put or Delete.
type PutOption func(*putConfig)

type putConfig struct {
	ttl     time.Duration
	hasTTL  bool
	durable bool
}

// WithTTL makes the entry expire after d. Badger keeps expiry in whole
// seconds; the expiry time is rounded up, so the entry lives at least d and
// less than d+1s. d must be positive. Not valid for Delete.
func WithTTL(d time.Duration) PutOption {
	return func(c *putConfig) { c.ttl, c.hasTTL = d, true }
}

// Durable syncs the database to disk after the write, for data whose loss
// matters. Without it a write survives a crash of the process (Badger's
// write-ahead log is memory-mapped) but not necessarily a power failure or a
// kernel crash.
func Durable() PutOption {
	return func(c *putConfig) { c.durable = true }
}

// Closed reports whether the keyspace's store is closing or closed.
func (k *Keyspace) Closed() bool { return k.s.Closed() }

// Put stores val under key, replacing any previous value.
func (k *Keyspace) Put(key, val []byte, opts ...PutOption) error {
	if err := k.put(key, val, opts); err != nil {
		return fmt.Errorf("store: put %s: %w", k.describe(key), err)
	}
	return nil
}

func (k *Keyspace) put(key, val []byte, opts []PutOption) error {
	var cfg putConfig
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.hasTTL && cfg.ttl <= 0 {
		return fmt.Errorf("ttl %v: must be positive", cfg.ttl)
	}
	if err := k.checkKey(key); err != nil {
		return err
	}
	if n := int64(len(val)); n > k.s.maxValue {
		return fmt.Errorf("value of %d bytes: exceeds the %d-byte limit", n, k.s.maxValue)
	}
	release, err := k.s.acquire()
	if err != nil {
		return err
	}
	defer release()

	e := badger.NewEntry(k.full(key), val)
	if cfg.hasTTL {
		e.ExpiresAt = expiresAt(k.s.now(), cfg.ttl)
	}
	if err := k.s.db.Update(func(txn *badger.Txn) error { return txn.SetEntry(e) }); err != nil {
		return err
	}
	if cfg.durable {
		return k.s.db.Sync()
	}
	return nil
}

// expiresAt is the Badger expiry (Unix seconds) of an entry written at now
// with the given TTL, rounded up to a whole second.
func expiresAt(now time.Time, ttl time.Duration) uint64 {
	t := now.Add(ttl)
	sec := t.Unix()
	if t.Nanosecond() > 0 {
		sec++
	}
	return uint64(sec)
}

// Get returns a copy of the value stored under key, or an error wrapping
// ErrNotFound if there is none or it has expired.
func (k *Keyspace) Get(key []byte) ([]byte, error) {
	release, err := k.s.acquire()
	if err != nil {
		return nil, fmt.Errorf("store: get %s: %w", k.describe(key), err)
	}
	defer release()

	var val []byte
	err = k.s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(k.full(key))
		if err != nil {
			return err
		}
		val, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		err = ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: get %s: %w", k.describe(key), err)
	}
	return val, nil
}

// Delete removes key. Deleting a missing key is not an error. Only Durable
// is accepted as an option.
func (k *Keyspace) Delete(key []byte, opts ...PutOption) error {
	if err := k.delete(key, opts); err != nil {
		return fmt.Errorf("store: delete %s: %w", k.describe(key), err)
	}
	return nil
}

func (k *Keyspace) delete(key []byte, opts []PutOption) error {
	var cfg putConfig
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.hasTTL {
		return errors.New("ttl: not valid for delete")
	}
	if err := k.checkKey(key); err != nil {
		return err
	}
	release, err := k.s.acquire()
	if err != nil {
		return err
	}
	defer release()

	full := k.full(key)
	if err := k.s.db.Update(func(txn *badger.Txn) error { return txn.Delete(full) }); err != nil {
		return err
	}
	if cfg.durable {
		return k.s.db.Sync()
	}
	return nil
}

// Iterate calls fn for every live key starting with prefix, in key order.
// Keys are passed without the keyspace prefix. The slices are valid only
// during the call; copy them to keep them. If fn returns an error, Iterate
// stops and returns that error unchanged. fn sees a consistent snapshot; it
// may read and write the store but must not call Close.
func (k *Keyspace) Iterate(prefix []byte, fn func(key, val []byte) error) error {
	var fnErr error
	err := k.scan(prefix, func(item *badger.Item) error {
		key := item.Key()[len(k.prefix):]
		return item.Value(func(val []byte) error {
			fnErr = fn(key, val)
			return fnErr
		})
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("store: iterate %s: %w", k.describe(prefix), err)
	}
	return nil
}

// Count returns the number of live keys starting with prefix.
func (k *Keyspace) Count(prefix []byte) (int, error) {
	n := 0
	err := k.scan(prefix, func(*badger.Item) error {
		n++
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: count %s: %w", k.describe(prefix), err)
	}
	return n, nil
}

// scan visits the items under prefix in one read transaction. Expired and
// deleted entries are skipped by Badger's iterator.
func (k *Keyspace) scan(prefix []byte, visit func(*badger.Item) error) error {
	release, err := k.s.acquire()
	if err != nil {
		return err
	}
	defer release()

	full := k.full(prefix)
	return k.s.db.View(func(txn *badger.Txn) error {
		io := badger.DefaultIteratorOptions
		io.Prefix = full
		io.PrefetchValues = false // values are read in place, one at a time
		it := txn.NewIterator(io)
		defer it.Close()
		for it.Seek(full); it.ValidForPrefix(full); it.Next() {
			if err := visit(it.Item()); err != nil {
				return err
			}
		}
		return nil
	})
}

// checkKey rejects keys too long for Badger once prefixed.
func (k *Keyspace) checkKey(key []byte) error {
	if limit := maxKeySize - len(k.prefix); len(key) > limit {
		return fmt.Errorf("key of %d bytes: exceeds the %d-byte limit", len(key), limit)
	}
	return nil
}

// full returns the stored form of key: the keyspace prefix followed by key.
func (k *Keyspace) full(key []byte) []byte {
	out := make([]byte, 0, len(k.prefix)+len(key))
	return append(append(out, k.prefix...), key...)
}

// describe renders key for error messages, quoted and truncated.
func (k *Keyspace) describe(key []byte) string {
	const limit = 64
	if len(key) > limit {
		return strconv.Quote(string(key[:limit])) + "... in " + k.name
	}
	return strconv.Quote(string(key)) + " in " + k.name
}

// PutJSON stores the JSON encoding of v under key.
func PutJSON[T any](k *Keyspace, key []byte, v T, opts ...PutOption) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("store: put %s: encode json: %w", k.describe(key), err)
	}
	return k.Put(key, data, opts...)
}

// GetJSON decodes the JSON value stored under key into a T. A missing key
// gives an error wrapping ErrNotFound.
func GetJSON[T any](k *Keyspace, key []byte) (T, error) {
	var v T
	data, err := k.Get(key)
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(data, &v); err != nil {
		var zero T
		return zero, fmt.Errorf("store: get %s: decode json: %w", k.describe(key), err)
	}
	return v, nil
}
