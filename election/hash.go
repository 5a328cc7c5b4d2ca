package election

// The hash of a (session, ID) pair: FNV-1a (64 bits) over
// len(session) as 8 little-endian bytes ‖ session ‖ ID, then the splitmix64
// finalizer. The FNV state after the session part is shared by every
// candidate of one ranking. Changing anything here changes every master:
// see "Hash" in the package documentation.

const (
	fnvOffset64 = 0xcbf29ce484222325
	fnvPrime64  = 0x100000001b3
)

// sessionState returns the FNV-1a state after the length prefix and the
// bytes of session.
func sessionState(session string) uint64 {
	h := uint64(fnvOffset64)
	n := uint64(len(session))
	for range 8 {
		h ^= n & 0xff
		h *= fnvPrime64
		n >>= 8
	}
	for i := 0; i < len(session); i++ {
		h ^= uint64(session[i])
		h *= fnvPrime64
	}
	return h
}

// pairHash continues the FNV-1a state st of a session with the bytes of id
// and returns the finalized 64-bit hash of the pair.
func pairHash(st uint64, id string) uint64 {
	h := st
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= fnvPrime64
	}
	return mix64(h)
}

// mix64 is the splitmix64 finalizer: a bijection of 64-bit words in which
// every input bit affects every output bit.
func mix64(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// unit maps h to (0, 1): its top 52 bits x give (x + 0.5) / 2^52, computed
// exactly, so the result is in [2^-53, 1 − 2^-53].
func unit(h uint64) float64 {
	return (float64(h>>12) + 0.5) * 0x1p-52
}

// Unit maps a (session, id) pair to (0, 1) with the hash rankings use: the
// same on every node, independent across ids. Other per-session choices
// that every node must make alike (which sessions a demoted provider may
// carry) draw from it.
func Unit(session, id string) float64 { return unit(pairHash(sessionState(session), id)) }
