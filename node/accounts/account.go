// Package accounts holds the user accounts of a callmesh node: who may
// register over SIP, with which digest credentials, and which sessions each
// user may start.
//
// An account lives on its home node, the node where it was created, in that
// node's Badger store; every change is a durable write. Passwords are never
// stored: an account keeps the digest H(A1) values for MD5 and SHA-256
// (digest.Credentials) computed for one realm, the federation's SIP domain.
//
// [Account.Permit] is the check made for every request that starts a
// session. It is pure: the caller counts the user's active calls.
package accounts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/callmesh/callmesh/node/digest"
	"github.com/callmesh/callmesh/node/store"
)

var (
	// ErrNotFound is returned (wrapped) for a user that has no account on
	// this node. It is store.ErrNotFound itself, so either matches.
	ErrNotFound = store.ErrNotFound
	// ErrExists is returned (wrapped) by Store.Add for a name already taken.
	ErrExists = errors.New("already exists")
	// ErrInvalid marks every validation error (a *FieldError), so callers
	// can tell bad input from a failure of the store.
	ErrInvalid = errors.New("invalid account")
)

// FieldError is a validation error tied to one field of an account, named
// as in the admin API: "user.class", "user.allow[1]".
type FieldError struct {
	Field string
	Value any // nil when the value is not shown (passwords) or absent
	Msg   string
}

func (e *FieldError) Error() string {
	if e.Value == nil {
		return fmt.Sprintf("%s: %s", e.Field, e.Msg)
	}
	return fmt.Sprintf("%s = %q: %s", e.Field, fmt.Sprint(e.Value), e.Msg)
}

// Unwrap returns ErrInvalid.
func (e *FieldError) Unwrap() error { return ErrInvalid }

func fieldErr(field string, value any, format string, args ...any) error {
	return &FieldError{Field: field, Value: value, Msg: fmt.Sprintf(format, args...)}
}

// Class is an account's service class; routing will give better providers
// to better classes.
type Class string

// The service classes, best first.
const (
	Gold   Class = "gold"
	Silver Class = "silver"
	Bronze Class = "bronze"
)

// Defaults of a new account.
const (
	DefaultClass = Bronze
	// DefaultMaxCalls is the default limit of concurrent calls. A limit of
	// 0 is valid and means that the user may register but start no call
	// (a barred account).
	DefaultMaxCalls = 2
)

// Limits on names and passwords.
const (
	MaxNameLen     = 64  // bytes of a user name
	MaxPasswordLen = 256 // bytes of a password
)

// DefaultAllow returns the rights of a new account that names none.
func DefaultAllow() []string { return []string{RightP2P} }

// ParseClass returns the class named s (lower case).
func ParseClass(s string) (Class, error) {
	switch c := Class(s); c {
	case Gold, Silver, Bronze:
		return c, nil
	}
	return "", fieldErr("user.class", s, "want gold, silver or bronze")
}

// Account is a user's account as its home node stores it.
type Account struct {
	// Name is the user part of the user's SIP address: 1 to 64 characters
	// of [A-Za-z0-9._~+-], not starting with '.'. It is case-sensitive and
	// never changes.
	Name  string `json:"name"`
	Class Class  `json:"class"`
	// Allow lists the user's rights: "p2p", "conference", and
	// "external:PREFIX" / "!external:PREFIX" (see Permit).
	Allow []string `json:"allow"`
	// MaxCalls is the limit of concurrent calls, >= 0; 0 bars every call.
	MaxCalls int    `json:"max_calls"`
	Balance  Amount `json:"balance"`
	// Home is the peer ID of the node that holds the account.
	Home    string    `json:"home"`
	Created time.Time `json:"created"`
	// Realm is the digest realm the credentials were computed for: the
	// federation's domain when the password was last set.
	Realm       string             `json:"realm"`
	Credentials digest.Credentials `json:"credentials"`
}

// View is the public description of an account, as the admin API and the
// CLI show it: never its credentials. Fields are added, never renamed.
type View struct {
	Name     string    `json:"name"`
	Class    Class     `json:"class"`
	Allow    []string  `json:"allow"`
	MaxCalls int       `json:"max_calls"`
	Balance  Amount    `json:"balance"`
	Home     string    `json:"home"`
	Created  time.Time `json:"created"`
}

// View returns the public description of a.
func (a Account) View() View {
	allow := slices.Clone(a.Allow)
	if allow == nil {
		allow = []string{}
	}
	return View{
		Name: a.Name, Class: a.Class, Allow: allow, MaxCalls: a.MaxCalls,
		Balance: a.Balance, Home: a.Home, Created: a.Created,
	}
}

// SetPassword checks password and replaces the account's credentials with
// those for realm. The password itself is not kept.
func (a *Account) SetPassword(realm, password string) error {
	if realm == "" {
		return fieldErr("user.realm", nil, "required (the node's domain)")
	}
	if err := ValidatePassword(password); err != nil {
		return err
	}
	a.Realm = realm
	a.Credentials = digest.NewCredentials(a.Name, realm, password)
	return nil
}

