package sipedge

import (
	"testing"

	"github.com/callmesh/callmesh/node/accounts"
	"github.com/emiago/sipgo/sip"
)

func TestSessionKind(t *testing.T) {
	for _, tc := range []struct {
		user string
		kind accounts.Kind
		dest string
	}{
		{"bob", accounts.KindP2P, ""},
		{"+4930123456", accounts.KindExternal, "+4930123456"},
		{"0049-30-123", accounts.KindExternal, "004930123"},
		{"(030) 123.456", accounts.KindExternal, "030123456"},
		{"+", accounts.KindP2P, ""},
		{"12ab", accounts.KindP2P, ""},
		{"", accounts.KindP2P, ""},
	} {
		got := SessionKind(sip.Uri{Scheme: "sip", User: tc.user, Host: "example.com"})
		if got.Kind != tc.kind || got.Destination != tc.dest {
			t.Errorf("SessionKind(%q) = %v %q, want %v %q", tc.user, got.Kind, got.Destination, tc.kind, tc.dest)
		}
	}
}
