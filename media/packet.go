package media

import "encoding/binary"

// kind is what a datagram on a relay socket turned out to be.
type kind uint8

const (
	kindJunk kind = iota // not RTP version 2, or too short: dropped and counted
	kindRTP
	kindRTCP
)

// rtpHeader is the part of an RTP fixed header (RFC 3550 §5.1) that
// statistics need. Parsed by hand: the forwarding path must not allocate.
type rtpHeader struct {
	pt        uint8
	marker    bool
	seq       uint16
	timestamp uint32
	ssrc      uint32
}

// classify tells RTP from RTCP on a socket that may carry both (RFC 5761 §4:
// RTCP packet types 192–223 occupy the second octet where RTP has the marker
// bit and payload type, and RTP payload types 64–95 are never used with
// multiplexing). Anything else, including version ≠ 2, is junk.
func classify(b []byte) kind {
	if len(b) < 4 || b[0]>>6 != 2 {
		return kindJunk
	}
	if pt := b[1]; pt >= 192 && pt <= 223 {
		if len(b) < 8 {
			return kindJunk
		}
		return kindRTCP
	}
	if len(b) < 12 {
		return kindJunk
	}
	return kindRTP
}

// parseRTP reads the fixed header and checks that the CSRC list, header
// extension and padding announced fit in the packet.
func parseRTP(b []byte) (rtpHeader, bool) {
	if classify(b) != kindRTP {
		return rtpHeader{}, false
	}
	h := fixedHeader((*[12]byte)(b))
	n := 12 + 4*int(b[0]&0x0f)
	if n > len(b) {
		return rtpHeader{}, false
	}
	if b[0]&0x10 != 0 { // header extension (§5.3.1)
		if n+4 > len(b) {
			return rtpHeader{}, false
		}
		n += 4 + 4*int(binary.BigEndian.Uint16(b[n+2:]))
		if n > len(b) {
			return rtpHeader{}, false
		}
	}
	if b[0]&0x20 != 0 { // padding: the last octet counts it (§5.1)
		pad := int(b[len(b)-1])
		if pad == 0 || n+pad > len(b) {
			return rtpHeader{}, false
		}
	}
	return h, true
}

// fixedHeader reads the fields of the RTP fixed header (RFC 3550 §5.1):
// all the statistics need, and all a kernel record carries (the CSRC list,
// a header extension and padding follow it, and are not in the record).
func fixedHeader(b *[12]byte) rtpHeader {
	return rtpHeader{
		marker:    b[1]&0x80 != 0,
		pt:        b[1] & 0x7f,
		seq:       binary.BigEndian.Uint16(b[2:]),
		timestamp: binary.BigEndian.Uint32(b[4:]),
		ssrc:      binary.BigEndian.Uint32(b[8:]),
	}
}
