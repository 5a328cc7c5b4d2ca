package accounts

import (
	"errors"
	"strings"
	"testing"
)

func TestAccountPermit(t *testing.T) {
	const (
		ok       = ""
		notAllow = "not allowed"
		tooMany  = "too many calls"
		badDest  = "bad destination"
	)
	for _, tc := range []struct {
		name     string
		allow    []string
		maxCalls int
		req      Request
		want     string // "" or the sentinel's text
		detail   string // substring of the message
	}{
		{"p2p granted", []string{"p2p"}, 2, Request{Kind: KindP2P, Destination: "bob"}, ok, ""},
		{"p2p missing", []string{"conference"}, 2, Request{Kind: KindP2P}, notAllow, `missing right "p2p"`},
		{"conference granted", []string{"p2p", "conference"}, 2, Request{Kind: KindConference}, ok, ""},
		{"conference missing", []string{"p2p"}, 2, Request{Kind: KindConference}, notAllow, `missing right "conference"`},
		{"no rights at all", nil, 2, Request{Kind: KindP2P}, notAllow, `"p2p"`},
		{"unknown kind", []string{"p2p", "conference", "external:*"}, 2, Request{Kind: 0}, notAllow, "unknown session kind"},

		{"external any number", []string{"external:*"}, 2, Request{Kind: KindExternal, Destination: "+4930123"}, ok, ""},
		{"external prefix", []string{"external:+44"}, 2, Request{Kind: KindExternal, Destination: "+442079460000"}, ok, ""},
		{"external exact number", []string{"external:+442079460000"}, 2, Request{Kind: KindExternal, Destination: "+442079460000"}, ok, ""},
		{"external other country", []string{"external:+44"}, 2, Request{Kind: KindExternal, Destination: "+33140000000"},
			notAllow, "no right external:PREFIX covers +33140000000"},
		{"plus is significant", []string{"external:44"}, 2, Request{Kind: KindExternal, Destination: "+442079460000"}, notAllow, "covers"},
		{"prefix without plus", []string{"external:0044"}, 2, Request{Kind: KindExternal, Destination: "00442079460000"}, ok, ""},
		{"prefix longer than number", []string{"external:+4420"}, 2, Request{Kind: KindExternal, Destination: "+44"}, notAllow, "covers"},
		{"p2p does not cover external", []string{"p2p", "conference"}, 2, Request{Kind: KindExternal, Destination: "+1555"}, notAllow, "external"},
		{"external does not cover p2p", []string{"external:*"}, 2, Request{Kind: KindP2P}, notAllow, `"p2p"`},

		{"longer deny wins", []string{"external:+1", "!external:+1900"}, 2, Request{Kind: KindExternal, Destination: "+19005550100"},
			notAllow, `+19005550100 is excluded by "!external:+1900"`},
		{"deny does not reach sibling", []string{"external:+1", "!external:+1900"}, 2, Request{Kind: KindExternal, Destination: "+12125550100"}, ok, ""},
		{"longer grant inside deny", []string{"!external:+1900", "external:+1900555"}, 2, Request{Kind: KindExternal, Destination: "+19005550100"}, ok, ""},
		{"deny all but one country", []string{"!external:*", "external:+41"}, 2, Request{Kind: KindExternal, Destination: "+41441234567"}, ok, ""},
		{"deny all", []string{"!external:*", "external:+41"}, 2, Request{Kind: KindExternal, Destination: "+49301234567"}, notAllow, `excluded by "!external:*"`},
		{"order does not matter", []string{"!external:+1900", "external:*"}, 2, Request{Kind: KindExternal, Destination: "+19005550100"}, notAllow, "excluded"},
		{"star is shortest", []string{"external:*", "!external:+7"}, 2, Request{Kind: KindExternal, Destination: "+74951234567"}, notAllow, "excluded"},

		{"bad destination letters", []string{"external:*"}, 2, Request{Kind: KindExternal, Destination: "bob"}, badDest, `"bob"`},
		{"bad destination empty", []string{"external:*"}, 2, Request{Kind: KindExternal, Destination: ""}, badDest, ""},
		{"bad destination plus only", []string{"external:*"}, 2, Request{Kind: KindExternal, Destination: "+"}, badDest, ""},
		{"bad destination too long", []string{"external:*"}, 2, Request{Kind: KindExternal, Destination: "+" + strings.Repeat("1", 32)}, badDest, ""},

		{"below the limit", []string{"p2p"}, 2, Request{Kind: KindP2P, ActiveCalls: 1}, ok, ""},
		{"at the limit", []string{"p2p"}, 2, Request{Kind: KindP2P, ActiveCalls: 2}, tooMany, "2 active, max_calls 2"},
		{"above the limit", []string{"external:*"}, 1, Request{Kind: KindExternal, Destination: "+1", ActiveCalls: 5}, tooMany, "5 active"},
		{"barred account", []string{"p2p"}, 0, Request{Kind: KindP2P}, tooMany, "max_calls 0"},
		{"right checked before limit", []string{"p2p"}, 0, Request{Kind: KindConference}, notAllow, "conference"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := testAccount(t, "alice")
			a.Allow, a.MaxCalls = tc.allow, tc.maxCalls
			err := a.Permit(tc.req)
			if tc.want == ok {
				if err != nil {
					t.Fatalf("Permit(%+v) = %v; want nil", tc.req, err)
				}
				return
			}
			var pe *PermitError
			if !errors.As(err, &pe) {
				t.Fatalf("Permit(%+v) = %v; want a *PermitError", tc.req, err)
			}
			sentinel := map[string]error{notAllow: ErrNotAllowed, tooMany: ErrTooManyCalls, badDest: ErrBadDestination}[tc.want]
			if !errors.Is(err, sentinel) {
				t.Fatalf("Permit(%+v) = %v; want it to wrap %v", tc.req, err, sentinel)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, `user "alice": `+tc.want) || !strings.Contains(msg, tc.detail) {
				t.Fatalf("Permit(%+v) = %q; want `user \"alice\": %s…%s…`", tc.req, msg, tc.want, tc.detail)
			}
		})
	}
}

func TestAccountPermitMissingRight(t *testing.T) {
	a := testAccount(t, "alice")
	a.Allow = []string{"external:+44", "!external:+1"}
	var pe *PermitError
	if err := a.Permit(Request{Kind: KindExternal, Destination: "+33123"}); !errors.As(err, &pe) ||
		pe.Missing != "external:+33123" || pe.DeniedBy != "" {
		t.Fatalf("uncovered number: %#v", pe)
	}
	if err := a.Permit(Request{Kind: KindExternal, Destination: "+1555"}); !errors.As(err, &pe) ||
		pe.Missing != "" || pe.DeniedBy != "!external:+1" {
		t.Fatalf("excluded number: %#v", pe)
	}
	if err := a.Permit(Request{Kind: KindConference}); !errors.As(err, &pe) || pe.Missing != "conference" {
		t.Fatalf("conference: %#v", pe)
	}
}

func TestAccountValidateRight(t *testing.T) {
	for _, s := range []string{"p2p", "conference", "external:*", "external:+1", "external:0", "!external:*", "!external:+1900"} {
		if err := ValidateRight(s); err != nil {
			t.Errorf("ValidateRight(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "P2P", "external", "external:", "external:**", "external:+*", "!conference", "!!external:1", "external:1-2"} {
		if err := ValidateRight(s); err == nil || !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidateRight(%q) = %v; want ErrInvalid", s, err)
		}
	}
}
