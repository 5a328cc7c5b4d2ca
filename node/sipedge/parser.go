package sipedge

import (
	"maps"

	"github.com/emiago/sipgo/sip"
)

// lenientHeaders returns sipgo's header parsers with the single-valued
// mandatory headers (To, From, Call-ID, CSeq, Max-Forwards) made lenient: a
// value sipgo cannot parse is kept as a raw header instead of failing the
// whole message. sipgo drops an unparseable UDP datagram without an answer
// and closes a TCP connection; kept raw, the request reaches CheckRequest,
// which answers 400 "Malformed <Header> header" (RFC 3261 §21.4.1).
func lenientHeaders() map[string]sip.HeaderParser {
	m := maps.Clone(sip.DefaultHeadersParser()) // sipgo's shared map: never modify it
	for name, canonical := range map[string]string{
		"to": "To", "t": "To", "from": "From", "f": "From",
		"call-id": "Call-ID", "i": "Call-ID", "cseq": "CSeq", "max-forwards": "Max-Forwards",
	} {
		strict, ok := m[name]
		if !ok {
			continue
		}
		m[name] = func(hn []byte, text string) (sip.Header, error) {
			if h, err := strict(hn, text); err == nil {
				return h, nil
			}
			return sip.NewHeader(canonical, text), nil
		}
	}
	return m
}
