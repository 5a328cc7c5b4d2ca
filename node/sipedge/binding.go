package sipedge

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Binding is one registered contact of an address of record (RFC 3261
// §10.3): where a user can be reached, until when, and how the registration
// reached us, so that requests to the contact can follow the same path
// (the source address after rport/received, and the transport: a contact
// that registered over TCP is reached over that connection).
type Binding struct {
	AOR       string    `json:"aor"`     // user@domain
	Contact   string    `json:"contact"` // the Contact header value as registered (URI and parameters)
	URI       string    `json:"uri"`     // the contact URI alone
	Key       string    `json:"key"`     // URI in comparable form (RFC 3261 §19.1.4)
	Expires   time.Time `json:"expires"`
	CallID    string    `json:"call_id"`
	CSeq      uint32    `json:"cseq"`
	Source    string    `json:"source"`    // ip:port the REGISTER came from
	Transport string    `json:"transport"` // udp, tcp
	UserAgent string    `json:"user_agent,omitempty"`
	Updated   time.Time `json:"updated"`
}

// uriKey returns a contact URI in a form where URIs that RFC 3261 §19.1.4
// calls equal compare equal for the parts that matter to a registrar:
// scheme, user, host (case-insensitive), port, and the transport, user,
// method, maddr and ttl parameters; other URI parameters are ignored.
func uriKey(u *sip.Uri) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(u.Scheme))
	b.WriteByte(':')
	if u.User != "" {
		b.WriteString(u.User)
		b.WriteByte('@')
	}
	b.WriteString(strings.ToLower(u.Host))
	if u.Port != 0 {
		fmt.Fprintf(&b, ":%d", u.Port)
	}
	if u.UriParams != nil {
		var params []string
		for _, k := range []string{"transport", "user", "method", "maddr", "ttl"} {
			if v, ok := u.UriParams.Get(k); ok {
				params = append(params, k+"="+strings.ToLower(v))
			}
		}
		sort.Strings(params)
		for _, p := range params {
			b.WriteByte(';')
			b.WriteString(p)
		}
	}
	return b.String()
}

// Remaining returns the binding's remaining lifetime in whole seconds,
// rounded up, for the expires parameter of a 200 OK.
func (b Binding) Remaining(now time.Time) int {
	d := b.Expires.Sub(now)
	if d <= 0 {
		return 0
	}
	return int((d + time.Second - 1) / time.Second)
}

// Route is where requests to the binding's contact go and over which
// transport: back along the path the registration came by (RFC 3261
// §10.3, RFC 3581) — to the REGISTER's source address, over the TCP
// connection it came on when it came over TCP — which reaches a phone
// behind a NAT as well as one that is not.
func (b Binding) Route() (dest, transport string) {
	if strings.EqualFold(b.Transport, "tcp") {
		return b.Source, "TCP"
	}
	return b.Source, "UDP"
}
