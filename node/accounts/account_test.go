package accounts

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/callmesh/callmesh/node/digest"
)

const (
	testHome  = "12D3KooWHomeNodeForTests"
	testRealm = "callmesh.test"
)

// testAccount returns a valid account called name.
func testAccount(t *testing.T, name string) Account {
	t.Helper()
	a, err := Params{Name: name, Password: "secret " + name}.Account(testHome, testRealm, time.Unix(1_700_000_000, 0))
	if err != nil {
		t.Fatalf("account %q: %v", name, err)
	}
	return a
}

func TestAccountValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Account)
		want   string // substring of the error; "" for valid
	}{
		{"valid", func(*Account) {}, ""},
		{"every name character", func(a *Account) { a.Name = "Az09._~+-" }, ""},
		{"64-character name", func(a *Account) { a.Name = strings.Repeat("a", 64) }, ""},
		{"gold", func(a *Account) { a.Class = Gold }, ""},
		{"no rights", func(a *Account) { a.Allow = nil }, ""},
		{"every kind of right", func(a *Account) {
			a.Allow = []string{"p2p", "conference", "external:*", "external:+44", "!external:+4490", "external:00"}
		}, ""},
		{"zero max calls", func(a *Account) { a.MaxCalls = 0 }, ""},
		{"negative balance", func(a *Account) { a.Balance = -125000 }, ""},

		{"empty name", func(a *Account) { a.Name = "" }, "user.name: required"},
		{"long name", func(a *Account) { a.Name = strings.Repeat("a", 65) }, `user.name = "aaaa`},
		{"leading dot", func(a *Account) { a.Name = ".alice" }, "must not start with '.'"},
		{"at sign", func(a *Account) { a.Name = "alice@example.org" }, `user.name = "alice@example.org": character '@'`},
		{"space", func(a *Account) { a.Name = "al ice" }, "user.name"},
		{"non-ASCII", func(a *Account) { a.Name = "zoë" }, "user.name"},
		{"platinum", func(a *Account) { a.Class = "platinum" }, `user.class = "platinum": want gold, silver or bronze`},
		{"upper-case class", func(a *Account) { a.Class = "Gold" }, "user.class"},
		{"empty class", func(a *Account) { a.Class = "" }, "user.class"},
		{"unknown right", func(a *Account) { a.Allow = []string{"p2p", "video"} }, `user.allow[1] = "video"`},
		{"prefix with letters", func(a *Account) { a.Allow = []string{"external:44a"} }, `user.allow[0] = "external:44a"`},
		{"empty prefix", func(a *Account) { a.Allow = []string{"external:"} }, "user.allow[0]"},
		{"lone plus", func(a *Account) { a.Allow = []string{"external:+"} }, "user.allow[0]"},
		{"plus inside", func(a *Account) { a.Allow = []string{"external:4+4"} }, "user.allow[0]"},
		{"long prefix", func(a *Account) { a.Allow = []string{"external:" + strings.Repeat("1", 33)} }, "user.allow[0]"},
		{"denied p2p", func(a *Account) { a.Allow = []string{"!p2p"} }, "only external rights"},
		{"duplicate", func(a *Account) { a.Allow = []string{"p2p", "p2p"} }, `user.allow[1] = "p2p": listed twice`},
		{"granted and denied", func(a *Account) { a.Allow = []string{"external:+1", "!external:+1"} }, `contradicts "external:+1"`},
		{"denied and granted", func(a *Account) { a.Allow = []string{"!external:*", "external:*"} }, `contradicts "!external:*"`},
		{"negative max calls", func(a *Account) { a.MaxCalls = -1 }, `user.max_calls = "-1": must be >= 0`},
		{"no home", func(a *Account) { a.Home = "" }, "user.home: required"},
		{"no realm", func(a *Account) { a.Realm = "" }, "user.realm: required"},
		{"no credentials", func(a *Account) { a.Credentials = digest.Credentials{} }, "user.credentials: no password set"},
		{"upper-case hex", func(a *Account) { a.Credentials.MD5 = strings.ToUpper(a.Credentials.MD5) }, "user.credentials"},
		{"no SHA-256", func(a *Account) { a.Credentials.SHA256 = "" }, "user.credentials"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := testAccount(t, "alice")
			tc.change(&a)
			err := a.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.want == "":
			case err == nil:
				t.Fatalf("Validate accepted %+v; want an error containing %q", a, tc.want)
			case !strings.Contains(err.Error(), tc.want):
				t.Fatalf("Validate = %q; want it to contain %q", err, tc.want)
			case !errors.Is(err, ErrInvalid):
				t.Fatalf("Validate = %v; want it to wrap ErrInvalid", err)
			}
		})
	}
}

