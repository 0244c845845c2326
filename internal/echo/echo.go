// Package echo is a demo and test backend: it answers every request with
// what it received (backend name, method, path, query, host, headers,
// protocol) as JSON, speaks HTTP/1.1 and h2c, and echoes WebSocket messages
// on /ws. The quickstart's v1 and v2 backends are two of these.
package echo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/net/websocket"
)

// Request is what the backend saw, as it answers it.
type Request struct {
	Backend  string              `json:"backend"`
	Method   string              `json:"method"`
	Path     string              `json:"path"`
	RawQuery string              `json:"rawQuery,omitempty"`
	Host     string              `json:"host"`
	Proto    string              `json:"proto"`
	Headers  map[string][]string `json:"headers"`
	BodySize int64               `json:"bodySize"`
}

// Handler answers as the backend called name.
func Handler(name string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/ws", websocket.Handler(func(ws *websocket.Conn) {
		_, _ = io.Copy(ws, ws)
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		if s := r.URL.Query().Get("status"); s != "" {
			if code, err := strconv.Atoi(s); err == nil && code >= 200 && code <= 599 {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("X-Echo-Backend", name)
				w.WriteHeader(code)
				_ = json.NewEncoder(w).Encode(describe(name, r, n))
				return
			}
		}
		if d := r.URL.Query().Get("delay"); d != "" {
			if dur, err := time.ParseDuration(d); err == nil && dur > 0 && dur <= 30*time.Second {
				select {
				case <-time.After(dur):
				case <-r.Context().Done():
					return
				}
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Echo-Backend", name)
		_ = json.NewEncoder(w).Encode(describe(name, r, n))
	})
	return mux
}

func describe(name string, r *http.Request, bodySize int64) Request {
	return Request{
		Backend: name, Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery,
		Host: r.Host, Proto: r.Proto, Headers: r.Header, BodySize: bodySize,
	}
}

// Serve serves Handler(name) on lis, HTTP/1.1 and h2c, until ctx is done.
func Serve(ctx context.Context, lis net.Listener, name string) error {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler:           Handler(name),
		Protocols:         &protocols,
		ReadHeaderTimeout: 10 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving echo backend %s on %s: %w", name, lis.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("stopping echo backend %s: %w", name, err)
	}
	return nil
}
