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
			if SameName(h.Name(), name) && !yield(h) {
				return
			}
		}
	}
}

// Header returns msg's first header named name, or nil, matching names
// without regard to case as sipgo's GetHeader does. GetHeader lowers the
// name asked for and the name of every header before the match that is
// not one of a dozen it knows, each an allocation; Header allocates
// nothing. (Its own loop, not the first of Headers: the iterator costs
// about a seventh more on the hot paths that call Header.)
func Header(msg interface{ Headers() []sip.Header }, name string) sip.Header {
	for _, h := range msg.Headers() {
		if SameName(h.Name(), name) {
			return h
		}
	}
	return nil
}

// SameName reports whether two header names are the same but for case.
// Names are ASCII tokens (RFC 3261 §25.1), so the same name has the same
// length: comparing lengths first rules out most pairs before EqualFold.
func SameName(a, b string) bool { return len(a) == len(b) && strings.EqualFold(a, b) }

// PutHeaders installs hs on a message that has no headers yet, in one list
// of their exact number: one PrependHeader, one allocation, where
// appending one by one grows the list several times. PrependHeader points
// the message's quick accessors (Via(), Route(), ...) at the last header
// of each kind; appending leaves them at the first for the kinds that may
// repeat, Via, Route and Record-Route, and so does PutHeaders: a
// ReplaceHeader of the first one, with itself, points them back.
func PutHeaders(md *sip.MessageData, hs []sip.Header) {
	md.PrependHeader(hs...)
	var via, route, recordRoute bool
	for _, h := range hs {
		switch h.(type) {
		case *sip.ViaHeader:
			if !via {
				md.ReplaceHeader(h)
				via = true
			}
		case *sip.RouteHeader:
			if !route {
				md.ReplaceHeader(h)
				route = true
			}
		case *sip.RecordRouteHeader:
			if !recordRoute {
				md.ReplaceHeader(h)
				recordRoute = true
			}
		}
	}
}
