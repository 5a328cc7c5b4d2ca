package sdpedit

// Direction is the media direction of an m= line (RFC 3264 §5.1,
// RFC 8866 §6.7): the a=sendrecv, a=sendonly, a=recvonly and a=inactive
// attributes, seen from the side that wrote the description. The zero value
// is SendRecv, the default when no direction attribute is present.
type Direction uint8

// The four directions of RFC 3264 §5.1.
const (
	SendRecv Direction = iota
	SendOnly
	RecvOnly
	Inactive
)

var directionNames = [...]string{"sendrecv", "sendonly", "recvonly", "inactive"}

// String returns the attribute name ("sendrecv", ...).
func (d Direction) String() string {
	if int(d) < len(directionNames) {
		return directionNames[d]
	}
	return "Direction(invalid)"
}

// Sends reports whether the writer of the description sends media
// (sendrecv or sendonly).
func (d Direction) Sends() bool { return d == SendRecv || d == SendOnly }

// Receives reports whether the writer of the description is willing to
// receive media (sendrecv or recvonly).
func (d Direction) Receives() bool { return d == SendRecv || d == RecvOnly }

// Reverse returns the direction seen from the other side: sendonly becomes
// recvonly and back; sendrecv and inactive stay (RFC 3264 §6.1 answer rules).
func (d Direction) Reverse() Direction {
	switch d {
	case SendOnly:
		return RecvOnly
	case RecvOnly:
		return SendOnly
	}
	return d
}

// directionOf maps an attribute name to a Direction.
func directionOf(key string) (Direction, bool) {
	if len(key) != 8 { // all four names have eight letters
		return 0, false
	}
	for i, n := range directionNames {
		if equalFold(key, n) {
			return Direction(i), true
		}
	}
	return 0, false
}

// makeDirection builds a Direction from its two halves.
func makeDirection(sends, receives bool) Direction {
	switch {
	case sends && receives:
		return SendRecv
	case sends:
		return SendOnly
	case receives:
		return RecvOnly
	}
	return Inactive
}
