package unarygrpc

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

const (
	echoMethod = "/test.Echo/Echo"
	slowMethod = "/test.Echo/Slow"
)

// echo answers "echo:" followed by the request.
func echo(_ context.Context, req []byte) ([]byte, error) {
	return append([]byte("echo:"), req...), nil
}

func TestUnaryCall(t *testing.T) {
	ts := startServer(t, Options{}, map[string]Handler{echoMethod: echo})
	cc := dial(t, ts.addr)

	resp, err := invoke(testCtx(t, 5*time.Second), cc, echoMethod, []byte("hello"))
	if err != nil {
		t.Fatalf("call failed: %v", err)
	}
	if got, want := string(resp), "echo:hello"; got != want {
		t.Fatalf("response = %q, want %q", got, want)
	}

	// An empty request message and an empty response are valid too.
	ts2 := startServer(t, Options{}, map[string]Handler{"/test.Empty/Empty": func(_ context.Context, req []byte) ([]byte, error) {
		if len(req) != 0 {
			return nil, status.Errorf(codes.InvalidArgument, "got %d bytes", len(req))
		}
		return nil, nil
	}})
	resp, err = invoke(testCtx(t, 5*time.Second), dial(t, ts2.addr), "/test.Empty/Empty", nil)
	if err != nil || len(resp) != 0 {
		t.Fatalf("empty call = %q, %v; want empty response", resp, err)
	}
}

