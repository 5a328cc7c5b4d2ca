package accounts

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The rights an account's Allow list holds.
const (
	// RightP2P permits calls to other users of the federation.
	RightP2P = "p2p"
	// RightConference permits joining or starting a conference.
	RightConference = "conference"
	// RightExternal is the prefix of "external:PREFIX", which permits calls
	// to telephone numbers starting with PREFIX (digits, optionally a
	// leading '+'); "external:*" permits every number.
	RightExternal = "external:"
	// DenyPrefix in front of an external right ("!external:+1900") excludes
	// the numbers it covers. Among the external entries that match a
	// number, the longest prefix decides; "*" is the shortest.
	DenyPrefix = "!"
)

// maxPrefixLen bounds external prefixes and destination numbers.
const maxPrefixLen = 32

// Kind is the kind of session a request starts.
type Kind int

// The kinds of session.
const (
	KindP2P        Kind = iota + 1 // a call to another user of the federation
	KindConference                 // a conference
	KindExternal                   // a call to a telephone number
)

func (k Kind) String() string {
	switch k {
	case KindP2P:
		return "p2p"
	case KindConference:
		return "conference"
	case KindExternal:
		return "external"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Request describes a request that starts a session, for Permit.
type Request struct {
	Kind Kind
	// Destination is the telephone number of an external call: digits with
	// an optional leading '+', matched against prefixes as given (the
	// caller normalises, e.g. to E.164). Other kinds ignore it.
	Destination string
	// ActiveCalls is how many calls the user has in progress now.
	ActiveCalls int
}

var (
	// ErrNotAllowed is returned (wrapped in a *PermitError) when the
	// account lacks the right a request needs.
	ErrNotAllowed = errors.New("not allowed")
	// ErrTooManyCalls is returned (wrapped in a *PermitError) when the user
	// already has max_calls calls in progress.
	ErrTooManyCalls = errors.New("too many calls")
	// ErrBadDestination is returned (wrapped in a *PermitError) for an
	// external call whose destination is not a telephone number.
	ErrBadDestination = errors.New("bad destination")
)

// PermitError says why Permit refused a request. It wraps ErrNotAllowed,
// ErrTooManyCalls or ErrBadDestination.
type PermitError struct {
	User    string
	Request Request
	// Missing is the right the request needs: "p2p", "conference", or
	// "external:" followed by the destination (any prefix of it would do).
	// Empty unless Err is ErrNotAllowed and no entry matched.
	Missing string
	// DeniedBy is the entry that excluded the destination
	// ("!external:+1900"), if one did.
	DeniedBy string
	MaxCalls int
	Err      error
}

func (e *PermitError) Error() string {
	prefix := fmt.Sprintf("user %q: %v", e.User, e.Err)
	switch {
	case e.Err == ErrTooManyCalls:
		return fmt.Sprintf("%s: %d active, max_calls %d", prefix, e.Request.ActiveCalls, e.MaxCalls)
	case e.Err == ErrBadDestination:
		return fmt.Sprintf("%s %q: want digits with an optional leading '+'", prefix, e.Request.Destination)
	case e.DeniedBy != "":
		return fmt.Sprintf("%s: %s is excluded by %q", prefix, e.Request.Destination, e.DeniedBy)
	case e.Request.Kind == KindExternal:
		return fmt.Sprintf("%s: no right external:PREFIX covers %s", prefix, e.Request.Destination)
	case e.Missing != "":
		return fmt.Sprintf("%s: missing right %q", prefix, e.Missing)
	}
	return fmt.Sprintf("%s: unknown session kind %v", prefix, e.Request.Kind)
}

// Unwrap returns the sentinel error.
func (e *PermitError) Unwrap() error { return e.Err }

// Permit decides whether the account may start the session req describes:
// the right for its kind first (for an external call, the longest external
// prefix matching the destination decides), then the limit of concurrent
// calls (req.ActiveCalls >= MaxCalls refuses). It returns nil or a
// *PermitError. The balance is not looked at.
func (a Account) Permit(req Request) error {
	refuse := func(missing, deniedBy string, err error) error {
		return &PermitError{User: a.Name, Request: req, Missing: missing, DeniedBy: deniedBy, MaxCalls: a.MaxCalls, Err: err}
	}
	switch req.Kind {
	case KindP2P, KindConference:
		need := req.Kind.String()
		if !a.has(need) {
			return refuse(need, "", ErrNotAllowed)
		}
	case KindExternal:
		if !isNumber(req.Destination) {
			return refuse("", "", ErrBadDestination)
		}
		r, ok := a.externalMatch(req.Destination)
		switch {
		case !ok:
			return refuse(RightExternal+req.Destination, "", ErrNotAllowed)
		case r.deny:
			return refuse("", r.text, ErrNotAllowed)
		}
	default:
		return refuse("", "", ErrNotAllowed)
	}
	if req.ActiveCalls >= a.MaxCalls {
		return refuse("", "", ErrTooManyCalls)
	}
	return nil
}

func (a Account) has(right string) bool {
	for _, s := range a.Allow {
		if s == right {
			return true
		}
	}
	return false
}

// externalMatch returns the external entry with the longest prefix of
// number; on a tie (only possible in an account that failed validation)
// the deny entry wins.
func (a Account) externalMatch(number string) (right, bool) {
	var best right
	found := false
	for _, s := range a.Allow {
		r, err := parseRight(s)
		if err != nil || !r.external || !strings.HasPrefix(number, r.prefix) {
			continue
		}
		if !found || len(r.prefix) > len(best.prefix) || len(r.prefix) == len(best.prefix) && r.deny {
			best, found = r, true
		}
	}
	return best, found
}

// right is a parsed entry of Allow.
type right struct {
	text     string
	external bool
	deny     bool
	prefix   string // of an external right; "" for "*"
}

// parseRight parses one entry of Allow; the error says what is wrong.
func parseRight(s string) (right, error) {
	r := right{text: s}
	body := s
	if strings.HasPrefix(body, DenyPrefix) {
		r.deny = true
		body = body[len(DenyPrefix):]
	}
	switch {
	case !r.deny && (body == RightP2P || body == RightConference):
		return r, nil
	case strings.HasPrefix(body, RightExternal):
		r.external = true
		p := body[len(RightExternal):]
		if p == "*" {
			return r, nil
		}
		if !isNumber(p) {
			return r, errors.New("want external:PREFIX with PREFIX digits, optionally after a leading '+', or *")
		}
		r.prefix = p
		return r, nil
	case r.deny:
		return r, errors.New("only external rights can be excluded with '!'")
	}
	return r, errors.New("want p2p, conference, external:PREFIX or !external:PREFIX")
}

// ValidateRight checks one entry of an Allow list.
func ValidateRight(s string) error {
	if _, err := parseRight(s); err != nil {
		return fieldErr("user.allow", s, "%v", err)
	}
	return nil
}

// validateAllow checks every entry and rejects duplicates and a prefix both
// granted and excluded.
func validateAllow(allow []string) error {
	seen := make(map[string]bool, len(allow))
	for i, s := range allow {
		field := fmt.Sprintf("user.allow[%d]", i)
		r, err := parseRight(s)
		if err != nil {
			return fieldErr(field, s, "%v", err)
		}
		if seen[s] {
			return fieldErr(field, s, "listed twice")
		}
		seen[s] = true
		if r.external {
			other := DenyPrefix + s
			if r.deny {
				other = s[len(DenyPrefix):]
			}
			if seen[other] {
				return fieldErr(field, s, "contradicts %q", other)
			}
		}
	}
	return nil
}

// isNumber reports whether s is a telephone number or prefix: an optional
// '+' and 1 to 32 digits in all.
func isNumber(s string) bool {
	digits := strings.TrimPrefix(s, "+")
	return len(s) <= maxPrefixLen && allDigits(digits)
}
