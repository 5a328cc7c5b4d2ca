package digest

import (
	"errors"
	"strings"
	"testing"
)

func TestParseResponse(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header string
		want   Response
	}{
		{
			name: "SIPp",
			header: `Digest username="alice",realm="example.com",cnonce="6b8b4567",nc=00000001,qop=auth,` +
				`uri="sip:example.com",nonce="4a6f7e2c",response="0123456789abcdef0123456789abcdef",algorithm=MD5`,
			want: Response{
				Username: "alice", Realm: "example.com", Nonce: "4a6f7e2c", URI: "sip:example.com",
				Response: "0123456789abcdef0123456789abcdef", CNonce: "6b8b4567", QOP: "auth",
				NC: 1, HasNC: true, Algorithm: MD5,
			},
		},
		{
			name: "baresip",
			header: `Digest username="alice", realm="example.com", nonce="4a6f7e2c", uri="sip:example.com;transport=tcp", ` +
				`response="0123456789abcdef0123456789abcdef", algorithm=SHA-256, cnonce="00c1ab2f", qop=auth, nc=0000000a`,
			want: Response{
				Username: "alice", Realm: "example.com", Nonce: "4a6f7e2c", URI: "sip:example.com;transport=tcp",
				Response: "0123456789abcdef0123456789abcdef", CNonce: "00c1ab2f", QOP: "auth",
				NC: 10, HasNC: true, Algorithm: SHA256,
			},
		},
		{
			name:   "RFC 2069 without qop, no algorithm",
			header: `Digest username="bob", realm="r", nonce="n", uri="sip:r", response="aa"`,
			want:   Response{Username: "bob", Realm: "r", Nonce: "n", URI: "sip:r", Response: "aa", Algorithm: MD5},
		},
		{
			name: "scheme and names in other cases, folding, loose spacing, empty elements, opaque",
			header: "  dIgEsT   USERNAME = \"bob\" ,\r\n Realm=\"r\",,\tNonce =\"n\" , URI= \"sip:r\",RESPONSE=\"aa\", " +
				`Opaque="o", ALGORITHM=sha-256, ,`,
			want: Response{Username: "bob", Realm: "r", Nonce: "n", URI: "sip:r", Response: "aa", Opaque: "o", Algorithm: SHA256},
		},
		{
			name:   "commas, equals and spaces inside quotes",
			header: `Digest username="smith, john", realm="a=b, c", nonce="n,,n", uri="sip:x", response="aa"`,
			want:   Response{Username: "smith, john", Realm: "a=b, c", Nonce: "n,,n", URI: "sip:x", Response: "aa", Algorithm: MD5},
		},
		{
			name:   "escapes",
			header: `Digest username="a\"b\\c\d", realm="\"r\"", nonce="n", uri="sip:x", response="aa"`,
			want:   Response{Username: `a"b\cd`, Realm: `"r"`, Nonce: "n", URI: "sip:x", Response: "aa", Algorithm: MD5},
		},
		{
			name:   "quoted qop, nc and algorithm; unknown parameters ignored, even repeated",
			header: `Digest x-foo=1, username="u", realm="r", nonce="n", uri="sip:x", response="aa", qop="AUTH", nc="ffffffff", cnonce="c", algorithm="MD5", userhash=false, x-foo="2"`,
			want: Response{
				Username: "u", Realm: "r", Nonce: "n", URI: "sip:x", Response: "aa",
				CNonce: "c", QOP: "AUTH", NC: 0xffffffff, HasNC: true, Algorithm: MD5,
			},
		},
		{
			name:   "nc without qop is kept but does not count",
			header: `Digest username="u", realm="r", nonce="n", uri="sip:x", response="aa", nc=00000002`,
			want:   Response{Username: "u", Realm: "r", Nonce: "n", URI: "sip:x", Response: "aa", NC: 2, HasNC: true, Algorithm: MD5},
		},
		{
			name:   "UTF-8 username",
			header: `Digest username="Jürgen", realm="r", nonce="n", uri="sip:x", response="aa"`,
			want:   Response{Username: "Jürgen", Realm: "r", Nonce: "n", URI: "sip:x", Response: "aa", Algorithm: MD5},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseResponse(tc.header)
			if err != nil {
				t.Fatalf("ParseResponse: %v", err)
			}
			if got != tc.want {
				t.Errorf("ParseResponse =\n %+v\nwant\n %+v", got, tc.want)
			}
		})
	}
}