func TestConcurrentCalls(t *testing.T) {
	const (
		clients    = 2
		goroutines = 64
		calls      = 200
	)
	var handled atomic.Int64
	ts := startServer(t, Options{}, map[string]Handler{echoMethod: func(ctx context.Context, req []byte) ([]byte, error) {
		handled.Add(1)
		return echo(ctx, req)
	}})
	ccs := make([]*grpc.ClientConn, clients)
	for i := range ccs {
		ccs[i] = dial(t, ts.addr)
	}

	ctx := testCtx(t, 60*time.Second)
	errs := make(chan error, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cc := ccs[g%clients]
			for i := range calls {
				// Vary the size so that some requests span several frames.
				req := fmt.Appendf(nil, "g%d-i%d-%s", g, i, strings.Repeat("x", (g*calls+i)%20000))
				resp, err := invoke(ctx, cc, echoMethod, req)
				if err != nil {
					errs <- fmt.Errorf("goroutine %d call %d: %v", g, i, err)
					return
				}
				if !bytes.Equal(resp, append([]byte("echo:"), req...)) {
					errs <- fmt.Errorf("goroutine %d call %d: wrong response (%d bytes)", g, i, len(resp))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := handled.Load(); got != goroutines*calls {
		t.Errorf("handler ran %d times, want %d", got, goroutines*calls)
	}
}

func TestErrorStatus(t *testing.T) {
	// Characters that must be percent-encoded: '%', control characters and
	// non-ASCII UTF-8.
	// "%41" checks that '%' itself is escaped: unescaped, it would decode as "A".
	const msg = "denied: 100% sure, literal %41\tline1\nline2 — ünïcødé ✓"
	detailed, err := status.New(codes.FailedPrecondition, "with details").WithDetails(wrapperspb.String("detail"))
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, Options{}, map[string]Handler{
		"/test.Err/Status": func(context.Context, []byte) ([]byte, error) {
			return nil, status.Error(codes.PermissionDenied, msg)
		},
		"/test.Err/Plain": func(context.Context, []byte) ([]byte, error) {
			return nil, errors.New("plain failure")
		},
		"/test.Err/Details": func(context.Context, []byte) ([]byte, error) {
			return nil, detailed.Err()
		},
		"/test.Err/Context": func(context.Context, []byte) ([]byte, error) {
			return nil, fmt.Errorf("lookup: %w", context.DeadlineExceeded)
		},
		"/test.Err/Panic": func(context.Context, []byte) ([]byte, error) {
			panic("boom")
		},
	})
	cc := dial(t, ts.addr)
	ctx := testCtx(t, 10*time.Second)

	cases := []struct {
		method string
		code   codes.Code
		msg    string
	}{
		{"/test.Err/Status", codes.PermissionDenied, msg},
		{"/test.Err/Plain", codes.Unknown, "plain failure"},
		{"/test.Err/Details", codes.FailedPrecondition, "with details"},
		{"/test.Err/Context", codes.DeadlineExceeded, "lookup: context deadline exceeded"},
		{"/test.Err/Panic", codes.Internal, "grpc: handler for /test.Err/Panic panicked"},
	}
	for _, tc := range cases {
		_, err := invoke(ctx, cc, tc.method, []byte("x"))
		st := status.Convert(err)
		if st.Code() != tc.code || st.Message() != tc.msg {
			t.Errorf("%s: got %v %q, want %v %q", tc.method, st.Code(), st.Message(), tc.code, tc.msg)
		}
		if tc.method == "/test.Err/Details" {
			d := st.Details()
			if len(d) != 1 {
				t.Errorf("details = %v, want one StringValue", d)
			} else if sv, ok := d[0].(*wrapperspb.StringValue); !ok || sv.GetValue() != "detail" {
				t.Errorf("detail = %v, want StringValue \"detail\"", d[0])
			}
		}
	}

	// The connection still works after all those errors.
	if _, err := invoke(ctx, cc, "/test.Err/Status", nil); status.Code(err) != codes.PermissionDenied {
		t.Errorf("follow-up call: %v", err)
	}
}

func TestUnknownMethod(t *testing.T) {
	ts := startServer(t, Options{}, map[string]Handler{echoMethod: echo})
	cc := dial(t, ts.addr)
	ctx := testCtx(t, 5*time.Second)
	for _, m := range []string{"/test.Echo/Nope", "/other.Service/Echo"} {
		_, err := invoke(ctx, cc, m, []byte("x"))
		if status.Code(err) != codes.Unimplemented {
			t.Errorf("%s: got %v, want UNIMPLEMENTED", m, err)
		}
	}
	// Known methods still work on the same connection.
	if _, err := invoke(ctx, cc, echoMethod, []byte("x")); err != nil {
		t.Fatalf("echo after unknown methods: %v", err)
	}
}

func TestClientDeadline(t *testing.T) {
	type seen struct {
		hasDeadline bool
		remaining   time.Duration
		err         error
	}
	got := make(chan seen, 1)
	ts := startServer(t, Options{}, map[string]Handler{slowMethod: func(ctx context.Context, _ []byte) ([]byte, error) {
		dl, ok := ctx.Deadline()
		s := seen{hasDeadline: ok, remaining: time.Until(dl)}
		select {
		case <-ctx.Done():
			s.err = ctx.Err()
		case <-time.After(10 * time.Second):
		}
		got <- s
		return nil, ctx.Err()
	}})
	cc := dial(t, ts.addr)
	// Connect first so the deadline covers only the call.
	if _, err := invoke(testCtx(t, 5*time.Second), cc, "/warm.Up/Call", nil); status.Code(err) != codes.Unimplemented {
		t.Fatalf("warm-up: %v", err)
	}

	const timeout = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	_, err := invoke(ctx, cc, slowMethod, []byte("x"))
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("client got %v, want DEADLINE_EXCEEDED", err)
	}
	s := waitFor(t, got, 5*time.Second, "handler to observe the deadline")
	if !s.hasDeadline || s.remaining <= 0 || s.remaining > timeout {
		t.Errorf("handler deadline: present=%v remaining=%v, want within (0, %v]", s.hasDeadline, s.remaining, timeout)
	}
	// The client resets the stream when its deadline passes, which may beat
	// the server's own timer: either way the context must be done.
	if !errors.Is(s.err, context.DeadlineExceeded) && !errors.Is(s.err, context.Canceled) {
		t.Errorf("handler ctx.Err() = %v, want deadline exceeded or canceled", s.err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("deadline took %v to take effect", el)
	}
}

func TestClientCancel(t *testing.T) {
	started := make(chan struct{}, 1)
	done := make(chan error, 1)
	ts := startServer(t, Options{}, map[string]Handler{slowMethod: func(ctx context.Context, _ []byte) ([]byte, error) {
		started <- struct{}{}
		select {
		case <-ctx.Done():
			done <- ctx.Err()
		case <-time.After(10 * time.Second):
			done <- errors.New("context not cancelled")
		}
		return []byte("late"), nil
	}})
	cc := dial(t, ts.addr)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	callErr := make(chan error, 1)
	go func() {
		_, err := invoke(ctx, cc, slowMethod, []byte("x"))
		callErr <- err
	}()
	waitFor(t, started, 5*time.Second, "handler to start")
	cancel()
	if err := waitFor(t, callErr, 5*time.Second, "call to return"); status.Code(err) != codes.Canceled {
		t.Errorf("client got %v, want CANCELED", err)
	}
	if err := waitFor(t, done, 5*time.Second, "handler context"); !errors.Is(err, context.Canceled) {
		t.Errorf("handler ctx.Err() = %v, want context.Canceled", err)
	}

	// The dropped answer must not disturb the connection.
	if _, err := invoke(testCtx(t, 5*time.Second), cc, "/test.Echo/Missing", nil); status.Code(err) != codes.Unimplemented {
		t.Errorf("call after cancel: %v", err)
	}
}

// digest answers the SHA-256 of the request and its length.
func digest(_ context.Context, req []byte) ([]byte, error) {
	sum := sha256.Sum256(req)
	return fmt.Appendf(sum[:], ":%d", len(req)), nil
}

func TestLargeRequest(t *testing.T) {
	ts := startServer(t, Options{}, map[string]Handler{"/test.Big/Digest": digest})
	cc := dial(t, ts.addr)
	req := make([]byte, 3<<20) // three times our stream and connection windows
	rand.Read(req)
	want, _ := digest(context.Background(), req)

	ctx := testCtx(t, 20*time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 { // concurrently, so the connection window is shared
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := invoke(ctx, cc, "/test.Big/Digest", req)
			if err != nil {
				errs <- err
			} else if !bytes.Equal(resp, want) {
				errs <- errors.New("request arrived corrupted")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestLargeResponse(t *testing.T) {
	big := make([]byte, 1<<20+3) // far above the client's initial 64 KiB window
	rand.Read(big)
	ts := startServer(t, Options{}, map[string]Handler{"/test.Big/Get": func(context.Context, []byte) ([]byte, error) {
		return big, nil
	}})
	cc := dial(t, ts.addr)
	ctx := testCtx(t, 20*time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := invoke(ctx, cc, "/test.Big/Get", []byte("x"))
			if err != nil {
				errs <- err
			} else if !bytes.Equal(resp, big) {
				errs <- fmt.Errorf("response corrupted (%d bytes)", len(resp))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestMaxRecvMsgSize(t *testing.T) {
	var calls atomic.Int32
	ts := startServer(t, Options{MaxRecvMsgSize: 1000}, map[string]Handler{echoMethod: func(ctx context.Context, req []byte) ([]byte, error) {
		calls.Add(1)
		return echo(ctx, req)
	}})
	cc := dial(t, ts.addr)
	ctx := testCtx(t, 10*time.Second)

	for _, size := range []int{1001, 100 << 10, 3 << 20} {
		_, err := invoke(ctx, cc, echoMethod, make([]byte, size))
		if status.Code(err) != codes.ResourceExhausted {
			t.Errorf("%d-byte request: got %v, want RESOURCE_EXHAUSTED", size, err)
		}
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("handler ran %d times for oversized requests", n)
	}
	// A request at the limit passes, on the same connection.
	req := bytes.Repeat([]byte("a"), 1000)
	resp, err := invoke(ctx, cc, echoMethod, req)
	if err != nil || !bytes.Equal(resp, append([]byte("echo:"), req...)) {
		t.Errorf("1000-byte request: %v", err)
	}
}

func TestGracefulStop(t *testing.T) {
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	ts := startServer(t, Options{}, map[string]Handler{slowMethod: func(ctx context.Context, req []byte) ([]byte, error) {
		started <- struct{}{}
		<-release
		time.Sleep(50 * time.Millisecond)
		return append([]byte("done:"), req...), ctx.Err()
	}})
	cc := dial(t, ts.addr)

	callDone := make(chan error, 1)
	var resp []byte
	go func() {
		var err error
		resp, err = invoke(testCtx(t, 10*time.Second), cc, slowMethod, []byte("x"))
		callDone <- err
	}()
	waitFor(t, started, 5*time.Second, "handler to start")

	stopped := make(chan struct{})
	go func() {
		ts.GracefulStop()
		close(stopped)
	}()
	ts.waitServe(t) // the listener closes at once
	select {
	case <-stopped:
		t.Fatal("GracefulStop returned while a call was in flight")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)

	if err := waitFor(t, callDone, 5*time.Second, "in-flight call"); err != nil {
		t.Fatalf("in-flight call failed: %v", err)
	}
	if string(resp) != "done:x" {
		t.Fatalf("in-flight call response = %q", resp)
	}
	waitFor(t, stopped, 5*time.Second, "GracefulStop to return")

	// New connections are refused and Serve refuses to start again.
	if _, err := invoke(testCtx(t, 2*time.Second), dial(t, ts.addr), slowMethod, nil); status.Code(err) == codes.OK {
		t.Error("call after GracefulStop succeeded")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.Serve(l); !errors.Is(err, ErrServerStopped) {
		t.Errorf("Serve after GracefulStop = %v", err)
	}
}

func TestGracefulStopIdleConnections(t *testing.T) {
	ts := startServer(t, Options{}, map[string]Handler{echoMethod: echo})
	for range 3 {
		cc := dial(t, ts.addr)
		if _, err := invoke(testCtx(t, 5*time.Second), cc, echoMethod, nil); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() {
		ts.GracefulStop()
		close(done)
	}()
	waitFor(t, done, 5*time.Second, "GracefulStop with idle connections")
	ts.waitServe(t)
}

func TestStop(t *testing.T) {
	started := make(chan struct{}, 4)
	cancelled := make(chan error, 4)
	ts := startServer(t, Options{}, map[string]Handler{slowMethod: func(ctx context.Context, _ []byte) ([]byte, error) {
		started <- struct{}{}
		select {
		case <-ctx.Done():
			cancelled <- ctx.Err()
		case <-time.After(10 * time.Second):
			cancelled <- errors.New("not cancelled")
		}
		return nil, ctx.Err()
	}})
	cc := dial(t, ts.addr)

	callErrs := make(chan error, 4)
	for range 4 {
		go func() {
			_, err := invoke(testCtx(t, 10*time.Second), cc, slowMethod, nil)
			callErrs <- err
		}()
	}
	for range 4 {
		waitFor(t, started, 5*time.Second, "handlers to start")
	}
	stopDone := make(chan struct{})
	go func() {
		ts.Stop()
		close(stopDone)
	}()
	waitFor(t, stopDone, 5*time.Second, "Stop to return")
	ts.waitServe(t)
	for range 4 {
		if err := waitFor(t, cancelled, 5*time.Second, "handler contexts"); !errors.Is(err, context.Canceled) {
			t.Errorf("handler ctx.Err() = %v, want context.Canceled", err)
		}
		if err := waitFor(t, callErrs, 5*time.Second, "calls to fail"); status.Code(err) != codes.Unavailable {
			t.Errorf("client got %v, want UNAVAILABLE", err)
		}
	}
}

func TestGarbageInsteadOfPreface(t *testing.T) {
	ts := startServer(t, Options{}, map[string]Handler{echoMethod: echo})
	for _, garbage := range []string{
		"GET / HTTP/1.1\r\nHost: example\r\n\r\n",
		"\x00\x01\x02",
		"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n",
	} {
		nc, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(nc, garbage); err != nil {
			t.Fatal(err)
		}
		// The server sends its SETTINGS, then closes: reading ends with EOF
		// (or a reset), not with our deadline.
		_, err = io.Copy(io.Discard, nc)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("%q: connection not closed by the server", garbage)
		}
		nc.Close()
	}
	// The server still serves real clients.
	if _, err := invoke(testCtx(t, 5*time.Second), dial(t, ts.addr), echoMethod, nil); err != nil {
		t.Fatalf("call after garbage connections: %v", err)
	}
}

func TestEnvoyAuthorizationClient(t *testing.T) {
	ts := startServer(t, Options{}, map[string]Handler{
		authv3.Authorization_Check_FullMethodName: func(_ context.Context, req []byte) ([]byte, error) {
			var in authv3.CheckRequest
			if err := proto.Unmarshal(req, &in); err != nil {
				return nil, status.Error(codes.InvalidArgument, err.Error())
			}
			code := int32(codes.PermissionDenied)
			if in.GetAttributes().GetRequest().GetHttp().GetPath() == "/allowed" {
				code = int32(codes.OK)
			}
			return proto.Marshal(&authv3.CheckResponse{Status: &rpcstatus.Status{Code: code}})
		},
	})
	cc, err := grpc.NewClient(ts.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := authv3.NewAuthorizationClient(cc)
	ctx := testCtx(t, 5*time.Second)
	for path, want := range map[string]codes.Code{"/allowed": codes.OK, "/denied": codes.PermissionDenied} {
		resp, err := client.Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: path}},
		}})
		if err != nil {
			t.Fatalf("Check(%s): %v", path, err)
		}
		if got := codes.Code(resp.GetStatus().GetCode()); got != want {
			t.Errorf("Check(%s) status = %v, want %v", path, got, want)
		}
	}
}

func TestHandlePanicsOnMisuse(t *testing.T) {
	mustPanic := func(name string, f func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s: no panic", name)
			}
		}()
		f()
	}
	s := NewServer(Options{})
	s.Handle(echoMethod, echo)
	mustPanic("duplicate", func() { s.Handle(echoMethod, echo) })
	mustPanic("nil handler", func() { s.Handle("/a.B/C", nil) })
	mustPanic("bad name", func() { s.Handle("a.B/C", echo) })
	mustPanic("no method", func() { s.Handle("/a.B/", echo) })
}

// TestNetHTTPClient calls the server with net/http's HTTP/2 client (h2c with
// prior knowledge), an HTTP/2 implementation independent of grpc-go's. It
// sends content-length and ends requests in its own way.
func TestNetHTTPClient(t *testing.T) {
	ts := startServer(t, Options{}, map[string]Handler{
		echoMethod: echo,
		"/test.Err/Status": func(context.Context, []byte) ([]byte, error) {
			return nil, status.Error(codes.NotFound, "no such thing")
		},
	})
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protocols}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}

	post := func(method string, body []byte) *http.Response {
		t.Helper()
		req, err := http.NewRequest("POST", "http://"+ts.addr+method, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("content-type", "application/grpc")
		req.Header.Set("te", "trailers")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	resp := post(echoMethod, grpcFrame([]byte("hi")))
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.ProtoMajor != 2 {
		t.Fatalf("client spoke %s, want HTTP/2", resp.Proto)
	}
	if resp.StatusCode != 200 || resp.Header.Get("content-type") != "application/grpc" {
		t.Errorf("status %d, content-type %q", resp.StatusCode, resp.Header.Get("content-type"))
	}
	if !bytes.Equal(body, grpcFrame([]byte("echo:hi"))) {
		t.Errorf("body = %q", body)
	}
	if got := resp.Trailer.Get("grpc-status"); got != "0" {
		t.Errorf("trailer grpc-status = %q, want 0", got)
	}

	// A trailers-only answer arrives as headers on an empty body.
	resp = post("/test.Err/Status", grpcFrame(nil))
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if got, msg := resp.Header.Get("grpc-status"), resp.Header.Get("grpc-message"); got != "5" || msg != "no such thing" {
		t.Errorf("grpc-status %q, grpc-message %q; want 5, %q", got, msg, "no such thing")
	}
}

// TestBusyWorkersDoNotHoldCalls: with fewer workers than calls in flight,
// the calls beyond the workers run on goroutines of their own. Every
// handler here waits until all of them have started, so a call left waiting
// for a worker would stall the test.
func TestBusyWorkersDoNotHoldCalls(t *testing.T) {
	const calls = 8
	started := make(chan struct{}, calls)
	release := make(chan struct{})
	ts := startServer(t, Options{Workers: 1}, map[string]Handler{
		"/t.S/Wait": func(ctx context.Context, req []byte) ([]byte, error) {
			started <- struct{}{}
			select {
			case <-release:
				return req, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		},
	})
	cc := dial(t, ts.addr)
	errs := make(chan error, calls)
	for i := range calls {
		go func() {
			resp, err := invoke(testCtx(t, 10*time.Second), cc, "/t.S/Wait", []byte{byte(i)})
			if err == nil && (len(resp) != 1 || resp[0] != byte(i)) {
				err = fmt.Errorf("call %d answered %v", i, resp)
			}
			errs <- err
		}()
	}
	for i := range calls {
		waitFor(t, started, 5*time.Second, fmt.Sprintf("handler %d of %d to start", i+1, calls))
	}
	close(release)
	for range calls {
		if err := waitFor(t, errs, 5*time.Second, "a call to end"); err != nil {
			t.Error(err)
		}
	}
	// The worker goes on serving calls after the burst.
	for i := range 3 {
		if _, err := invoke(testCtx(t, 5*time.Second), cc, "/t.S/Wait", []byte{byte(i)}); err != nil {
			t.Fatalf("call after the burst: %v", err)
		}
	}
}

// TestStopEndsAGracefulStop: a graceful stop that waits on a call is ended
// by Stop, which cancels the call (how a bounded drain ends).
func TestStopEndsAGracefulStop(t *testing.T) {
	started := make(chan struct{}, 1)
	ts := startServer(t, Options{}, map[string]Handler{
		"/t.S/Hang": func(ctx context.Context, req []byte) ([]byte, error) {
			started <- struct{}{}
			<-ctx.Done()
			return nil, ctx.Err()
		},
	})
	cc := dial(t, ts.addr)
	go func() { _, _ = invoke(testCtx(t, 30*time.Second), cc, "/t.S/Hang", nil) }()
	waitFor(t, started, 5*time.Second, "the call to start")

	graceful := make(chan struct{})
	go func() { ts.GracefulStop(); close(graceful) }()
	select {
	case <-graceful:
		t.Fatal("GracefulStop returned while a call was in flight")
	case <-time.After(200 * time.Millisecond):
	}
	ts.Stop()
	waitFor(t, graceful, 5*time.Second, "GracefulStop to return after Stop")
	ts.waitServe(t)
}
