package siptx

import (
	"math/rand/v2"
	"unsafe"
)

// magicCookie starts every branch that follows RFC 3261 (§8.1.1.7).
const magicCookie = "z9hG4bK"

// branchLen is the length of a generated branch: the cookie, a dot and
// 16 characters of 6 random bits each, 96 bits in all, as unique as
// §8.1.1.7 asks ("unique across space and time") with room to spare.
const branchLen = len(magicCookie) + 1 + 16

// branchChars are 64 characters of RFC 3261's token (§25.1), so that each
// takes exactly 6 random bits.
const branchChars = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"

// putBranch writes a new branch into b. The random bits come from the
// runtime's per-thread generator: no lock, no system call.
func putBranch(b *[branchLen]byte) {
	copy(b[:], magicCookie+".")
	r := [2]uint64{rand.Uint64(), rand.Uint64()}
	for i := range 16 {
		w := &r[i/8]
		b[len(magicCookie)+1+i] = branchChars[*w&63]
		*w >>= 6
	}
}

// branchString views b as a string. b must not change afterwards: the Via
// that holds it owns it, in the same allocation.
func branchString(b *[branchLen]byte) string { return unsafe.String(&b[0], branchLen) }
