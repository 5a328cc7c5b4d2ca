// Package sdpedit inspects and rewrites SDP offers and answers (RFC 8866,
// RFC 3264) for a B2BUA that anchors media at its RTP relay.
//
// Parse reads what a description asks for: per m= line the effective
// connection address (media-level c= over session-level), the RTP port and
// where RTCP goes (a=rtcp of RFC 3605, else port+1; a=rtcp-mux of RFC 5761),
// the direction (RFC 3264 §5.1, media-level over session-level), RFC 2543
// style hold by c= 0.0.0.0, whether it is SRTP (SAVP profiles, a=crypto of
// RFC 4568), its payload formats (a=rtpmap, else the static table of
// RFC 3551) and a=ptime.
//
// Rewrite turns a description received from one side into the one to send
// to the other: addresses and ports point at the relay (one Anchor per m=
// line; port 0 refuses a stream, RFC 3264 §6), ICE attributes are dropped
// (RFC 8839), and the o= line is kept consistent across re-offers by an
// Origin (RFC 3264 §8). All else is kept as written: codecs, telephone-event
// (RFC 4733) and CN (RFC 3389) formats, SRTP keys, direction attributes and
// attributes this package does not know.
//
// # Parsing
//
// Bodies are parsed with github.com/pion/sdp/v3, which checks the grammar
// and line order of RFC 8866 §5 and yields the attributes and c= lines.
// Where pion falls short this package reads the lines itself:
//
//   - m= lines: pion only knows the media types and transport tokens of its
//     allow-list, so T.38's "m=image 0 udptl t38" would be refused; such a
//     line is shown to pion in a neutral form.
//   - the numbers of the o= line: pion's integer reader wraps around on
//     overflow.
//   - line boundaries: pion reads v=, o=, c= and t= field by field and never
//     checks that the line ends after the last one, so "c=IN IP4 192.0.2.1
//     t=0 0" is two lines to it. The field counts are checked first.
//   - the line an error is on: pion reports a byte offset at most, so the
//     failing line is found by parsing prefixes (see pionParse).
//
// # Writing
//
// Rewrite edits the body line by line instead of calling pion's Marshal,
// which would re-space m= and o= lines, turn "a=x:" into "a=x", and move
// lines pion accepts out of the RFC 8866 order (k= before c= in a media
// section) back into it. Untouched lines therefore pass byte for byte, which
// matters for a=crypto keys and for peers that compare descriptions. Output
// lines end in CRLF; the output is a pure function of the input and the
// Origin's state.
//
// Errors are *Error values naming the body line (1-based) and the m=
// section, such as `sdp: line 9 (m= line 2): bad port "x"`.
package sdpedit
