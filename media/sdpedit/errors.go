package sdpedit

import (
	"errors"
	"strconv"
	"strings"
)

// Sentinel causes, for errors.Is on the *Error values Parse and Rewrite
// return.
var (
	// ErrEmpty: the body is empty or only white space.
	ErrEmpty = errors.New("empty session description")
	// ErrTooLarge: the body is longer than MaxSize.
	ErrTooLarge = errors.New("session description too large")
	// ErrAnchors: the anchors given to Rewrite do not fit the description.
	ErrAnchors = errors.New("bad anchors")
)

// Error describes why a description was refused. Line and Media locate the
// fault; Err, when set, is the underlying cause (a sentinel above or the
// error of the pion/sdp parser).
type Error struct {
	Line  int    // 1-based line of the body; 0 when the error is about no one line
	Media int    // 1-based m= section the line belongs to; 0 at session level
	MLine bool   // the faulty line is the m= line itself
	Msg   string // what is wrong
	Err   error  // underlying cause, or nil
}

// Error formats as "sdp: line 9 (m= line 2): bad port \"x\"".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("sdp: ")
	if e.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
		if e.Media > 0 {
			if e.MLine {
				b.WriteString(" (m= line ")
			} else {
				b.WriteString(" (in m= section ")
			}
			b.WriteString(strconv.Itoa(e.Media))
			b.WriteByte(')')
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Err != nil {
		if e.Msg != "" {
			b.WriteString(": ")
		}
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// quote renders a piece of hostile input for an error message, clipped.
func quote(s string) string {
	const max = 40
	if len(s) > max {
		s = s[:max] + "..."
	}
	return strconv.QuoteToASCII(s)
}

// pionError presents an error of pion/sdp inside an *Error: without its own
// "sdp: " prefix, and without the byte offset it may name, which counts in
// the text handed to pion rather than in the body (Error.Line locates it).
type pionError struct{ err error }

func (e pionError) Unwrap() error { return e.err }

func (e pionError) Error() string {
	s := strings.TrimPrefix(e.err.Error(), "sdp: ")
	if i := strings.Index(s, " at pos "); i >= 0 {
		j := i + len(" at pos ")
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		s = s[:i] + s[j:]
	}
	return "pion/sdp: " + s
}
