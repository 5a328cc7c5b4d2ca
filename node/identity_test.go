package node

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// checkIdentityErr asserts that err is an identity error whose message
// contains every one of want.
func checkIdentityErr(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	if !errors.Is(err, ErrIdentity) {
		t.Errorf("error %q does not match ErrIdentity", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

func TestCreateAndLoadIdentity(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "identity.key") // parent created on demand
	key, err := CreateIdentity(path)
	if err != nil {
		t.Fatalf("CreateIdentity: %v", err)
	}
	if key.Type() != crypto.Ed25519 {
		t.Errorf("key type = %v, want Ed25519", key.Type())
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("identity file mode = %04o, want 0600", perm)
	}
	if st, err := os.Stat(filepath.Dir(path)); err != nil {
		t.Fatal(err)
	} else if perm := st.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("created key directory mode = %04o, want no group/other access", perm)
	}

	want, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	loaded, id, err := LoadIdentity(path)
	if err != nil {
		t.Fatalf("LoadIdentity: %v", err)
	}
	if id != want {
		t.Errorf("LoadIdentity peer ID = %s, want %s", id, want)
	}
	if !loaded.Equals(key) {
		t.Error("LoadIdentity returned another key")
	}
	// A second load gives the same identity again.
	if _, id2, err := LoadIdentity(path); err != nil || id2 != want {
		t.Errorf("second LoadIdentity = %s, %v; want %s", id2, err, want)
	}
}

func TestCreateIdentityRefusesOverwrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identity.key")
	if _, err := CreateIdentity(path); err != nil {
		t.Fatalf("CreateIdentity: %v", err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	key, err := CreateIdentity(path)
	checkIdentityErr(t, err, path, "already exists")
	if key != nil {
		t.Error("CreateIdentity returned a key with its error")
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("a refused CreateIdentity changed the existing key file")
	}
}

func TestLoadIdentityMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identity.key")
	_, _, err := LoadIdentity(path)
	checkIdentityErr(t, err, "missing", path)
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadIdentity of a missing file left %s behind (stat: %v)", path, err)
	}
}

func TestLoadIdentityCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identity.key")
	if err := os.WriteFile(path, []byte("this is not a protobuf key"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := LoadIdentity(path)
	checkIdentityErr(t, err, "corrupt", path)
}

func TestLoadIdentityTruncated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identity.key")
	if _, err := CreateIdentity(path); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data[:len(data)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = LoadIdentity(path)
	checkIdentityErr(t, err, "corrupt")
}

func TestLoadIdentityReadableByOthers(t *testing.T) {
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604} {
		path := filepath.Join(t.TempDir(), "identity.key")
		if _, err := CreateIdentity(path); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, _, err := LoadIdentity(path)
		checkIdentityErr(t, err, "chmod", path)
	}
}

func TestLoadIdentityOwnerOnlyModes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identity.key")
	if _, err := CreateIdentity(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadIdentity(path); err != nil {
		t.Fatalf("LoadIdentity of a 0400 key: %v", err)
	}
}

func TestLoadIdentityNotEd25519(t *testing.T) {
	key, _, err := crypto.GenerateSecp256k1Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	data, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "identity.key")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = LoadIdentity(path)
	checkIdentityErr(t, err, "Ed25519", "Secp256k1")
}

func TestLoadIdentityDirectory(t *testing.T) {
	path := t.TempDir()
	if err := os.Chmod(path, 0o700); err != nil {
		t.Fatal(err)
	}
	_, _, err := LoadIdentity(path)
	checkIdentityErr(t, err, path)
}

func TestFederationKeyRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "federation.key")
	if err := CreateFederationKey(path); err != nil {
		t.Fatalf("CreateFederationKey: %v", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("federation key mode = %04o, want 0600", perm)
	}
	psk, err := LoadFederationKey(path)
	if err != nil {
		t.Fatalf("LoadFederationKey: %v", err)
	}
	if len(psk) != 32 {
		t.Fatalf("key length = %d, want 32", len(psk))
	}
	if bytes.Equal(psk, make([]byte, 32)) {
		t.Fatal("federation key is all zeros")
	}
	again, err := LoadFederationKey(path)
	if err != nil || !bytes.Equal(again, psk) {
		t.Fatalf("second LoadFederationKey = %x, %v; want %x", []byte(again), err, []byte(psk))
	}

	// Two keys are different keys.
	other := filepath.Join(t.TempDir(), "federation.key")
	if err := CreateFederationKey(other); err != nil {
		t.Fatal(err)
	}
	psk2, err := LoadFederationKey(other)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(psk, psk2) {
		t.Fatal("two CreateFederationKey calls made the same key")
	}
}

func TestCreateFederationKeyRefusesOverwrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "federation.key")
	if err := CreateFederationKey(path); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	err = CreateFederationKey(path)
	if err == nil {
		t.Fatal("CreateFederationKey overwrote an existing key")
	}
	if !errors.Is(err, os.ErrExist) || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q: want os.ErrExist naming %s", err, path)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("a refused CreateFederationKey changed the key file")
	}
}

func TestLoadFederationKeyErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.key")
	if err := os.WriteFile(garbage, []byte("not a key at all\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "short.key")
	if err := os.WriteFile(short, []byte("/key/swarm/psk/1.0.0/\n/base16/\nabcd\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{
		"garbage": garbage,
		"short":   short,
		"missing": filepath.Join(dir, "missing.key"),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := LoadFederationKey(path)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrConfig) {
				t.Errorf("error %q does not match ErrConfig", err)
			}
			if !strings.Contains(err.Error(), "p2p.federation_key") {
				t.Errorf("error %q does not mention p2p.federation_key", err)
			}
		})
	}
}
