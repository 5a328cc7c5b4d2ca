//go:build !linux

package kpath

import "net/netip"

// Path is the kernel fast path; elsewhere than on Linux it cannot be
// opened.
type Path struct{}

// Open fails: the kernel path needs Linux.
func Open([]int) (*Path, error) { return nil, ErrUnsupported }

// Close does nothing.
func (p *Path) Close() error { return nil }

// Put fails.
func (p *Path) Put(Rule) error { return ErrUnsupported }

// Delete does nothing.
func (p *Path) Delete(Flow) error { return nil }

// Drain reads nothing.
func (p *Path) Drain(func(*Record)) (int, error) { return 0, nil }

// Stats are zero.
func (p *Path) Stats() (Stats, error) { return Stats{}, nil }

// HostHas is false.
func HostHas(netip.Addr) bool { return false }

// Unavailable is true: the kernel path needs Linux.
func Unavailable(error) bool { return true }

// Monotonic is zero.
func Monotonic() int64 { return 0 }

// Interfaces fails.
func Interfaces(netip.Addr) ([]int, error) { return nil, ErrUnsupported }
