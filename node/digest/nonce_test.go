package digest

import (
	"encoding/base64"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const testRealm = "example.com"

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func newTestNonces(t testing.TB, cfg NonceConfig) *Nonces {
	t.Helper()
	if cfg.Secret == nil {
		cfg.Secret = testSecret
	}
	n, err := NewNonces(cfg, testRealm)
	if err != nil {
		t.Fatalf("NewNonces: %v", err)
	}
	return n
}

func TestNonceConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  NonceConfig
		want string
	}{
		{NonceConfig{Secret: testSecret}, ""},
		{NonceConfig{Secret: testSecret[:16], Lifetime: time.Second, MaxTracked: 1}, ""},
		{NonceConfig{}, "auth.nonce_secret: must be at least 16 bytes"},
		{NonceConfig{Secret: testSecret[:15]}, "auth.nonce_secret: must be at least 16 bytes"},
		{NonceConfig{Secret: testSecret, Lifetime: -time.Second}, "auth.nonce_lifetime: must be > 0"},
		{NonceConfig{Secret: testSecret, MaxTracked: -1}, "auth.nonce_max_tracked: must be > 0"},
	} {
		err := tc.cfg.Validate()
		if got := errString(err); got != tc.want {
			t.Errorf("Validate(%+v) = %q, want %q", tc.cfg, got, tc.want)
		}
		if _, err := NewNonces(tc.cfg, testRealm); errString(err) != tc.want {
			t.Errorf("NewNonces(%+v) error = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestNewNoncesDefaults(t *testing.T) {
	secret := append([]byte(nil), testSecret...)
	n := newTestNonces(t, NonceConfig{Secret: secret})
	if n.lifetime != int64(DefaultNonceLifetime) || n.track.max != DefaultMaxTracked {
		t.Errorf("defaults: lifetime %v, max %d", time.Duration(n.lifetime), n.track.max)
	}
	nonce := n.New(t0)
	secret[0] ^= 1 // the caller's slice is copied
	if st := n.Check(nonce, 1, true, t0); st != NonceValid {
		t.Errorf("after changing the caller's secret: %v", st)
	}
}

func TestNonceFormat(t *testing.T) {
	if want := base64.RawURLEncoding.EncodedLen(nonceRaw); nonceLen != want {
		t.Fatalf("nonceLen = %d, want %d", nonceLen, want)
	}
	n := newTestNonces(t, NonceConfig{})
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		s := n.New(t0)
		if len(s) != nonceLen || strings.Trim(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			t.Fatalf("nonce %q is not %d base64url characters", s, nonceLen)
		}
		if seen[s] {
			t.Fatalf("nonce %q issued twice", s)
		}
		seen[s] = true
	}
}

func TestNonceCheck(t *testing.T) {
	const life = time.Minute
	n := newTestNonces(t, NonceConfig{Lifetime: life})
	nonce := n.New(t0)
	foreign := newTestNonces(t, NonceConfig{Secret: []byte("another secret, 16+ bytes")}).New(t0)
	otherRealm, err := NewNonces(NonceConfig{Secret: testSecret}, "other.example.com")
	if err != nil {
		t.Fatal(err)
	}
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	for _, tc := range []struct {
		name  string
		nonce string
		now   time.Time
		want  NonceStatus
	}{
		{"fresh", nonce, t0, NonceValid},
		{"just before expiry", nonce, t0.Add(life), NonceValid},
		{"clock stepped back", nonce, t0.Add(-time.Hour), NonceValid},
		{"expired", nonce, t0.Add(life + time.Nanosecond), NonceStale},
		{"long expired", nonce, t0.Add(24 * time.Hour), NonceStale},
		{"tag altered", flip(nonce, 0), t0, NonceInvalid},
		{"time altered", flip(nonce, 44), t0, NonceInvalid},
		{"random part altered", flip(nonce, nonceLen-2), t0, NonceInvalid},
		{"another secret", foreign, t0, NonceInvalid},
		{"another realm", otherRealm.New(t0), t0, NonceInvalid},
		{"truncated", nonce[:nonceLen-1], t0, NonceInvalid},
		{"extended", nonce + "A", t0, NonceInvalid},
		{"padded base64", nonce[:nonceLen-1] + "=", t0, NonceInvalid},
		{"not base64", strings.Repeat("*", nonceLen), t0, NonceInvalid},
		{"empty", "", t0, NonceInvalid},
		{"RFC example", rfcNonce, t0, NonceInvalid},
	} {
		if got := n.Check(tc.nonce, 1, true, tc.now); got != tc.want {
			t.Errorf("%s: Check = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// step is one use of a nonce: Check, then Commit if commit is set.
type step struct {
	nc          uint32
	counted     bool
	commit      bool
	check, done NonceStatus
}

func runSteps(t *testing.T, n *Nonces, nonce string, steps []step) {
	t.Helper()
	for i, s := range steps {
		if got := n.Check(nonce, s.nc, s.counted, t0); got != s.check {
			t.Errorf("step %d (nc %d, counted %v): Check = %v, want %v", i, s.nc, s.counted, got, s.check)
		}
		if !s.commit {
			continue
		}
		if got := n.Commit(nonce, s.nc, s.counted); got != s.done {
			t.Errorf("step %d (nc %d, counted %v): Commit = %v, want %v", i, s.nc, s.counted, got, s.done)
		}
	}
}

func TestNonceCount(t *testing.T) {
	n := newTestNonces(t, NonceConfig{})
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"increasing counts", []step{
			{nc: 1, counted: true, commit: true, check: NonceValid, done: NonceValid},
			{nc: 2, counted: true, commit: true, check: NonceValid, done: NonceValid},
			{nc: 5, counted: true, commit: true, check: NonceValid, done: NonceValid},
			{nc: 6, counted: true, check: NonceValid},
		}},
		{"repeated and lower counts", []step{
			{nc: 1, counted: true, commit: true, check: NonceValid, done: NonceValid},
			{nc: 1, counted: true, commit: true, check: NonceReplay, done: NonceReplay},
			{nc: 3, counted: true, commit: true, check: NonceValid, done: NonceValid},
			{nc: 2, counted: true, commit: true, check: NonceReplay, done: NonceReplay},
			{nc: 3, counted: true, check: NonceReplay},
			{nc: 4, counted: true, check: NonceValid},
		}},
		{"nc 0 is never new", []step{
			{nc: 0, counted: true, commit: true, check: NonceReplay, done: NonceReplay},
		}},
		{"last count", []step{
			{nc: 0xffffffff, counted: true, commit: true, check: NonceValid, done: NonceValid},
			{nc: 0xffffffff, counted: true, check: NonceReplay},
		}},
		{"checking alone uses nothing", []step{
			{nc: 1, counted: true, check: NonceValid},
			{nc: 1, counted: true, check: NonceValid},
			{nc: 1, counted: true, commit: true, check: NonceValid, done: NonceValid},
		}},
		{"without qop the nonce is single-use", []step{
			{check: NonceValid},
			{commit: true, check: NonceValid, done: NonceValid},
			{commit: true, check: NonceReplay, done: NonceReplay},
			{nc: 7, counted: true, check: NonceReplay},
		}},
		{"after a counted use, an uncounted one is a replay", []step{
			{nc: 1, counted: true, commit: true, check: NonceValid, done: NonceValid},
			{commit: true, check: NonceReplay, done: NonceReplay},
			{nc: 2, counted: true, check: NonceValid},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runSteps(t, n, n.New(t0), tc.steps)
		})
	}
	if got := n.Commit("bogus", 1, true); got != NonceInvalid {
		t.Errorf("Commit(bogus) = %v, want invalid", got)
	}
}

func TestNonceTrackerEviction(t *testing.T) {
	n := newTestNonces(t, NonceConfig{MaxTracked: 3})
	var nonces []string
	for i := 0; i < 5; i++ {
		nonces = append(nonces, n.New(t0.Add(time.Duration(i)*time.Second)))
	}
	if got := n.Tracked(); got != 3 {
		t.Errorf("Tracked = %d, want 3", got)
	}
	now := t0.Add(10 * time.Second)
	for i, want := range []NonceStatus{NonceStale, NonceStale, NonceValid, NonceValid, NonceValid} {
		if got := n.Check(nonces[i], 1, true, now); got != want {
			t.Errorf("nonce %d: Check = %v, want %v", i, got, want)
		}
	}
	if got := n.Commit(nonces[0], 1, true); got != NonceStale {
		t.Errorf("Commit(evicted) = %v, want stale", got)
	}
	// Usage state survives the churn of others.
	if got := n.Commit(nonces[4], 1, true); got != NonceValid {
		t.Fatalf("Commit = %v", got)
	}
	n.New(now)
	n.New(now)
	if got := n.Check(nonces[4], 1, true, now); got != NonceReplay {
		t.Errorf("after churn: Check = %v, want replay", got)
	}
	n.New(now)
	if got := n.Check(nonces[4], 2, true, now); got != NonceStale {
		t.Errorf("after eviction: Check = %v, want stale", got)
	}
}

func TestNonceTrackerGrowsAndWraps(t *testing.T) {
	n := newTestNonces(t, NonceConfig{MaxTracked: 40})
	var nonces []string
	for i := 0; i < 100; i++ {
		nonces = append(nonces, n.New(t0))
		if got, want := n.Tracked(), min(i+1, 40); got != want {
			t.Fatalf("after %d: Tracked = %d, want %d", i+1, got, want)
		}
		if len(n.track.uses) != n.track.size {
			t.Fatalf("after %d: map has %d, ring %d", i+1, len(n.track.uses), n.track.size)
		}
	}
	for i, s := range nonces {
		want := NonceStale
		if i >= 60 {
			want = NonceValid
		}
		if got := n.Check(s, 1, true, t0); got != want {
			t.Errorf("nonce %d: Check = %v, want %v", i, got, want)
		}
	}
}

func TestNonceTrackerForgetsExpired(t *testing.T) {
	n := newTestNonces(t, NonceConfig{Lifetime: time.Minute})
	for i := 0; i < 10; i++ {
		n.New(t0.Add(time.Duration(i) * time.Second))
	}
	n.New(t0.Add(time.Minute + 4*time.Second + 1)) // nonces 0..4 have expired
	if got := n.Tracked(); got != 6 {
		t.Errorf("Tracked = %d, want 6", got)
	}
}

func TestNonceCommitConcurrent(t *testing.T) {
	n := newTestNonces(t, NonceConfig{MaxTracked: 64})
	nonce := n.New(t0)
	const workers = 8
	var wg sync.WaitGroup
	results := make([]NonceStatus, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.New(t0) // churn the tracker meanwhile
			if n.Check(nonce, 1, true, t0) == NonceValid {
				results[w] = n.Commit(nonce, 1, true)
			} else {
				results[w] = NonceReplay
			}
		}()
	}
	wg.Wait()
	valid := 0
	for _, r := range results {
		switch r {
		case NonceValid:
			valid++
		case NonceReplay:
		default:
			t.Errorf("unexpected status %v", r)
		}
	}
	if valid != 1 {
		t.Errorf("%d commits of the same count succeeded, want 1", valid)
	}
}

func TestStatusStrings(t *testing.T) {
	for v, want := range map[NonceStatus]string{NonceValid: "valid", NonceStale: "stale", NonceInvalid: "invalid", NonceReplay: "replay", 0: "NonceStatus(0)"} {
		if got := v.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(v), got, want)
		}
	}
	for v, want := range map[Result]string{OK: "ok", Stale: "stale", Fail: "fail", Replay: "replay", 9: "Result(9)"} {
		if got := v.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(v), got, want)
		}
	}
}
