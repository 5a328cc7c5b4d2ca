package rtpstats

// Clocks maps an RTP payload type (0..127) to its RTP clock rate in Hz. A rate
// of 0 marks a payload type that is counted but not timed, such as
// telephone-event (RFC 4733) or comfort noise (RFC 3389): its packets take
// part in the sequence and loss statistics but not in jitter or ptime.
//
// Dynamic payload types (96..127) are 0 in [DefaultClocks]; set them from the
// session's SDP rtpmap (for example c[111] = 48000 for opus) and leave
// telephone-event at 0. A Stream keeps a pointer to its Clocks and reads it
// in every Update: change the table only when no Update runs at the same time
// (under the same lock), or build a new one and call [Stream.SetClocks].
type Clocks [128]uint32

// DefaultClocks returns the clock rates of the static payload types of
// RFC 3551 §6 (Tables 4 and 5). G.722 (9) runs its RTP clock at 8000 Hz
// although it samples at 16 kHz (RFC 3551 §4.5.2). Comfort noise (13) is
// left untimed: CN packets are sent at irregular intervals during silence.
func DefaultClocks() Clocks {
	var c Clocks
	// Audio, RFC 3551 Table 4.
	c[0] = 8000  // PCMU
	c[3] = 8000  // GSM
	c[4] = 8000  // G723
	c[5] = 8000  // DVI4
	c[6] = 16000 // DVI4
	c[7] = 8000  // LPC
	c[8] = 8000  // PCMA
	c[9] = 8000  // G722
	c[10] = 44100
	c[11] = 44100 // L16
	c[12] = 8000  // QCELP
	c[13] = 0     // CN: counted, not timed
	c[14] = 90000 // MPA
	c[15] = 8000  // G728
	c[16] = 11025 // DVI4
	c[17] = 22050 // DVI4
	c[18] = 8000  // G729
	// Video, RFC 3551 Table 5.
	for _, pt := range [...]uint8{25, 26, 28, 31, 32, 33, 34} { // CelB JPEG nv H261 MPV MP2T H263
		c[pt] = 90000
	}
	return c
}

// defaultClocks serves Streams initialised with nil Clocks. It is never
// written after package initialisation.
var defaultClocks = DefaultClocks()

// rate is the clock of payload type pt; 0 for untimed or invalid (> 127) types.
func (c *Clocks) rate(pt uint8) uint32 {
	if pt >= uint8(len(c)) {
		return 0
	}
	return c[pt]
}
