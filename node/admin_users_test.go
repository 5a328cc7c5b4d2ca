package node

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callmesh/callmesh/node/accounts"
	"github.com/callmesh/callmesh/node/digest"
)

// userCall makes one admin API request and returns the status and body.
func userCall(t *testing.T, c *http.Client, method, url, body string) (int, string, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp.StatusCode, string(data), resp.Header
}

// wantUserError checks an error answer: its status, and a JSON body whose
// "error" contains want.
func wantUserError(t *testing.T, what string, code int, body string, wantCode int, want string) {
	t.Helper()
	var e ErrorResponse
	if code != wantCode || json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e.Error, want) {
		t.Errorf("%s: %d %s; want %d with an error containing %q", what, code, body, wantCode, want)
	}
}

func TestAdminUsers(t *testing.T) {
	cfg := testNodeConfig(t, "alpha", t.TempDir())
	cfg.Domain = "voice.example.org"
	n := startNode(t, cfg)
	c := adminClient(t)
	users := n.AdminURL() + "/api/v1/users"

	code, body, _ := userCall(t, c, http.MethodGet, users, "")
	if code != http.StatusOK || strings.TrimSpace(body) != `{
  "users": []
}` {
		t.Fatalf("empty list: %d %s", code, body)
	}

	// Creation with defaults, then with every field.
	before := time.Now().Add(-time.Second)
	code, body, hdr := userCall(t, c, http.MethodPost, users, `{"name":"alice","password":"wonderland"}`)
	if code != http.StatusCreated || hdr.Get("Location") != "/api/v1/users/alice" || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("POST alice: %d %v %s", code, hdr, body)
	}
	var v accounts.View
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	if v.Name != "alice" || v.Class != accounts.Bronze || !slices.Equal(v.Allow, []string{"p2p"}) || v.MaxCalls != 2 ||
		v.Balance != 0 || v.Home != n.ID().String() || v.Created.Before(before) {
		t.Fatalf("alice with defaults: %+v", v)
	}
	code, body, _ = userCall(t, c, http.MethodPost, users,
		`{"name":"bob","password":"builder","class":"gold","allow":["p2p","conference","external:+44","!external:+4490"],"max_calls":0,"balance":12.5}`)
	if code != http.StatusCreated || !strings.Contains(body, `"balance": 12.50`) || !strings.Contains(body, `"max_calls": 0`) {
		t.Fatalf("POST bob: %d %s", code, body)
	}

	// Stored with credentials for the node's domain, which the API never shows.
	stored, err := n.Accounts().Get("alice")
	if err != nil {
		t.Fatal(err)
	}
	if stored.Realm != cfg.Domain || stored.Credentials != digest.NewCredentials("alice", cfg.Domain, "wonderland") {
		t.Fatalf("alice stored with realm %q credentials %+v", stored.Realm, stored.Credentials)
	}

	code, body, _ = userCall(t, c, http.MethodGet, users, "")
	var list UsersResponse
	if code != http.StatusOK || json.Unmarshal([]byte(body), &list) != nil || len(list.Users) != 2 ||
		list.Users[0].Name != "alice" || list.Users[1].Name != "bob" || list.Users[1].Class != accounts.Gold ||
		list.Users[1].Balance != 125000 || list.Users[1].MaxCalls != 0 || len(list.Users[1].Allow) != 4 {
		t.Fatalf("list: %d %s", code, body)
	}
	if strings.Contains(body, stored.Credentials.MD5) || strings.Contains(body, "ha1") || strings.Contains(body, "realm") {
		t.Fatalf("list shows credentials: %s", body)
	}

	code, body, _ = userCall(t, c, http.MethodGet, users+"/bob", "")
	if code != http.StatusOK || json.Unmarshal([]byte(body), &v) != nil || v.Name != "bob" || v.Home != n.ID().String() {
		t.Fatalf("GET bob: %d %s", code, body)
	}
	if strings.Contains(body, "credentials") {
		t.Fatalf("GET bob shows credentials: %s", body)
	}

	// Bad input names the field; nothing is stored.
	for _, tc := range []struct{ body, want string }{
		{`{"name":"carol","password":"pw","class":"platinum"}`, `user.class = "platinum": want gold, silver or bronze`},
		{`{"name":"carol","password":"pw","allow":["p2p","video"]}`, `user.allow[1] = "video"`},
		{`{"name":"carol","password":"pw","max_calls":-1}`, "user.max_calls"},
		{`{"name":"carol","password":"pw","balance":"12.34567"}`, "user.balance"},
		{`{"name":"carol","password":"pw","balance":1e3}`, "user.balance"},
		{`{"name":"carol","password":"pw","max_calls":"2"}`, "user.max_calls: got a JSON string, want a number"},
		{`{"name":"carol","password":"pw","maxcalls":2}`, `unknown field "maxcalls"`},
		{`{"name":"carol@example.org","password":"pw"}`, "user.name"},
		{`{"name":".carol","password":"pw"}`, "user.name"},
		{`{"password":"pw"}`, "user.name: required"},
		{`{"name":"carol"}`, "user.password: must not be empty"},
		{`{"name":"carol","password":"a\nb"}`, "user.password: must not contain CR or LF"},
		{`{"name":"carol","password":"` + strings.Repeat("x", 257) + `"}`, "user.password: longer than 256 bytes"},
		{`{"name":"carol","password":`, "request body"},
		{``, "request body: empty"},
		{`{"name":"carol","password":"pw"} {}`, "request body: unexpected data"},
		{`[1]`, "user: got a JSON array, want an object"},
	} {
		code, body, _ := userCall(t, c, http.MethodPost, users, tc.body)
		wantUserError(t, "POST "+tc.body, code, body, http.StatusBadRequest, tc.want)
	}
	if _, err := n.Accounts().Get("carol"); !errors.Is(err, accounts.ErrNotFound) {
		t.Fatalf("a rejected POST stored carol: %v", err)
	}
	code, body, _ = userCall(t, c, http.MethodPost, users, `{"name":"x","password":"`+strings.Repeat("x", 70<<10)+`"}`)
	wantUserError(t, "oversized POST", code, body, http.StatusRequestEntityTooLarge, "larger than")

	// Conflicts and missing users.
	code, body, _ = userCall(t, c, http.MethodPost, users, `{"name":"alice","password":"again"}`)
	wantUserError(t, "POST alice again", code, body, http.StatusConflict, `user "alice": already exists`)
	code, body, _ = userCall(t, c, http.MethodGet, users+"/nobody", "")
	wantUserError(t, "GET nobody", code, body, http.StatusNotFound, `user "nobody": not found`)
	code, body, _ = userCall(t, c, http.MethodGet, users+"/Alice", "")
	wantUserError(t, "GET Alice (names are case-sensitive)", code, body, http.StatusNotFound, "not found")
	code, body, _ = userCall(t, c, http.MethodGet, users+"/a%40b", "")
	wantUserError(t, "GET an invalid name", code, body, http.StatusBadRequest, "user.name")

	// Password change.
	code, body, _ = userCall(t, c, http.MethodPut, users+"/alice/password", `{"password":"looking glass"}`)
	if code != http.StatusNoContent || body != "" {
		t.Fatalf("PUT password: %d %s", code, body)
	}
	stored, _ = n.Accounts().Get("alice")
	if stored.Credentials != digest.NewCredentials("alice", cfg.Domain, "looking glass") {
		t.Fatal("PUT password did not change the credentials")
	}
	for _, tc := range []struct {
		name, body string
		code       int
		want       string
	}{
		{"alice", `{"password":""}`, http.StatusBadRequest, "user.password: must not be empty"},
		{"alice", `{"password":"a\r\nb"}`, http.StatusBadRequest, "user.password"},
		{"alice", `{"pasword":"x"}`, http.StatusBadRequest, `unknown field "pasword"`},
		{"alice", `"x"`, http.StatusBadRequest, "request body"},
		{"nobody", `{"password":"x"}`, http.StatusNotFound, `user "nobody": not found`},
	} {
		code, body, _ := userCall(t, c, http.MethodPut, users+"/"+tc.name+"/password", tc.body)
		wantUserError(t, "PUT "+tc.name+" "+tc.body, code, body, tc.code, tc.want)
	}
	if s, _ := n.Accounts().Get("alice"); s.Credentials != stored.Credentials {
		t.Fatal("a rejected PUT changed the credentials")
	}

	// Deletion.
	code, body, _ = userCall(t, c, http.MethodDelete, users+"/alice", "")
	if code != http.StatusNoContent || body != "" {
		t.Fatalf("DELETE alice: %d %s", code, body)
	}
	code, body, _ = userCall(t, c, http.MethodDelete, users+"/alice", "")
	wantUserError(t, "DELETE alice again", code, body, http.StatusNotFound, "not found")
	code, body, _ = userCall(t, c, http.MethodGet, users+"/alice", "")
	wantUserError(t, "GET alice after DELETE", code, body, http.StatusNotFound, "not found")
	code, _, _ = userCall(t, c, http.MethodPatch, users+"/bob", "{}")
	if code != http.StatusMethodNotAllowed {
		t.Fatalf("PATCH: %d, want 405", code)
	}

	// A handler running while the node closes its store answers 503.
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/api/v1/users/bob", nil)
	req.SetPathValue("name", "bob")
	n.handleGetUser(rec, req)
	wantUserError(t, "GET after Close", rec.Code, rec.Body.String(), http.StatusServiceUnavailable, "store closed")
}

func TestAdminUsersSurviveRestart(t *testing.T) {
	cfg := testNodeConfig(t, "alpha", t.TempDir())
	n := startNode(t, cfg)
	c := adminClient(t)
	code, body, _ := userCall(t, c, http.MethodPost, n.AdminURL()+"/api/v1/users",
		`{"name":"alice","password":"wonderland","class":"silver","balance":"-1.25"}`)
	if code != http.StatusCreated {
		t.Fatalf("POST: %d %s", code, body)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n = startNode(t, cfg)
	code, body, _ = userCall(t, c, http.MethodGet, n.AdminURL()+"/api/v1/users/alice", "")
	var v accounts.View
	if code != http.StatusOK || json.Unmarshal([]byte(body), &v) != nil || v.Class != accounts.Silver ||
		v.Balance != -12500 || v.Home != n.ID().String() {
		t.Fatalf("alice after a restart: %d %s", code, body)
	}
}
