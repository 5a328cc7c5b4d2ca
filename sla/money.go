package sla

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// MoneyScale is the number of decimal places Money keeps.
const MoneyScale = 9

const moneyUnit = 1_000_000_000 // 10^MoneyScale

// Money is an exact decimal amount in units of 10^-9 of a currency: prices
// per minute are summed along paths and billed per increment, and binary
// floats would lose cents. The zero value is 0.
type Money int64

// ErrMoney is returned for a malformed amount.
var ErrMoney = errors.New("bad amount")

// ParseMoney reads a decimal such as "0.0040", "12", "-1.5". At most
// MoneyScale decimal places; no exponent, no sign other than a leading '-'.
func ParseMoney(s string) (Money, error) {
	orig := s
	if s == "" {
		return 0, fmt.Errorf("%w: empty", ErrMoney)
	}
	neg := false
	if s[0] == '-' {
		neg, s = true, s[1:]
	}
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" || (dot && frac == "") {
		return 0, fmt.Errorf("%w: %q is not a decimal", ErrMoney, orig)
	}
	if len(frac) > MoneyScale {
		return 0, fmt.Errorf("%w: %q has more than %d decimal places", ErrMoney, orig, MoneyScale)
	}
	for _, c := range whole + frac {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: %q is not a decimal", ErrMoney, orig)
		}
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w > math.MaxInt64/moneyUnit-1 {
		return 0, fmt.Errorf("%w: %q is too large", ErrMoney, orig)
	}
	f := int64(0)
	if frac != "" {
		f, _ = strconv.ParseInt(frac+strings.Repeat("0", MoneyScale-len(frac)), 10, 64)
	}
	m := Money(w*moneyUnit + f)
	if neg {
		m = -m
	}
	return m, nil
}

// MustMoney is ParseMoney for constants; it panics on a malformed amount.
func MustMoney(s string) Money {
	m, err := ParseMoney(s)
	if err != nil {
		panic(err)
	}
	return m
}

// String formats the amount with at least four decimal places and no
// trailing zeros beyond them: "0.0040", "0.0000125", "12.0000".
func (m Money) String() string {
	neg := m < 0
	u := uint64(m)
	if neg {
		u = uint64(-m)
	}
	whole, frac := u/moneyUnit, u%moneyUnit
	fs := fmt.Sprintf("%09d", frac)
	for len(fs) > 4 && fs[len(fs)-1] == '0' {
		fs = fs[:len(fs)-1]
	}
	s := strconv.FormatUint(whole, 10) + "." + fs
	if neg {
		s = "-" + s
	}
	return s
}

// Float is the amount as a float64, for display and metrics only; never
// compute money with it.
func (m Money) Float() float64 { return float64(m) / moneyUnit }

// MarshalText writes the decimal string, so JSON carries "0.0040", not a
// binary float.
func (m Money) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText reads a decimal string.
func (m *Money) UnmarshalText(b []byte) error {
	v, err := ParseMoney(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// MulSeconds is the charge for secs seconds at m per minute, rounded half
// up to the unit (10^-9).
func (m Money) MulSeconds(secs int64) Money {
	p := int64(m) * secs
	q, r := p/60, p%60
	if r*2 >= 60 {
		q++
	}
	return Money(q)
}
