//go:build !linux

package main

// hostMemory is the host's RAM in bytes, 0 when unknown.
func hostMemory() uint64 { return 0 }
