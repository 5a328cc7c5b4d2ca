//go:build race

package digest

// raceEnabled: the race detector makes sync.Pool drop items at random, so
// allocation counts are not reproducible.
const raceEnabled = true
