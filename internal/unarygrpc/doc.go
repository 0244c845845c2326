// Package unarygrpc is a lean HTTP/2 server for unary gRPC calls.
//
// It exists for services that receive small unary calls at high rates from
// proxies (Envoy's ext_authz and rate limit filters), where the general
// purpose server transport of google.golang.org/grpc costs a large share of
// the CPU spent per call. It speaks standard gRPC over HTTP/2 (see
// https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md), the
// protocol Envoy's gRPC client speaks too; its tests run it against grpc-go's
// client, net/http's HTTP/2 client and hand-made frames.
//
// Scope and limits:
//
//   - Transport: HTTP/2 over cleartext TCP with prior knowledge (h2c). No TLS,
//     no HTTP/1.1 Upgrade, no ALPN.
//   - Unary calls only. A request must carry exactly one gRPC message, and the
//     answer is one message (or a status). Streaming methods cannot be served.
//   - No compression. Requests with a grpc-encoding other than "identity" are
//     answered with UNIMPLEMENTED; responses are never compressed.
//   - Handlers receive the request message bytes and a context. Request
//     metadata is not passed on, and handlers cannot set response headers or
//     trailers; only the response bytes or an error status go back.
//   - No interceptors, stats handlers, keepalive enforcement or reflection.
//
// Each connection has one reader goroutine, which parses frames, tracks
// streams and flow control, and hands each complete request to a worker
// goroutine of the server (Options.Workers, reused so that the stacks the
// handlers grow are kept; a call that finds every worker busy gets a new
// goroutine). The worker runs the handler and then writes the answer itself: frame
// writes on a connection are serialised by a mutex around a bufio.Writer, and
// an answer that fits the peer's flow-control windows goes out as HEADERS,
// DATA and trailers in a single flush. Control frames produced by the reader
// (SETTINGS and PING acknowledgements, WINDOW_UPDATE, RST_STREAM) are queued
// and written by whichever goroutine holds the write lock next, so the reader
// never waits behind an answer.
package unarygrpc
