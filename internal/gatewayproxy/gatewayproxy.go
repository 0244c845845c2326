// Package gatewayproxy runs the data plane of one Gateway: the ADS client
// that follows the control plane and the proxy runtime it programs, with the
// admin handlers that show what it runs.
package gatewayproxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/sekisho/sekisho/proxy"
	"github.com/sekisho/sekisho/proxy/xdsclient"
)

// Options configure a Proxy.
type Options struct {
	// XDSAddress is the control plane's ADS address, host:port.
	XDSAddress string
	// Gateway is the Gateway this proxy serves, "<namespace>/<name>" (sent as node.cluster).
	Gateway string
	// NodeID names this proxy instance (node.id); it defaults to Gateway.
	NodeID     string
	Logger     *slog.Logger
	Registerer prometheus.Registerer // optional
	AccessLog  io.Writer             // optional: one JSON line per request
	// DrainTimeout bounds how long in-flight requests may take to finish on stop.
	DrainTimeout time.Duration
}

// Proxy is one Gateway's data plane.
type Proxy struct {
	opts    Options
	runtime *proxy.Runtime
	client  *xdsclient.Client
}

// New builds a proxy; Run starts it.
func New(opts Options) (*Proxy, error) {
	if opts.Gateway == "" {
		return nil, errors.New("creating proxy: a gateway (namespace/name) is required")
	}
	if opts.NodeID == "" {
		opts.NodeID = opts.Gateway
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.DrainTimeout == 0 {
		opts.DrainTimeout = 10 * time.Second
	}
	var (
		rt     *proxy.Runtime
		client *xdsclient.Client
	)
	rt = proxy.New(proxy.Options{
		Logger: opts.Logger, Registerer: opts.Registerer, Gateway: opts.Gateway, AccessLog: opts.AccessLog,
		// A listener whose port was taken binds on a later retry: the
		// control plane learns it from the ACK of the listeners it NACKed.
		OnListenersServe: func() { client.AckServed(xdsclient.ListenerType, rt.ListenersServe) },
	})
	var clientReg prometheus.Registerer
	if opts.Registerer != nil {
		clientReg = prometheus.WrapRegistererWith(prometheus.Labels{"gateway": opts.Gateway}, opts.Registerer)
	}
	client, err := xdsclient.New(xdsclient.Options{
		Address:    opts.XDSAddress,
		Node:       &corev3.Node{Id: opts.NodeID, Cluster: opts.Gateway},
		Applier:    rt,
		Logger:     opts.Logger,
		Registerer: clientReg,
	})
	if err != nil {
		return nil, fmt.Errorf("creating the ADS client of gateway %s: %w", opts.Gateway, err)
	}
	return &Proxy{opts: opts, runtime: rt, client: client}, nil
}

// Run follows the control plane until ctx is done, then stops the listeners
// and lets in-flight requests finish (up to DrainTimeout).
func (p *Proxy) Run(ctx context.Context) error {
	err := p.client.Run(ctx)
	dctx, cancel := context.WithTimeout(context.Background(), p.opts.DrainTimeout)
	defer cancel()
	if cerr := p.runtime.Close(dctx); cerr != nil {
		err = errors.Join(err, fmt.Errorf("draining gateway %s: %w", p.opts.Gateway, cerr))
	}
	return err
}

// Runtime is the proxy runtime (for tests and embedding).
func (p *Proxy) Runtime() *proxy.Runtime { return p.runtime }

// Ready reports nil once a configuration with at least one listener runs.
func (p *Proxy) Ready() error {
	snap := p.runtime.ConfigDump()
	if snap == nil || len(snap.Listeners) == 0 {
		st := p.client.Status()
		if st.LastError != nil {
			return fmt.Errorf("gateway %s: no configuration yet: %w", p.opts.Gateway, st.LastError)
		}
		return fmt.Errorf("gateway %s: no configuration yet", p.opts.Gateway)
	}
	return nil
}

// ServeConfigDump writes the xDS the proxy runs as JSON (private keys redacted).
func (p *Proxy) ServeConfigDump(w http.ResponseWriter, _ *http.Request) {
	dump, err := ConfigDump(p.runtime.ConfigDump(), p.client.Status())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(dump)
}

// ServeClusters writes every cluster's endpoints, health and ejections.
func (p *Proxy) ServeClusters(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	p.runtime.WriteClusters(w)
}

// ConfigDump renders a snapshot and the ADS client's status as indented JSON.
func ConfigDump(snap *xdsclient.Snapshot, st xdsclient.Status) ([]byte, error) {
	out := map[string]any{"connected": st.Connected}
	if st.LastError != nil {
		out["lastError"] = st.LastError.Error()
	}
	types := map[string]any{}
	for url, ts := range st.Types {
		t := map[string]any{"version": ts.Version}
		if ts.LastNACK != "" {
			t["lastNack"] = ts.LastNACK
			t["lastNackVersion"] = ts.LastNACKVersion
		}
		types[url] = t
	}
	out["types"] = types
	if snap != nil {
		for _, part := range []struct {
			key  string
			msgs map[string]proto.Message
		}{
			{"listeners", asMessages(snap.Listeners)},
			{"routes", asMessages(snap.Routes)},
			{"clusters", asMessages(snap.Clusters)},
			{"endpoints", asMessages(snap.Endpoints)},
			{"secrets", redacted(snap.Secrets)},
		} {
			names := make([]string, 0, len(part.msgs))
			for n := range part.msgs {
				names = append(names, n)
			}
			sort.Strings(names)
			list := make([]json.RawMessage, 0, len(names))
			for _, n := range names {
				b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(part.msgs[n])
				if err != nil {
					return nil, fmt.Errorf("encoding %s %q: %w", part.key, n, err)
				}
				list = append(list, b)
			}
			out[part.key] = list
		}
	}
	return json.MarshalIndent(out, "", "  ")
}

func asMessages[M proto.Message](m map[string]M) map[string]proto.Message {
	out := make(map[string]proto.Message, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func redacted(secrets map[string]*tlsv3.Secret) map[string]proto.Message {
	out := make(map[string]proto.Message, len(secrets))
	for k, s := range secrets {
		out[k] = RedactSecret(s)
	}
	return out
}

// RedactSecret returns a copy of s whose private key is replaced by a marker.
func RedactSecret(s *tlsv3.Secret) *tlsv3.Secret {
	c := proto.Clone(s).(*tlsv3.Secret)
	if tc := c.GetTlsCertificate(); tc != nil && tc.PrivateKey != nil {
		tc.PrivateKey = &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "[redacted]"}}
	}
	return c
}
