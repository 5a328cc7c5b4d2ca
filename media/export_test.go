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

// KernelRules is the number of kernel rules the relay has installed (0
// without the kernel path).
func KernelRules(r *Relay) int {
	if r.kernel == nil {
		return 0
	}
	r.kernel.mu.Lock()
	defer r.kernel.mu.Unlock()
	return len(r.kernel.legs)
}
