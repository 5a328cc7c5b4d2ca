package sipedge

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// RegisterPolicy bounds what a REGISTER may ask for.
type RegisterPolicy struct {
	MinExpires     time.Duration // shorter non-zero requests are refused with 423
	MaxExpires     time.Duration // longer requests are cut to this
	DefaultExpires time.Duration // when neither the contact nor the request names one
	MaxContacts    int           // bindings per address of record
}

// RegisterOutcome is what a REGISTER does to an address of record.
type RegisterOutcome struct {
	Code       int
	Reason     string
	MinExpires int       // seconds, for the Min-Expires header of a 423
	Bindings   []Binding // the AOR's bindings afterwards (on 200), sorted by contact
	Changed    bool      // whether Bindings differ from before
}

// Meta is what the transport knows about a request.
type Meta struct {
	Source    string // ip:port the request came from
	Transport string // udp or tcp
}

// ApplyRegister decides a REGISTER for aor against its existing bindings,
// following RFC 3261 §10.3 steps 6–8: it is pure (time is an argument) and
// does not authenticate; the caller has done that. Expired bindings in
// existing are dropped.
func ApplyRegister(req *sip.Request, aor string, existing []Binding, p RegisterPolicy, meta Meta, now time.Time) RegisterOutcome {
	current := make([]Binding, 0, len(existing))
	for _, b := range existing {
		if b.Expires.After(now) {
			current = append(current, b)
		}
	}
	changed := len(current) != len(existing)

	reqExpires := -1
	if h := req.GetHeader("Expires"); h != nil {
		v, err := strconv.ParseUint(strings.TrimSpace(h.Value()), 10, 32)
		if err != nil {
			return RegisterOutcome{Code: sip.StatusBadRequest, Reason: "Bad Expires header"}
		}
		reqExpires = int(min(v, 1<<31-1))
	}
	callID := ""
	if h := req.CallID(); h != nil {
		callID = h.Value()
	}
	var cseq uint32
	if h := req.CSeq(); h != nil {
		cseq = h.SeqNo
	}

	contacts := req.GetHeaders("Contact")
	if len(contacts) == 0 { // a query (§10.3 step 6): list, change nothing
		return RegisterOutcome{Code: sip.StatusOK, Reason: "OK", Bindings: sorted(current), Changed: changed}
	}

	// §10.3 step 6: "*" only alone and with Expires: 0; it removes every
	// binding, subject to the Call-ID/CSeq rule of step 7.
	for _, h := range contacts {
		c, ok := h.(*sip.ContactHeader)
		if !ok || !c.Address.Wildcard {
			continue
		}
		if len(contacts) != 1 || reqExpires != 0 {
			return RegisterOutcome{Code: sip.StatusBadRequest, Reason: "Wildcard Contact needs Expires: 0 and no other Contact"}
		}
		for _, b := range current {
			if b.CallID == callID && cseq <= b.CSeq {
				return RegisterOutcome{Code: sip.StatusBadRequest, Reason: "CSeq out of order"}
			}
		}
		return RegisterOutcome{Code: sip.StatusOK, Reason: "OK", Bindings: nil, Changed: changed || len(current) > 0}
	}

	minS := int(p.MinExpires / time.Second)
	maxS := int(p.MaxExpires / time.Second)
	next := slices.Clone(current)
	for _, h := range contacts {
		c, ok := h.(*sip.ContactHeader)
		if !ok {
			return RegisterOutcome{Code: sip.StatusBadRequest, Reason: "Bad Contact header"}
		}
		if s := strings.ToLower(c.Address.Scheme); s != "sip" && s != "sips" {
			return RegisterOutcome{Code: 416 /* Unsupported URI Scheme */, Reason: "Unsupported Contact URI scheme"}
		}
		if c.Address.Host == "" {
			return RegisterOutcome{Code: sip.StatusBadRequest, Reason: "Contact without a host"}
		}
		// §10.2.1.1 and §10.3 step 6: the contact's expires parameter, else
		// the Expires header, else the registrar's default.
		exp := reqExpires
		if v, ok := c.Params.Get("expires"); ok {
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return RegisterOutcome{Code: sip.StatusBadRequest, Reason: "Bad Contact expires parameter"}
			}
			exp = int(min(n, 1<<31-1))
		}
		if exp < 0 {
			exp = int(p.DefaultExpires / time.Second)
		}
		if exp > 0 && exp < minS {
			return RegisterOutcome{Code: sip.StatusIntervalToBrief, Reason: "Interval Too Brief", MinExpires: minS}
		}
		exp = min(exp, maxS)

		key := uriKey(&c.Address)
		i := slices.IndexFunc(next, func(b Binding) bool { return b.Key == key })
		// §10.3 step 7: within one Call-ID, only a higher CSeq may change
		// a binding.
		if i >= 0 && next[i].CallID == callID && cseq <= next[i].CSeq {
			return RegisterOutcome{Code: sip.StatusBadRequest, Reason: "CSeq out of order"}
		}
		if exp == 0 {
			if i >= 0 {
				next = slices.Delete(next, i, i+1)
				changed = true
			}
			continue
		}
		b := Binding{
			AOR: aor, Contact: c.Value(), URI: c.Address.String(), Key: key,
			Expires: now.Add(time.Duration(exp) * time.Second), CallID: callID, CSeq: cseq,
			Source: meta.Source, Transport: strings.ToLower(meta.Transport), Updated: now,
		}
		if ua := req.GetHeader("User-Agent"); ua != nil {
			b.UserAgent = ua.Value()
		}
		if i >= 0 {
			next[i] = b
		} else {
			next = append(next, b)
		}
		changed = true
	}
	if len(next) > p.MaxContacts {
		return RegisterOutcome{Code: sip.StatusForbidden, Reason: "Too many contacts for this address"}
	}
	return RegisterOutcome{Code: sip.StatusOK, Reason: "OK", Bindings: sorted(next), Changed: changed}
}

func sorted(bs []Binding) []Binding {
	slices.SortFunc(bs, func(a, b Binding) int { return strings.Compare(a.Key, b.Key) })
	return bs
}
