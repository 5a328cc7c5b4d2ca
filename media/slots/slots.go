// Package slots is a table of values addressed by small integer indexes
// that are reused once released: the relay's poller names its sockets
// so in the kernel's epoll events, and the SIP transaction layer's timer
// wheel names transactions so in its entries, so that neither holds a
// pointer where the collector would follow it. The users keep a
// generation in their values to tell a reused index from the one they
// knew.
package slots

// Table holds values of T by index. The zero value is an empty table. Not
// safe for concurrent use.
type Table[T any] struct {
	items []T
	free  []uint32 // indexes released, the latest last
}

// Take returns a free index and its value: the last one released, as its
// last user left it (a generation to move on, say), or a new zero value.
// The pointer is valid until the next Take.
func (t *Table[T]) Take() (uint32, *T) {
	if n := len(t.free); n > 0 {
		i := t.free[n-1]
		t.free = t.free[:n-1]
		return i, &t.items[i]
	}
	var zero T
	t.items = append(t.items, zero)
	i := uint32(len(t.items) - 1)
	return i, &t.items[i]
}

// At returns the value at index i, taken or released. The pointer is
// valid until the next Take.
func (t *Table[T]) At(i uint32) *T { return &t.items[i] }

// Put releases index i for a later Take; its value stays as it is.
func (t *Table[T]) Put(i uint32) { t.free = append(t.free, i) }
