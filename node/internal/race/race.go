//go:build race

// Package race tells whether the race detector is built in. Tests that
// count allocations need it: under the detector sync.Pool drops items at
// random and the compiler keeps less on the stack, so the counts differ
// from those of the build the node runs.
package race

// Enabled is true when built with -race.
const Enabled = true
