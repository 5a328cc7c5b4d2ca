package node

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
)

// ErrIdentity marks a missing or unusable identity file. A node never makes
// itself a new identity on the quiet: its peer ID is its name in the
// federation, and the signatures others hold are bound to it.
var ErrIdentity = errors.New("node identity")

// CreateIdentity writes a new Ed25519 key to path with mode 0600. It refuses
// to overwrite an existing file.
func CreateIdentity(path string) (crypto.PrivKey, error) {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("%w %s: generate key: %v", ErrIdentity, path, err)
	}
	data, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("%w %s: encode key: %v", ErrIdentity, path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrIdentity, path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("%w %s: already exists; remove it first to make a new identity", ErrIdentity, path)
		}
		return nil, fmt.Errorf("%w %s: %v", ErrIdentity, path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w %s: write: %v", ErrIdentity, path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w %s: sync: %v", ErrIdentity, path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("%w %s: %v", ErrIdentity, path, err)
	}
	return key, nil
}

// LoadIdentity reads the key written by CreateIdentity. A missing, corrupt,
// non-Ed25519 or group/world-readable key file is an error.
func LoadIdentity(path string) (crypto.PrivKey, peer.ID, error) {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("%w %s: missing (create one with `callmesh init`)", ErrIdentity, path)
	}
	if err != nil {
		return nil, "", fmt.Errorf("%w %s: %v", ErrIdentity, path, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, "", fmt.Errorf("%w %s: mode %04o lets others read the private key; run chmod 600", ErrIdentity, path, st.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("%w %s: %v", ErrIdentity, path, err)
	}
	key, err := crypto.UnmarshalPrivateKey(data)
	if err != nil {
		return nil, "", fmt.Errorf("%w %s: corrupt key file: %v", ErrIdentity, path, err)
	}
	if key.Type() != crypto.Ed25519 {
		return nil, "", fmt.Errorf("%w %s: key type %s, want Ed25519", ErrIdentity, path, key.Type())
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, "", fmt.Errorf("%w %s: %v", ErrIdentity, path, err)
	}
	return key, id, nil
}

// CreateFederationKey writes a new libp2p pre-shared key file (mode 0600) in
// the standard /key/swarm/psk/1.0.0/ base16 form.
func CreateFederationKey(path string) error {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return fmt.Errorf("federation key %s: %w", path, err)
	}
	data := fmt.Sprintf("/key/swarm/psk/1.0.0/\n/base16/\n%x\n", k[:])
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("federation key %s: %w", path, err)
	}
	if _, err := f.WriteString(data); err != nil {
		f.Close()
		return fmt.Errorf("federation key %s: %w", path, err)
	}
	return f.Close()
}

// LoadFederationKey reads a pre-shared key file.
func LoadFederationKey(path string) (pnet.PSK, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: p2p.federation_key: %v", ErrConfig, err)
	}
	defer f.Close()
	psk, err := pnet.DecodeV1PSK(f)
	if err != nil {
		return nil, fmt.Errorf("%w: p2p.federation_key = %q: not a /key/swarm/psk/1.0.0/ key: %v", ErrConfig, path, err)
	}
	return psk, nil
}
