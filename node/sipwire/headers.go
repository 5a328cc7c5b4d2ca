package sipwire

import (
	"iter"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Headers yields msg's headers named name, in order, matching names
// without regard to case as sipgo's GetHeaders does. GetHeaders lowers
// every header's name to compare it, which allocates for each name it does
// not know, and builds a slice; Headers allocates nothing.
func Headers(msg interface{ Headers() []sip.Header }, name string) iter.Seq[sip.Header] {
	return func(yield func(sip.Header) bool) {
		for _, h := range msg.Headers() {
			if strings.EqualFold(h.Name(), name) && !yield(h) {
				return
			}
		}
	}
}
