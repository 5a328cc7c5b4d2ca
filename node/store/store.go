// Package store is a small typed API over an embedded Badger database: named
// keyspaces of byte keys and values, optional TTLs and durable writes, JSON
// helpers, and a value-log GC goroutine owned by the Store.
package store

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

var (
	// ErrNotFound is returned (wrapped) when a key does not exist or has
	// expired.
	ErrNotFound = errors.New("not found")
	// ErrLocked is returned (wrapped) by Open when the directory is held by
	// another process or by another open Store in this process.
	ErrLocked = errors.New("in use by another process (badger directory lock)")
	// ErrClosed is returned (wrapped) by operations on a closed Store.
	ErrClosed = errors.New("store closed")
)

// badgerLockMessage is the text of Badger's error when the directory's
// flock is held; Badger has no sentinel for it.
const badgerLockMessage = "Cannot acquire directory lock"

// Store is an open Badger database. It is safe for concurrent use.
type Store struct {
	db   *badger.DB
	name string // directory, or "(in-memory)", for errors and logs
	log  *slog.Logger

	// maxValue is the largest value Badger accepts. Sizes are checked
	// before Badger sees them because Badger's own error for an oversized
	// key or value embeds a hex dump of its first kilobyte.
	maxValue int64

	// now is the clock that TTLs are computed from. Badger compares
	// expiry times against the wall clock, so tests move this one back to
	// create already-expired entries without waiting.
	now func() time.Time

	mu       sync.Mutex
	closed   bool
	inflight sync.WaitGroup // operations that passed the closed check
	closing  atomic.Bool    // closed, readable without mu (Closed)

	stopGC   chan struct{}
	gcDone   sync.WaitGroup
	gcPasses atomic.Int64 // completed GC passes, for tests

	closeOnce sync.Once
}

// Open opens (creating if needed) the store described by opts.
func Open(opts Options) (*Store, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("store: invalid options: %w", err)
	}
	name := opts.Dir
	if opts.InMemory {
		name = "(in-memory)"
	} else if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("store %s: create directory: %w", name, err)
	}

	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	bo := opts.badgerOptions(opts.Logger)
	db, err := badger.Open(bo)
	if err != nil {
		if strings.Contains(err.Error(), badgerLockMessage) {
			log.Debug("store: directory lock held", "dir", name, "err", err)
			return nil, fmt.Errorf("store %s: %w", name, ErrLocked)
		}
		return nil, fmt.Errorf("store %s: open badger: %w", name, err)
	}

	s := &Store{
		db:       db,
		name:     name,
		log:      log,
		maxValue: maxValueSize(bo),
		now:      time.Now,
		stopGC:   make(chan struct{}),
	}
	if iv := opts.gcInterval(); iv > 0 {
		s.gcDone.Go(func() { s.runGC(iv) })
	}
	return s, nil
}

// Close stops the GC goroutine and closes the database, waiting for
// operations and any value-log rewrite in progress to finish. It is
// idempotent: later calls return nil. It must not be called from inside an
// Iterate callback.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.closing.Store(true)
		s.mu.Unlock()
		s.inflight.Wait()

		close(s.stopGC)
		s.gcDone.Wait()
		if cerr := s.db.Close(); cerr != nil {
			err = fmt.Errorf("store %s: close: %w", s.name, cerr)
		}
	})
	return err
}

// Sync flushes Badger's write-ahead log and value log to disk. It is a
// no-op for in-memory stores.
func (s *Store) Sync() error {
	release, err := s.acquire()
	if err != nil {
		return fmt.Errorf("store %s: sync: %w", s.name, err)
	}
	defer release()
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("store %s: sync: %w", s.name, err)
	}
	return nil
}

// Closed reports whether Close has begun: a cache in front of the store
// answers as the store would. It takes no lock, so a cache hit stays free
// of the store's own serialisation.
func (s *Store) Closed() bool { return s.closing.Load() }

// acquire registers an operation so that Close waits for it, or fails with
// ErrClosed. The caller must call release when done.
func (s *Store) acquire() (release func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	s.inflight.Add(1)
	return s.inflight.Done, nil
}

// runGC runs value-log GC passes every interval until Close.
func (s *Store) runGC(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stopGC:
			return
		case <-t.C:
		}
		s.gcPass()
		s.gcPasses.Add(1)
	}
}

// gcPass rewrites value-log files until Badger finds nothing worth
// rewriting, stopping early if Close is waiting.
func (s *Store) gcPass() {
	for rewrites := 0; ; rewrites++ {
		select {
		case <-s.stopGC:
			return
		default:
		}
		err := s.db.RunValueLogGC(gcDiscardRatio)
		switch {
		case err == nil:
			continue
		case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected):
			if rewrites > 0 {
				s.log.Debug("store: value-log GC pass", "dir", s.name, "rewrites", rewrites)
			}
		default:
			s.log.Warn("store: value-log GC failed", "dir", s.name, "rewrites", rewrites, "err", err)
		}
		return
	}
}