func TestAccountPassword(t *testing.T) {
	for _, tc := range []struct {
		pw   string
		want string
	}{
		{"x", ""},
		{strings.Repeat("p", 256), ""},
		{"with spaces and ünïcödé\t", ""},
		{"", "must not be empty"},
		{strings.Repeat("p", 257), "longer than 256 bytes"},
		{"two\nlines", "CR or LF"},
		{"carriage\rreturn", "CR or LF"},
		{"trailing newline\n", "CR or LF"},
	} {
		err := ValidatePassword(tc.pw)
		if tc.want == "" {
			if err != nil {
				t.Errorf("ValidatePassword(%q): %v", tc.pw, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "user.password") {
			t.Errorf("ValidatePassword(%q) = %v; want user.password: …%s", tc.pw, err, tc.want)
		}
		if err != nil && len(tc.pw) > 3 && strings.Contains(err.Error(), tc.pw[:4]) {
			t.Errorf("ValidatePassword error %q shows the password", err)
		}
	}

	a := testAccount(t, "alice")
	if err := a.SetPassword(testRealm, "new password"); err != nil {
		t.Fatal(err)
	}
	if want := digest.NewCredentials("alice", testRealm, "new password"); a.Credentials != want || a.Realm != testRealm {
		t.Fatalf("credentials %+v realm %q; want %+v for %q", a.Credentials, a.Realm, want, testRealm)
	}
	if ha1, _ := a.Credentials.HA1(digest.MD5); ha1 != digest.HA1(digest.MD5, "alice", testRealm, "new password") {
		t.Fatalf("MD5 H(A1) %s is not H(alice:realm:password)", ha1)
	}
	before := a.Credentials
	if err := a.SetPassword("", "x"); err == nil || !strings.Contains(err.Error(), "user.realm") {
		t.Fatalf("SetPassword without a realm: %v", err)
	}
	if err := a.SetPassword(testRealm, "bad\n"); err == nil || a.Credentials != before {
		t.Fatalf("SetPassword with a bad password: %v, credentials changed: %v", err, a.Credentials != before)
	}
}

func TestAccountParamsDefaults(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 3600))
	a, err := Params{Name: "bob", Password: "pw"}.Account(testHome, testRealm, now)
	if err != nil {
		t.Fatal(err)
	}
	if a.Class != Bronze || len(a.Allow) != 1 || a.Allow[0] != RightP2P || a.MaxCalls != 2 || a.Balance != 0 ||
		a.Home != testHome || !a.Created.Equal(now) || a.Created.Location() != time.UTC {
		t.Fatalf("defaults: %+v", a)
	}

	zero := 0
	a, err = Params{Name: "carol", Password: "pw", Class: Gold, Allow: []string{}, MaxCalls: &zero, Balance: 125000}.
		Account(testHome, testRealm, now)
	if err != nil {
		t.Fatal(err)
	}
	if a.Class != Gold || len(a.Allow) != 0 || a.MaxCalls != 0 || a.Balance != 125000 {
		t.Fatalf("explicit values: %+v", a)
	}

	for _, tc := range []struct {
		p    Params
		want string
	}{
		{Params{Name: "", Password: "pw"}, "user.name: required"},
		{Params{Name: "dave"}, "user.password: must not be empty"},
		{Params{Name: "dave", Password: "pw", Class: "platinum"}, "user.class"},
		{Params{Name: "dave", Password: "pw", Allow: []string{"p2p", "fax"}}, "user.allow[1]"},
	} {
		if _, err := tc.p.Account(testHome, testRealm, now); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v; want an error containing %q", tc.p, err, tc.want)
		}
	}
}

func TestAccountParamsJSON(t *testing.T) {
	var p Params
	body := `{"name":"erin","password":"pw","class":"silver","allow":["p2p","external:+44"],"max_calls":0,"balance":"12.50"}`
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatal(err)
	}
	if p.Name != "erin" || p.Class != Silver || len(p.Allow) != 2 || p.MaxCalls == nil || *p.MaxCalls != 0 || p.Balance != 125000 {
		t.Fatalf("decoded %+v", p)
	}
	p = Params{}
	if err := json.Unmarshal([]byte(`{"name":"erin","password":"pw","allow":null}`), &p); err != nil {
		t.Fatal(err)
	}
	if p.Allow != nil || p.MaxCalls != nil {
		t.Fatalf("absent fields decoded as %+v", p)
	}

	for body, want := range map[string]string{
		`{"name":"erin","max_call":3}`:         `user: unknown field "max_call"`,
		`{"name":"erin","max_calls":"3"}`:      "user.max_calls: got a JSON string, want a number",
		`{"name":5}`:                           "user.name: got a JSON number, want a string",
		`{"name":"erin","allow":"p2p"}`:        "user.allow: got a JSON string, want an array",
		`{"name":"erin","balance":1e3}`:        "user.balance",
		`{"name":"erin","balance":"12.34567"}`: "user.balance",
		`{"name":"erin","max_calls":1.5}`:      "user.max_calls",
		`[]`:                                   "user",
	} {
		var p Params
		err := json.Unmarshal([]byte(body), &p)
		if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, ErrInvalid) {
			t.Errorf("Unmarshal(%s) = %v; want an ErrInvalid containing %q", body, err, want)
		}
	}
}

func TestAccountViewHidesCredentials(t *testing.T) {
	a := testAccount(t, "alice")
	a.Allow = nil
	data, err := json.Marshal(a.View())
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(data, &fields); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"name", "class", "allow", "max_calls", "balance", "home", "created"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("view %s lacks %q", data, k)
		}
	}
	if len(fields) != 7 {
		t.Errorf("view %s has fields beyond the public seven", data)
	}
	if strings.Contains(string(data), a.Credentials.MD5) || strings.Contains(string(data), "ha1") {
		t.Errorf("view %s shows credentials", data)
	}
	if allow, _ := fields["allow"].([]any); allow == nil {
		t.Errorf("view of an account without rights has allow %v; want []", fields["allow"])
	}
}