func TestParseResponseErrors(t *testing.T) {
	const ok = `username="u", realm="r", nonce="n", uri="sip:x", response="aa"`
	for _, tc := range []struct {
		header string
		want   string
	}{
		{``, `digest: expected Digest credentials`},
		{`   `, `digest: expected Digest credentials`},
		{`Basic dXNlcjpwYXNz`, `digest: expected Digest credentials`},
		{`Digestusername="u"`, `digest: expected Digest credentials`},
		{`"Digest" ` + ok, `digest: expected Digest credentials`},
		{`Digest`, `digest: missing username`},
		{`Digest realm="r", nonce="n", uri="sip:x", response="aa"`, `digest: missing username`},
		{`Digest username="u", nonce="n", uri="sip:x", response="aa"`, `digest: missing realm`},
		{`Digest username="u", realm="r", uri="sip:x", response="aa"`, `digest: missing nonce`},
		{`Digest username="u", realm="r", nonce="n", response="aa"`, `digest: missing uri`},
		{`Digest username="u", realm="r", nonce="n", uri="sip:x"`, `digest: missing response`},
		{`Digest username="", realm="r", nonce="n", uri="sip:x", response="aa"`, `digest: empty username`},
		{`Digest username="u", realm="r", nonce="", uri="sip:x", response="aa"`, `digest: empty nonce`},
		{`Digest ` + ok + `, qop=auth, nc=00000001`, `digest: missing cnonce`},
		{`Digest ` + ok + `, qop=auth, cnonce=""`, `digest: missing cnonce`},
		{`Digest ` + ok + `, qop=auth, cnonce="c"`, `digest: missing nc`},
		{`Digest ` + ok + `, qop=auth, cnonce="c", nc=zz`, `digest: bad nc "zz"`},
		{`Digest ` + ok + `, qop=auth, cnonce="c", nc=0000001`, `digest: bad nc "0000001"`},
		{`Digest ` + ok + `, qop=auth, cnonce="c", nc=000000001`, `digest: bad nc "000000001"`},
		{`Digest ` + ok + `, qop=auth, cnonce="c", nc=0000000A`, `digest: bad nc "0000000A"`},
		{`Digest ` + ok + `, qop=auth, cnonce="c", nc=""`, `digest: bad nc ""`},
		{`Digest ` + ok + `, qop=auth-int, cnonce="c", nc=00000001`, `digest: unsupported qop "auth-int"`},
		{`Digest ` + ok + `, qop="auth,auth-int", cnonce="c", nc=00000001`, `digest: unsupported qop "auth,auth-int"`},
		{`Digest ` + ok + `, algorithm=MD5-sess`, `digest: unsupported algorithm "MD5-sess"`},
		{`Digest ` + ok + `, algorithm=SHA-512-256`, `digest: unsupported algorithm "SHA-512-256"`},
		{`Digest ` + ok + `, nonce="m"`, `digest: duplicate nonce`},
		{`Digest ` + ok + `, Username="v"`, `digest: duplicate username`},
		{`Digest ` + ok + `, nc=00000001, NC=00000002`, `digest: duplicate nc`},
		{`Digest ` + ok + `, algorithm=MD5, algorithm=MD5`, `digest: duplicate algorithm`},
		{`Digest username="u`, `digest: unterminated quoted string in username`},
		{`Digest username="u\`, `digest: unterminated quoted string in username`},
		{`Digest username="u\"`, `digest: unterminated quoted string in username`},
		{`Digest username="u" realm="r"`, `digest: expected "," after username`},
		{`Digest uri=sip:x@y`, `digest: expected "," after uri`},
		{`Digest username`, `digest: expected "=" after username`},
		{`Digest username "u"`, `digest: expected "=" after username`},
		{`Digest username=`, `digest: missing value for username`},
		{`Digest username=, realm="r"`, `digest: missing value for username`},
		{`Digest ="u"`, `digest: expected parameter name at "=\"u\""`},
		{`Digest @@@`, `digest: expected parameter name at "@@@"`},
		{"Digest username=\"a\x00b\"", `digest: control character in username`},
		{"Digest username=\"a\\\nb\"", `digest: control character in username`},
		{`Digest ` + strings.Repeat("x", 100) + `"`, `digest: expected "=" after xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...`},
		{`Digest ` + ok + `, response2="` + strings.Repeat("y", 100), `digest: unterminated quoted string in response2`},
	} {
		_, err := ParseResponse(tc.header)
		if err == nil {
			t.Errorf("ParseResponse(%q): no error, want %q", tc.header, tc.want)
			continue
		}
		if err.Error() != tc.want {
			t.Errorf("ParseResponse(%q) error = %q, want %q", tc.header, err, tc.want)
		}
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseResponse(%q) error %q does not match ErrMalformed", tc.header, err)
		}
	}
	_, err := ParseResponse(`Digest ` + ok + `, algorithm=MD5-sess`)
	if !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Errorf("unsupported algorithm error %v does not match ErrUnsupportedAlgorithm", err)
	}
}

func FuzzParseResponse(f *testing.F) {
	for _, seed := range []string{
		`Digest username="alice",realm="example.com",cnonce="6b8b4567",nc=00000001,qop=auth,uri="sip:example.com",nonce="abc",response="0123",algorithm=MD5`,
		`Digest username="a\"b", realm="x, y", nonce="n", uri="sip:x", response="aa", opaque="o"`,
		`Digest username="u", realm="r", nonce="n", uri="sip:x", response="aa", qop=auth, nc=zz`,
		`Digest username="u`,
		`digest ,,, a=b`,
		`Basic abc`,
		"Digest username=\"\\\x00\"",
		``,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		r, err := ParseResponse(header)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %q does not match ErrMalformed", err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "digest: ") || strings.ContainsAny(msg, "\r\n") || len(msg) > 120 {
				t.Fatalf("error message %q unfit for a reason phrase", msg)
			}
			return
		}
		if r.Username == "" || r.Realm == "" || r.Nonce == "" || r.URI == "" || r.Response == "" {
			t.Fatalf("parsed with an empty required field: %+v", r)
		}
		if r.Algorithm != MD5 && r.Algorithm != SHA256 {
			t.Fatalf("parsed with algorithm %q", r.Algorithm)
		}
		if r.QOP != "" && (!strings.EqualFold(r.QOP, "auth") || r.CNonce == "" || !r.HasNC) {
			t.Fatalf("parsed qop without what it needs: %+v", r)
		}
	})
}
