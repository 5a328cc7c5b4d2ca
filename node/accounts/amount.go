package accounts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Amount is a sum of money in fixed point: an integer count of 1/10000 of
// the currency unit, so 12.50 is Amount(125000). It marshals to JSON as a
// number with at least two and at most four decimals (12.50, 0.0125) and
// accepts a JSON number or a string holding one.
type Amount int64

// AmountScale is the number of Amount units in one currency unit.
const AmountScale = 10000

// amountDecimals is the number of decimals an Amount holds.
const amountDecimals = 4

// ErrAmount marks an amount that is not a decimal number with at most four
// decimals, or that does not fit an Amount.
var ErrAmount = errors.New("invalid amount")

// ParseAmount parses a decimal amount: an optional sign, one or more digits,
// and optionally a point followed by one to four digits ("12", "12.5",
// "-0.0125"). Exponents, more than four decimals and values beyond
// ±922337203685477.5807 are errors rather than rounded.
func ParseAmount(s string) (Amount, error) {
	a, msg := parseAmount(s)
	if msg != "" {
		return 0, fmt.Errorf("%w %s: %s", ErrAmount, strconv.Quote(s), msg)
	}
	return a, nil
}

func parseAmount(s string) (Amount, string) {
	const want = "want a decimal number with at most 4 decimals, such as 12.50"
	neg := false
	rest := s
	if rest != "" && (rest[0] == '-' || rest[0] == '+') {
		neg = rest[0] == '-'
		rest = rest[1:]
	}
	intPart, frac, hasPoint := strings.Cut(rest, ".")
	if intPart == "" || !allDigits(intPart) || hasPoint && (frac == "" || !allDigits(frac)) {
		return 0, want
	}
	if len(frac) > amountDecimals {
		return 0, "more than 4 decimals"
	}
	// Accumulate the magnitude in units, refusing to pass the limit of the
	// sign: 2^63-1 units when positive, 2^63 when negative.
	limit := uint64(math.MaxInt64)
	if neg {
		limit++
	}
	digits := intPart + frac + strings.Repeat("0", amountDecimals-len(frac))
	var v uint64
	for i := 0; i < len(digits); i++ {
		d := uint64(digits[i] - '0')
		if v > (limit-d)/10 {
			return 0, "out of range"
		}
		v = v*10 + d
	}
	if neg {
		return Amount(-v), "" // two's complement: -(2^63) wraps to MinInt64
	}
	return Amount(v), ""
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// String formats the amount with at least two decimals and no trailing
// zeros beyond them: "12.50", "0.0125", "-3.00".
func (a Amount) String() string {
	mag := uint64(a)
	sign := ""
	if a < 0 {
		sign = "-"
		mag = -mag // also right for MinInt64
	}
	frac := fmt.Sprintf("%04d", mag%AmountScale)
	frac = strings.TrimRight(frac, "0")
	for len(frac) < 2 {
		frac += "0"
	}
	return sign + strconv.FormatUint(mag/AmountScale, 10) + "." + frac
}

// MarshalJSON encodes the amount as a JSON number, exactly.
func (a Amount) MarshalJSON() ([]byte, error) {
	return []byte(a.String()), nil
}

// UnmarshalJSON decodes a JSON number ("12.5") or a string holding one
// ("\"12.50\""). JSON null leaves the amount unchanged.
func (a *Amount) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return nil
	}
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("%w: %v", ErrAmount, err)
		}
	}
	v, err := ParseAmount(s)
	if err != nil {
		return err
	}
	*a = v
	return nil
}
