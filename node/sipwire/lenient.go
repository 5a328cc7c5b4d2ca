package sipwire

import (
	"maps"

	"github.com/emiago/sipgo/sip"
)

// NewParser returns the sipgo parser that Parse agrees with, for the
// messages Parse declines and for streams: sipgo's, with the single-valued
// mandatory headers (To, From, Call-ID, CSeq, Max-Forwards) made lenient.
// A value sipgo cannot parse is kept as a raw header instead of failing the
// whole message. sipgo drops an unparseable UDP datagram without an answer
// and closes a TCP connection; kept raw, a request reaches the edge's
// checks, which answer 400 "Malformed <Header> header" (RFC 3261 §21.4.1).
func NewParser() *sip.Parser {
	return sip.NewParser(sip.WithHeadersParsers(lenientHeaders()))
}

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
