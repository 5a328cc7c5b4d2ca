package gossip

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// SyncProtocol is the anti-entropy stream: a node that joins or returns pulls
// the current state of every topic from each peer it connects to, because
// GossipSub keeps no history.
//
// Wire form: frames of a uvarint length and that many bytes. The client sends
// one frame, a JSON syncRequest; the server answers with one frame per
// envelope (its wire form, as signed by its issuer) and ends with an empty
// frame. Envelopes are checked exactly as gossip is, except that the sender
// need not be the issuer: the issuer's signature is the proof.
const SyncProtocol protocol.ID = "/callmesh/sync/1.0.0"

const (
	syncVersion    = 1
	maxSyncRequest = 4 << 10
	// resyncAfter bounds how often one peer is pulled from: identify runs
	// again on every new connection, and flapping links must not turn into
	// a stream of full-state transfers.
	resyncAfter = 2 * time.Second
)

type syncRequest struct {
	V      int      `json:"v"`
	Topics []string `json:"topics"`
}

// watchPeers pulls from each peer once identify has shown it speaks the sync
// protocol.
func (b *Bus) watchPeers() error {
	sub, err := b.host.EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted))
	if err != nil {
		return fmt.Errorf("gossip bus: watch peers: %w", err)
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer sub.Close()
		for {
			select {
			case <-b.ctx.Done():
				return
			case ev, ok := <-sub.Out():
				if !ok {
					return
				}
				e := ev.(event.EvtPeerIdentificationCompleted)
				if slices.Contains(e.Protocols, SyncProtocol) && b.shouldSync(e.Peer) {
					b.wg.Add(1)
					go func() {
						defer b.wg.Done()
						if _, err := b.Sync(b.ctx, e.Peer); err != nil && b.ctx.Err() == nil {
							b.log.Debug("anti-entropy pull failed", "peer", e.Peer, "err", err)
						}
					}()
				}
			}
		}
	}()
	return nil
}

func (b *Bus) shouldSync(p peer.ID) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if last, ok := b.synced[p]; ok && now.Sub(last) < resyncAfter {
		return false
	}
	b.synced[p] = now
	return true
}

func (b *Bus) stateTopics() []*Topic {
	b.mu.Lock()
	defer b.mu.Unlock()
	var ts []*Topic
	for _, tp := range b.topics {
		if tp.spec.State != nil {
			ts = append(ts, tp)
		}
	}
	slices.SortFunc(ts, func(x, y *Topic) int { return cmpString(x.spec.Name, y.spec.Name) })
	return ts
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Sync pulls the state of every joined topic that has state from peer p,
// checks each envelope and delivers the accepted ones. It returns how many
// were accepted.
func (b *Bus) Sync(ctx context.Context, p peer.ID) (int, error) {
	n, err := b.sync(ctx, p)
	result := "ok"
	if err != nil {
		result = "error"
	}
	b.metrics.Syncs.WithLabelValues(result).Inc()
	return n, err
}

func (b *Bus) sync(ctx context.Context, p peer.ID) (int, error) {
	topics := b.stateTopics()
	if len(topics) == 0 {
		return 0, nil
	}
	byName := make(map[string]*Topic, len(topics))
	req := syncRequest{V: syncVersion}
	for _, tp := range topics {
		byName[tp.spec.Name] = tp
		req.Topics = append(req.Topics, tp.spec.Name)
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.SyncTimeout)
	defer cancel()
	s, err := b.host.NewStream(ctx, p, SyncProtocol)
	if err != nil {
		return 0, fmt.Errorf("sync from %s: open stream: %w", p, err)
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	data, _ := json.Marshal(req)
	if err := writeFrame(s, data); err != nil {
		s.Reset()
		return 0, fmt.Errorf("sync from %s: send request: %w", p, err)
	}
	if err := s.CloseWrite(); err != nil {
		s.Reset()
		return 0, fmt.Errorf("sync from %s: close request: %w", p, err)
	}
	maxFrame := b.cfg.MaxMessageSize
	r := bufio.NewReader(s)
	accepted := 0
	for i := 0; ; i++ {
		frame, err := readFrame(r, maxFrame)
		if err != nil {
			s.Reset()
			return accepted, fmt.Errorf("sync from %s: read envelope %d: %w", p, i, err)
		}
		if len(frame) == 0 {
			return accepted, nil
		}
		if i >= b.cfg.SyncMaxEntries {
			s.Reset()
			return accepted, fmt.Errorf("sync from %s: more than %d envelopes", p, b.cfg.SyncMaxEntries)
		}
		env, err := Decode(frame, maxFrame)
		var res Result
		if err != nil {
			res = reject(nil, err)
			b.count("unknown", "sync", res)
			continue
		}
		tp, ok := byName[env.Topic]
		if !ok {
			res = Result{Env: env, Verdict: Reject, Reason: ReasonTopic, Err: ErrTopic}
			b.count("unknown", "sync", res)
			continue
		}
		if len(frame) > tp.checker.maxSize() {
			b.count(tp.spec.Name, "sync", Result{Verdict: Reject, Reason: ReasonOversize})
			continue
		}
		res = tp.checker.CheckEnvelope(env, "", b.now())
		b.count(tp.spec.Name, "sync", res)
		if res.Verdict != Accept || env.Issuer == b.self || tp.spec.Deliver == nil {
			continue
		}
		tp.spec.Deliver(env, p)
		accepted++
	}
}

func (c *Checker) maxSize() int {
	if c.MaxSize <= 0 {
		return DefaultMaxSize
	}
	return c.MaxSize
}

// serveSync answers one pull with the state of the requested topics.
func (b *Bus) serveSync(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(b.cfg.SyncTimeout))
	data, err := readFrame(bufio.NewReader(s), maxSyncRequest)
	if err != nil {
		s.Reset()
		return
	}
	var req syncRequest
	if err := json.Unmarshal(data, &req); err != nil || req.V != syncVersion {
		b.log.Debug("anti-entropy request refused", "peer", s.Conn().RemotePeer(), "err", err, "version", req.V)
		s.Reset()
		return
	}
	w := bufio.NewWriter(s)
	for _, name := range req.Topics {
		b.mu.Lock()
		tp := b.topics[name]
		b.mu.Unlock()
		if tp == nil || tp.spec.State == nil {
			continue
		}
		for _, env := range tp.spec.State() {
			frame, err := env.Encode()
			if err != nil {
				continue
			}
			if err := writeFrame(w, frame); err != nil {
				s.Reset()
				return
			}
		}
	}
	if err := writeFrame(w, nil); err != nil || w.Flush() != nil {
		s.Reset()
	}
}

func writeFrame(w io.Writer, data []byte) error {
	var hdr [binary.MaxVarintLen64]byte
	n := binary.PutUvarint(hdr[:], uint64(len(data)))
	if _, err := w.Write(hdr[:n]); err != nil {
		return err
	}
	_, err := w.Write(data)
	return err
}

var errFrameTooLarge = errors.New("frame too large")

func readFrame(r *bufio.Reader, max int) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if n > uint64(max) {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", errFrameTooLarge, n, max)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	return buf, nil
}
