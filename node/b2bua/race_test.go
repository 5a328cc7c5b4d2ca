//go:build race

package b2bua

// raceEnabled: under the race detector the compiler keeps less on the
// stack (the bytes crypto/rand fills go to the heap), so allocation
// counts differ.
const raceEnabled = true
