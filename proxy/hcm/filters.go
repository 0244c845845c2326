package hcm

import (
	"bufio"
	"net"
	"net/http"
	"time"

	"github.com/sekisho/sekisho/proxy/ext"
	"github.com/sekisho/sekisho/proxy/router"
)

// runFilters runs the chain's filters for a request that matched rt. done:
// a filter answered the request (rq.Replied says how).
func (h *Handler) runFilters(w http.ResponseWriter, req *http.Request, fs []*HTTPFilter, rt *router.Route, path, scheme string, start time.Time) (rq *ext.Request, done bool) {
	rq = ext.NewRequest(w, req)
	rq.Path, rq.PathQuery, rq.Scheme, rq.Start, rq.Route = path, path, scheme, start, rt.Name
	if q := req.URL.RawQuery; q != "" {
		rq.PathQuery = path + "?" + q
	}
	if rw, ok := w.(*respWriter); ok {
		rq.LocalAddr = rw.c.nc.LocalAddr()
	} else {
		rq.LocalAddr, _ = req.Context().Value(http.LocalAddrContextKey).(net.Addr)
	}
	re, _ := rt.Ext.(*RouteExt)
	for _, f := range fs {
		var cfg any
		if re != nil {
			if rf := re.Filters[f.Name]; rf != nil {
				if rf.Disabled {
					continue
				}
				cfg = rf.Config
			}
		}
		if f.Run.OnRequest(rq, cfg) == ext.Stop {
			return rq, true
		}
	}
	return rq, false
}

// filteredWriter applies the filters' response header edits when the
// response head is written.
type filteredWriter struct {
	http.ResponseWriter
	rq     *ext.Request
	edited bool
}

func (w *filteredWriter) edit() {
	if !w.edited {
		w.edited = true
		w.rq.ApplyResponseEdits(w.ResponseWriter.Header())
	}
}

func (w *filteredWriter) WriteHeader(code int) {
	if code >= 200 {
		w.edit()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *filteredWriter) Write(p []byte) (int, error) {
	w.edit()
	return w.ResponseWriter.Write(p)
}

func (w *filteredWriter) Flush() {
	w.edit()
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *filteredWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, http.ErrNotSupported
	}
	return hj.Hijack()
}

func (w *filteredWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
