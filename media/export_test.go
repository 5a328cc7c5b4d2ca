package media

import "github.com/callmesh/callmesh/media/kpath"

// FailKernelPath makes loading the kernel path fail with err until the
// returned function restores it. Not for parallel tests.
func FailKernelPath(err error) (restore func()) {
	old := openKernelPath
	openKernelPath = func([]int) (*kpath.Path, error) { return nil, err }
	return func() { openKernelPath = old }
}

// Worker is the index of the poller serving the session (Linux).
func Worker(s *Session) int { return s.io }
