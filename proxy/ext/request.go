package ext

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
)

// Request is one request's pass through its chain's filters, as the filters
// see it. The connection manager fills it once the route is chosen.
type Request struct {
	// HTTP is the request; its Header is the map (built for the filters),
	// which the filters may edit on the way upstream.
	HTTP *http.Request
	// Path is the normalised path; PathQuery the :path (Path, and "?" and
	// the raw query when there is one), which a filter that edits the query
	// keeps up to date.
	Path, PathQuery string
	// Scheme is "http" or "https".
	Scheme string
	// Start is when the request arrived.
	Start time.Time
	// Route is the name of the route the request matched.
	Route string
	// LocalAddr is the address the request's connection was accepted on
	// (nil: unknown); the remote address is HTTP.RemoteAddr.
	LocalAddr net.Addr

	w http.ResponseWriter
	// meta is the request's dynamic metadata, by namespace.
	meta map[string]*structpb.Struct
	// resp holds the response header edits of the filters that let the
	// request through, in filter order; they apply last filter first.
	resp [][]HeaderOp
	// code and bytes: the status and body size of a filter's answer.
	code  int
	bytes int64
}

// NewRequest returns the Request of req, which w answers; the connection
// manager fills in the rest.
func NewRequest(w http.ResponseWriter, req *http.Request) *Request {
	return &Request{HTTP: req, w: w}
}

// Replied returns the status and body size of a filter's local reply.
func (rq *Request) Replied() (code int, bytes int64) { return rq.code, rq.bytes }

// SetMetadata stores dynamic metadata under a namespace, merged with what
// is there (s's fields win).
func (rq *Request) SetMetadata(ns string, s *structpb.Struct) {
	if rq.meta == nil {
		rq.meta = map[string]*structpb.Struct{}
	}
	cur := rq.meta[ns]
	if cur == nil {
		rq.meta[ns] = s
		return
	}
	merged := &structpb.Struct{Fields: make(map[string]*structpb.Value, len(cur.GetFields())+len(s.GetFields()))}
	for k, v := range cur.GetFields() {
		merged.Fields[k] = v
	}
	for k, v := range s.GetFields() {
		merged.Fields[k] = v
	}
	rq.meta[ns] = merged
}

// Metadata returns the dynamic metadata of a namespace (nil: none).
func (rq *Request) Metadata(ns string) *structpb.Struct { return rq.meta[ns] }

// EditResponse records header edits for the response, whoever answers the
// request (the upstream, the route, or a later filter's local reply).
func (rq *Request) EditResponse(ops []HeaderOp) {
	if len(ops) > 0 {
		rq.resp = append(rq.resp, ops)
	}
}

// EditsResponse reports whether a filter recorded response header edits.
func (rq *Request) EditsResponse() bool { return len(rq.resp) != 0 }

// ApplyResponseEdits edits the response headers as the filters asked, the
// last filter's edits first (responses pass the filters in reverse).
func (rq *Request) ApplyResponseEdits(h http.Header) {
	for i := len(rq.resp) - 1; i >= 0; i-- {
		ApplyHeaderOps(h, rq.resp[i], false)
	}
}

// Reply answers the request for a filter (a local reply): status code,
// body and headers (edit, applied after the defaults; nil: none). A gRPC
// request gets its gRPC form: HTTP 200 with grpc-status (mapped from code as
// Envoy maps it) and grpc-message, without a body.
func (rq *Request) Reply(code int, body string, edit func(http.Header)) {
	w, req := rq.w, rq.HTTP
	hdr := w.Header()
	if isGRPC(req) {
		hdr["Content-Type"] = []string{"application/grpc"}
		hdr["Grpc-Status"] = []string{strconv.Itoa(grpcStatus(code))}
		if body != "" {
			hdr["Grpc-Message"] = []string{grpcMessage(body)}
		}
		if edit != nil {
			edit(hdr)
		}
		rq.ApplyResponseEdits(hdr)
		hdr["Content-Length"] = []string{"0"}
		rq.code = http.StatusOK
		w.WriteHeader(http.StatusOK)
		return
	}
	if body != "" {
		hdr["Content-Type"] = []string{"text/plain"}
	}
	if edit != nil {
		edit(hdr)
	}
	rq.ApplyResponseEdits(hdr)
	hdr["Content-Length"] = []string{strconv.Itoa(len(body))}
	rq.code = code
	w.WriteHeader(code)
	if body != "" && req.Method != http.MethodHead {
		n, _ := w.Write([]byte(body))
		rq.bytes = int64(n)
	}
}

// isGRPC reports whether Envoy takes the request for gRPC: content-type
// application/grpc, alone or followed by '+' or ';'.
func isGRPC(req *http.Request) bool {
	vs := req.Header["Content-Type"]
	if len(vs) == 0 {
		return false
	}
	ct := vs[0]
	const p = "application/grpc"
	if !strings.HasPrefix(ct, p) {
		return false
	}
	return len(ct) == len(p) || ct[len(p)] == '+' || ct[len(p)] == ';'
}

// grpcStatus maps an HTTP status to a gRPC status code as Envoy does.
func grpcStatus(code int) int {
	switch code {
	case 400:
		return 13 // INTERNAL
	case 401:
		return 16 // UNAUTHENTICATED
	case 403:
		return 7 // PERMISSION_DENIED
	case 404:
		return 12 // UNIMPLEMENTED
	case 429, 502, 503, 504:
		return 14 // UNAVAILABLE
	}
	return 2 // UNKNOWN
}

// grpcMessage percent-encodes a grpc-message value.
func grpcMessage(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' || c > '~' || c == '%' {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// RemoteIP is the client's address without its port ("" when unknown).
func (rq *Request) RemoteIP() string { return RemoteIP(rq.HTTP.RemoteAddr) }

// RemoteIP returns the host of a "host:port" address, without brackets.
func RemoteIP(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		addr = addr[:i]
	}
	return strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
}