// Validate checks every field and returns the first problem as a
// *FieldError naming it.
func (a Account) Validate() error {
	if err := ValidateName(a.Name); err != nil {
		return err
	}
	if _, err := ParseClass(string(a.Class)); err != nil {
		return err
	}
	if err := validateAllow(a.Allow); err != nil {
		return err
	}
	if a.MaxCalls < 0 {
		return fieldErr("user.max_calls", a.MaxCalls, "must be >= 0 (0 bars every call)")
	}
	if a.Home == "" {
		return fieldErr("user.home", nil, "required (the home node's peer ID)")
	}
	if a.Realm == "" {
		return fieldErr("user.realm", nil, "required (set with the password)")
	}
	if !isHex(a.Credentials.MD5, 32) || !isHex(a.Credentials.SHA256, 64) {
		return fieldErr("user.credentials", nil, "no password set (want the MD5 and SHA-256 H(A1) in lowercase hex)")
	}
	return nil
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'f') {
			return false
		}
	}
	return true
}

// ValidateName checks a user name: 1 to 64 characters of
// [A-Za-z0-9._~+-], not starting with '.'.
func ValidateName(name string) error {
	switch {
	case name == "":
		return fieldErr("user.name", nil, "required")
	case len(name) > MaxNameLen:
		return fieldErr("user.name", name, "longer than %d characters", MaxNameLen)
	case name[0] == '.':
		return fieldErr("user.name", name, "must not start with '.'")
	}
	for i := 0; i < len(name); i++ {
		if !isNameChar(name[i]) {
			return fieldErr("user.name", name, "character %q not allowed: want letters, digits and . _ ~ + -", name[i])
		}
	}
	return nil
}

func isNameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '_' || c == '~' || c == '+' || c == '-'
}

// ValidatePassword checks a password: not empty, at most 256 bytes, no CR
// or LF. The error never shows the password.
func ValidatePassword(pw string) error {
	switch {
	case pw == "":
		return fieldErr("user.password", nil, "must not be empty")
	case len(pw) > MaxPasswordLen:
		return fieldErr("user.password", nil, "longer than %d bytes", MaxPasswordLen)
	case strings.ContainsAny(pw, "\r\n"):
		return fieldErr("user.password", nil, "must not contain CR or LF")
	}
	return nil
}

// Params are what an operator gives to create an account: the body of
// POST /api/v1/users. Absent optional fields take the defaults: class
// bronze, allow ["p2p"], max_calls 2, balance 0. An explicit empty allow
// list grants no right.
type Params struct {
	Name     string   `json:"name"`
	Password string   `json:"password"`
	Class    Class    `json:"class,omitempty"`
	Allow    []string `json:"allow"`     // nil: DefaultAllow
	MaxCalls *int     `json:"max_calls"` // nil: DefaultMaxCalls
	Balance  Amount   `json:"balance"`
}

// UnmarshalJSON decodes params strictly: an unknown field is an error, so
// a misspelt one is reported rather than ignored, and errors name the field
// ("user.max_calls: got a JSON string, want a number").
func (p *Params) UnmarshalJSON(b []byte) error {
	type plain Params // without this method
	var v plain
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return paramsError(err)
	}
	*p = Params(v)
	return nil
}

// paramsError turns a JSON decoding error into a *FieldError.
func paramsError(err error) error {
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &te) && te.Field != "":
		return fieldErr("user."+te.Field, nil, "got a JSON %s, want %s", te.Value, jsonKind(te.Type))
	case errors.As(err, &te):
		return fieldErr("user", nil, "got a JSON %s, want an object", te.Value)
	case errors.Is(err, ErrAmount):
		return fieldErr("user.balance", nil, "%v", err)
	}
	return fieldErr("user", nil, "%s", strings.TrimPrefix(err.Error(), "json: "))
}

// jsonKind names the JSON type that decodes into t.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Bool:
		return "a boolean"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "another type"
}

// Account builds the account p describes, homed on home, with credentials
// for realm, created at now, and validates it.
func (p Params) Account(home, realm string, now time.Time) (Account, error) {
	a := Account{
		Name: p.Name, Class: p.Class, Allow: slices.Clone(p.Allow), MaxCalls: DefaultMaxCalls,
		Balance: p.Balance, Home: home, Created: now.UTC(),
	}
	if a.Class == "" {
		a.Class = DefaultClass
	}
	if p.Allow == nil {
		a.Allow = DefaultAllow()
	}
	if p.MaxCalls != nil {
		a.MaxCalls = *p.MaxCalls
	}
	if err := ValidateName(a.Name); err != nil {
		return Account{}, err
	}
	if err := a.SetPassword(realm, p.Password); err != nil {
		return Account{}, err
	}
	if err := a.Validate(); err != nil {
		return Account{}, err
	}
	return a, nil
}
