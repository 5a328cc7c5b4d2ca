// Command callmesh runs and manages a callmesh node: a management unit of a
// federation that virtualizes the voice services of many SIP providers.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/callmesh/callmesh/node"
	"github.com/emiago/sipgo/sip"
	"github.com/spf13/cobra"
)

// maxUDPMessage is the largest SIP message sent over UDP (the IPv4 UDP
// payload limit).
const maxUDPMessage = 65507

// exitNotFound is the exit code for what a command looks up and does not
// find: an unknown user, a user registered nowhere.
const exitNotFound = 3

// exitError carries a process exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErr makes a bad-input error that exits with code 2.
func usageErr(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

func main() {
	// sipgo's UDP size limit is a package global: set once, here. Its
	// default (1300 bytes) also refuses responses, which have no other
	// transport to go to (RFC 3261 §18.2.2): a 200 OK to a REGISTER lists
	// every binding. Responses may use IP fragmentation; requests larger
	// than 1300 bytes are sent over TCP by the node itself (§18.1.1).
	sip.UDPMTUSize = maxUDPMessage + 200
	root := newRoot()
	err := root.Execute()
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "callmesh:", err)
	os.Exit(exitCode(err))
}

// exitCode maps an error to the process exit code: 2 for bad input
// (configuration, flags), 1 for anything else.
func exitCode(err error) int {
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		return ee.code
	case errors.Is(err, node.ErrConfig):
		return 2
	}
	return 1
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "callmesh",
		Short:         "A federation of management units that virtualizes SIP voice providers",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       node.Version,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: 2, err: fmt.Errorf("%w\n%s", err, c.UsageString())}
	})
	root.AddCommand(newInitCmd(), newRunCmd(), newStatusCmd(), newDemoCmd(), newFederationKeyCmd(), newLocateCmd(), newUserCmd(), newQualityCmd(), newCallsCmd(), newSLACmd(), newRouteCmd(), newElectCmd(), newProviderCmd())
	return root
}
