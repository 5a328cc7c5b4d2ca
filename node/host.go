package node

import (
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// newHost starts the libp2p host: TCP, and QUIC only when a QUIC listen
// address is configured; the federation key when set; no relay, no NAT port
// mapping, no hole punching. Federation peers are few and long-lived, so the
// connection manager's watermarks sit well above a full mesh of dozens.
func newHost(cfg *Config, key crypto.PrivKey, psk pnet.PSK) (host.Host, error) {
	addrs := make([]ma.Multiaddr, 0, len(cfg.P2P.Listen))
	useQUIC := false
	for _, s := range cfg.P2P.Listen {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("p2p listen %q: %w", s, err)
		}
		useQUIC = useQUIC || isQUIC(a)
		addrs = append(addrs, a)
	}
	cm, err := connmgr.NewConnManager(400, 600, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("p2p connection manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.ListenAddrs(addrs...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.ConnectionManager(cm),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
		libp2p.UserAgent("callmesh/" + Version),
	}
	if useQUIC {
		opts = append(opts, libp2p.Transport(quic.NewTransport))
	}
	if psk != nil {
		opts = append(opts, libp2p.PrivateNetwork(psk))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("p2p host: %w", err)
	}
	return h, nil
}
