package store

import (
	"errors"
	"log/slog"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// DefaultGCInterval is the value-log GC schedule used when
// Options.GCInterval is zero.
const DefaultGCInterval = 10 * time.Minute

// gcDiscardRatio is passed to badger.DB.RunValueLogGC: a value-log file is
// rewritten when at least this fraction of it is stale.
const gcDiscardRatio = 0.5

// Options configures Open. The zero value is not valid: either Dir or
// InMemory must be set.
type Options struct {
	// Dir is the data directory. It is created with mode 0700 if missing.
	// It is ignored when InMemory is set.
	Dir string
	// InMemory keeps everything in memory and writes nothing to disk; for
	// tests where durability is not under test.
	InMemory bool
	// SmallMemory selects small memtables, caches and value-log files so
	// that dozens of stores fit in one process (tests, simulations). An idle
	// store then costs about 1.4 MiB of heap instead of the ~86 MiB of
	// Badger's defaults. It lowers the largest value a Put accepts to 8 MiB
	// on disk (1 GiB by default) and just under 128 KiB in memory (1 MiB by
	// default).
	SmallMemory bool
	// GCInterval is the value-log GC schedule: 0 means DefaultGCInterval,
	// a negative value turns GC off. There is no GC for InMemory stores.
	GCInterval time.Duration
	// Logger receives the store's and Badger's log records. Badger's Info
	// records are logged at slog.LevelDebug and its Debug records one step
	// below that (slog.LevelDebug-4). Nil discards everything.
	Logger *slog.Logger
}

// Validate reports every invalid field, each error naming its field.
func (o Options) Validate() error {
	var errs []error
	if !o.InMemory {
		switch {
		case strings.TrimSpace(o.Dir) == "":
			errs = append(errs, errors.New("store.dir: required unless in_memory"))
		case strings.ContainsRune(o.Dir, 0):
			errs = append(errs, errors.New("store.dir: must not contain a NUL byte"))
		}
	}
	return errors.Join(errs...)
}

// maxKeySize is Badger's limit on a stored key, keyspace prefix included.
const maxKeySize = 65000

// maxValueSize is the largest value Badger accepts with options bo: values
// must fit in one value-log file, and in-memory stores, which have no value
// log, must keep every value inline, i.e. strictly below the value
// threshold. Badger itself accepts a value of exactly the threshold in
// memory and then panics in its write goroutine, taking the process down.
func maxValueSize(bo badger.Options) int64 {
	if bo.InMemory {
		return bo.ValueThreshold - 1
	}
	return bo.ValueLogFileSize
}

// gcInterval returns the effective GC schedule; 0 means no GC.
func (o Options) gcInterval() time.Duration {
	switch {
	case o.InMemory || o.GCInterval < 0:
		return 0
	case o.GCInterval == 0:
		return DefaultGCInterval
	default:
		return o.GCInterval
	}
}

// badgerOptions translates o into Badger options. Outside the SmallMemory
// preset they are Badger's defaults with logging redirected to logger.
func (o Options) badgerOptions(logger *slog.Logger) badger.Options {
	var bo badger.Options
	if o.InMemory {
		bo = badger.DefaultOptions("").WithInMemory(true)
	} else {
		bo = badger.DefaultOptions(o.Dir)
	}
	bo.Logger = nil // Badger skips formatting entirely for a nil logger.
	if logger != nil {
		bo.Logger = badgerLogger{logger}
	}
	if o.SmallMemory {
		smallMemory(&bo)
	}
	return bo
}

// smallMemory shrinks the Badger options whose cost is paid up front or grows
// with load.
//
// The dominant idle cost is the memtable's skiplist arena, a Go heap slice of
// about 1.3 × MemTableSize allocated when the memtable is created, so it is
// cut from 64 MB to 1 MB. The value threshold must then stay below 15% of
// the memtable (Badger's batch limit); larger values go to the value log,
// whose files are memory-mapped rather than on the heap. In-memory Badger
// has no value log and refuses values from the threshold up.
func smallMemory(bo *badger.Options) {
	bo.MemTableSize = 1 << 20
	bo.NumMemtables = 2           // one active, one being flushed
	bo.ValueThreshold = 128 << 10 // also the value size limit when InMemory
	bo.BaseTableSize = 512 << 10
	bo.BaseLevelSize = 4 << 20
	// Each Ristretto cache costs ~330 KB however small its budget (a 32K-slot
	// buffer and metrics), more than the data a test store holds. Without
	// compression, blocks are read straight from the memory-mapped tables
	// and need no block cache; without an index cache, table indexes and
	// Bloom filters stay resident, which costs little for small stores.
	bo.Compression = options.None
	bo.BlockCacheSize = 0
	bo.IndexCacheSize = 0
	bo.ValueLogFileSize = 8 << 20
	bo.NumCompactors = 2 // Badger's minimum unless compaction is off
	bo.NumLevelZeroTables = 3
	bo.NumLevelZeroTablesStall = 8
	bo.NumGoroutines = 2
	// Metrics are process-wide expvar maps keyed by directory that are never
	// pruned; with many short-lived stores they only accumulate.
	bo.MetricsEnabled = false
}
