package unarygrpc

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// rawClient is a minimal HTTP/2 client that lets tests send exactly the
// frames they want and inspect every frame the server sends.
type rawClient struct {
	t    testing.TB
	nc   net.Conn
	fr   *http2.Framer
	dec  *hpack.Decoder
	enc  *hpack.Encoder
	hbuf bytes.Buffer
}

// newRawClient connects, sends the preface and settings, and consumes the
// server's SETTINGS and WINDOW_UPDATE.
func newRawClient(t testing.TB, addr string, settings ...http2.Setting) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	c := &rawClient{t: t, nc: nc, fr: http2.NewFramer(nc, nc)}
	tableSize := uint32(4096)
	for _, s := range settings {
		if s.ID == http2.SettingHeaderTableSize {
			tableSize = s.Val
		}
	}
	c.dec = hpack.NewDecoder(tableSize, nil)
	c.fr.ReadMetaHeaders = c.dec
	c.enc = hpack.NewEncoder(&c.hbuf)
	if _, err := io.WriteString(nc, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := c.fr.WriteSettings(settings...); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *rawClient) readFrame() http2.Frame {
	c.t.Helper()
	f, err := c.fr.ReadFrame()
	if err != nil {
		c.t.Fatalf("read frame: %v", err)
	}
	return f
}

// next returns the next frame that is not a SETTINGS, WINDOW_UPDATE or PING
// (those are connection housekeeping most tests do not care about).
func (c *rawClient) next() http2.Frame {
	c.t.Helper()
	for {
		switch f := c.readFrame().(type) {
		case *http2.SettingsFrame, *http2.WindowUpdateFrame, *http2.PingFrame:
		default:
			return f
		}
	}
}

// headers sends a request header block; extra holds name/value pairs that
// are added or, for names already present, replace the defaults.
func (c *rawClient) headers(id uint32, path string, endStream bool, extra ...string) {
	c.t.Helper()
	fields := [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":path", path}, {":authority", "test"},
		{"content-type", "application/grpc"}, {"te", "trailers"},
	}
	for i := 0; i < len(extra); i += 2 {
		replaced := false
		for j := range fields {
			if fields[j][0] == extra[i] {
				fields[j][1], replaced = extra[i+1], true
			}
		}
		if !replaced {
			fields = append(fields, [2]string{extra[i], extra[i+1]})
		}
	}
	c.hbuf.Reset()
	for _, f := range fields {
		if f[1] == "<omit>" {
			continue
		}
		c.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.hbuf.Bytes(), EndStream: endStream, EndHeaders: true}); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawClient) data(id uint32, endStream bool, b []byte) {
	c.t.Helper()
	if err := c.fr.WriteData(id, endStream, b); err != nil {
		c.t.Fatal(err)
	}
}

// call sends a complete request with msg framed as one gRPC message.
func (c *rawClient) call(id uint32, path string, msg []byte, extra ...string) {
	c.t.Helper()
	c.headers(id, path, false, extra...)
	c.data(id, true, grpcFrame(msg))
}

func grpcFrame(msg []byte) []byte {
	b := make([]byte, 5, 5+len(msg))
	binary.BigEndian.PutUint32(b[1:], uint32(len(msg)))
	return append(b, msg...)
}

// header returns a field's value in a decoded header block.
func header(f *http2.MetaHeadersFrame, name string) string {
	for _, hf := range f.Fields {
		if hf.Name == name {
			return hf.Value
		}
	}
	return ""
}

// expectStatus reads until the trailers of stream id and checks them.
func (c *rawClient) expectStatus(id uint32, httpStatus int, grpcStatus int) *http2.MetaHeadersFrame {
	c.t.Helper()
	for {
		switch f := c.next().(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamID != id {
				c.t.Fatalf("HEADERS for stream %d, want %d", f.StreamID, id)
			}
			if s := header(f, ":status"); s != "" && s != strconv.Itoa(httpStatus) {
				c.t.Fatalf(":status = %s, want %d", s, httpStatus)
			}
			if !f.StreamEnded() {
				continue
			}
			if got := header(f, "grpc-status"); got != strconv.Itoa(grpcStatus) {
				c.t.Fatalf("grpc-status = %q (%q), want %d", got, header(f, "grpc-message"), grpcStatus)
			}
			return f
		case *http2.DataFrame:
		case *http2.RSTStreamFrame:
			// Early answers to earlier streams end with RST_STREAM(NO_ERROR)
			// when they were sent before the request was complete.
			if f.StreamID >= id || f.ErrCode != http2.ErrCodeNo {
				c.t.Fatalf("unexpected RST_STREAM(%d, %v)", f.StreamID, f.ErrCode)
			}
		default:
			c.t.Fatalf("unexpected frame %v", f.Header())
		}
	}
}

// expectGoAway reads until GOAWAY and checks its error code.
func (c *rawClient) expectGoAway(code http2.ErrCode) {
	c.t.Helper()
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			c.t.Fatalf("connection ended without GOAWAY %v: %v", code, err)
		}
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			if ga.ErrCode != code {
				c.t.Fatalf("GOAWAY code %v (%q), want %v", ga.ErrCode, ga.DebugData(), code)
			}
			return
		}
	}
}

func TestServerPrefaceAndHousekeeping(t *testing.T) {
	ts := startServer(t, Options{MaxConcurrentStreams: 7}, map[string]Handler{echoMethod: echo})
	c := newRawClient(t, ts.addr)

	sf, ok := c.readFrame().(*http2.SettingsFrame)
	if !ok || sf.IsAck() {
		t.Fatal("first frame is not SETTINGS")
	}
	want := map[http2.SettingID]uint32{
		http2.SettingMaxConcurrentStreams: 7,
		http2.SettingInitialWindowSize:    1 << 20,
		http2.SettingMaxHeaderListSize:    16 << 10,
	}
	for id, v := range want {
		if got, ok := sf.Value(id); !ok || got != v {
			t.Errorf("setting %v = %d (present %v), want %d", id, got, ok, v)
		}
	}
	wu, ok := c.readFrame().(*http2.WindowUpdateFrame)
	if !ok || wu.StreamID != 0 || wu.Increment != 1<<20-65535 {
		t.Fatalf("second frame = %v, want connection WINDOW_UPDATE of %d", wu, 1<<20-65535)
	}
	if sf, ok := c.readFrame().(*http2.SettingsFrame); !ok || !sf.IsAck() {
		t.Fatal("client SETTINGS not acknowledged")
	}

	payload := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
	c.fr.WritePing(false, payload)
	if p, ok := c.readFrame().(*http2.PingFrame); !ok || !p.IsAck() || p.Data != payload {
		t.Fatalf("PING not answered with matching ACK")
	}

	// PRIORITY and unknown frame types are ignored.
	c.fr.WritePriority(1, http2.PriorityParam{StreamDep: 0, Weight: 10})
	c.fr.WriteRawFrame(0x42, 0, 0, []byte("unknown"))
	c.call(1, echoMethod, []byte("hi"))
	f, ok := c.next().(*http2.MetaHeadersFrame)
	if !ok || header(f, ":status") != "200" || header(f, "content-type") != "application/grpc" || f.StreamEnded() {
		t.Fatalf("response headers = %v", f)
	}
	d, ok := c.next().(*http2.DataFrame)
	if !ok || !bytes.Equal(d.Data(), grpcFrame([]byte("echo:hi"))) {
		t.Fatalf("response DATA = %v", d)
	}
	c.expectStatus(1, 200, 0)

	// A call answered in full gets no RST_STREAM: ping as a barrier and make
	// sure nothing but the ACK arrives.
	c.fr.WritePing(false, payload)
	for {
		f := c.readFrame()
		if p, ok := f.(*http2.PingFrame); ok && p.IsAck() {
			break
		}
		if _, ok := f.(*http2.WindowUpdateFrame); !ok {
			t.Fatalf("unexpected frame after a complete answer: %v", f.Header())
		}
	}
}

func TestRefusedStream(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	ts := startServer(t, Options{MaxConcurrentStreams: 1}, map[string]Handler{slowMethod: func(ctx context.Context, _ []byte) ([]byte, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil, nil
	}})
	c := newRawClient(t, ts.addr)
	c.call(1, slowMethod, nil)
	c.headers(3, slowMethod, false)
	f, ok := c.next().(*http2.RSTStreamFrame)
	if !ok || f.StreamID != 3 || f.ErrCode != http2.ErrCodeRefusedStream {
		t.Fatalf("got %v, want RST_STREAM(3, REFUSED_STREAM)", f)
	}
	// DATA for the refused stream is discarded without harming the connection.
	c.data(3, true, grpcFrame(nil))

	// Resetting stream 1 cancels its handler; the stream keeps counting
	// until the handler has returned, after which new streams are accepted.
	c.fr.WriteRSTStream(1, http2.ErrCodeCancel)
	for id := uint32(5); ; id += 2 {
		if id > 200 {
			t.Fatal("new streams still refused after the handler returned")
		}
		c.call(id, "/test.Unknown/M", nil)
		switch f := c.next().(type) {
		case *http2.RSTStreamFrame:
			if f.StreamID != id || f.ErrCode != http2.ErrCodeRefusedStream {
				t.Fatalf("got RST_STREAM(%d, %v), want REFUSED_STREAM for %d", f.StreamID, f.ErrCode, id)
			}
			time.Sleep(10 * time.Millisecond)
			continue
		case *http2.MetaHeadersFrame:
			if f.StreamID != id || header(f, "grpc-status") != strconv.Itoa(codeUnimplemented) {
				t.Fatalf("stream %d: got %v", id, f.Fields)
			}
		default:
			t.Fatalf("unexpected frame %v", f.Header())
		}
		break // answered, so the stream was accepted
	}
}

func TestRequestValidation(t *testing.T) {
	ts := startServer(t, Options{}, map[string]Handler{echoMethod: echo})
	c := newRawClient(t, ts.addr)
	id := uint32(1)
	nextID := func() uint32 { id += 2; return id - 2 }

	// Answered with a status.
	statusCases := []struct {
		name       string
		msg        []byte // raw body; nil means one framed "x"
		extra      []string
		httpStatus int
		grpcStatus int
	}{
		{"gzip encoding", nil, []string{"grpc-encoding", "gzip"}, 200, codeUnimplemented},
		{"identity encoding", nil, []string{"grpc-encoding", "identity"}, 200, codeOK},
		{"proto subtype", nil, []string{"content-type", "application/grpc+proto"}, 200, codeOK},
		{"json content-type", nil, []string{"content-type", "application/json"}, 415, codeInternal},
		{"GET", nil, []string{":method", "GET"}, 405, codeInternal},
		{"bad timeout", nil, []string{"grpc-timeout", "10x"}, 200, codeInternal},
		{"long timeout", nil, []string{"grpc-timeout", "123456789S"}, 200, codeInternal},
		{"compressed flag", []byte{1, 0, 0, 0, 1, 'x'}, nil, 200, codeInternal},
		{"two messages", append(grpcFrame([]byte("a")), grpcFrame([]byte("b"))...), nil, 200, codeInternal},
		{"short message", []byte{0, 0, 0, 0, 9, 'x'}, nil, 200, codeInternal},
		{"short prefix", []byte{0, 0}, nil, 200, codeInternal},
	}
	for _, tc := range statusCases {
		sid := nextID()
		body := tc.msg
		if body == nil {
			body = grpcFrame([]byte("x"))
		}
		c.headers(sid, echoMethod, false, tc.extra...)
		c.data(sid, true, body)
		t.Logf("%s", tc.name)
		f := c.expectStatus(sid, tc.httpStatus, tc.grpcStatus)
		if tc.grpcStatus == codeUnimplemented && header(f, "grpc-accept-encoding") != "identity" {
			t.Errorf("%s: missing grpc-accept-encoding", tc.name)
		}
	}

	// No message at all: END_STREAM on HEADERS.
	sid := nextID()
	c.headers(sid, echoMethod, true)
	c.expectStatus(sid, 200, codeInternal)

	// An early answer while the client is still sending is followed by
	// RST_STREAM(NO_ERROR).
	sid = nextID()
	c.headers(sid, "/test.Unknown/M", false)
	c.expectStatus(sid, 200, codeUnimplemented)
	if f, ok := c.next().(*http2.RSTStreamFrame); !ok || f.StreamID != sid || f.ErrCode != http2.ErrCodeNo {
		t.Fatalf("got %v, want RST_STREAM(%d, NO_ERROR)", f, sid)
	}
	c.data(sid, true, grpcFrame(nil)) // late DATA is ignored

	// Malformed requests are reset with PROTOCOL_ERROR.
	for _, extra := range [][]string{
		{"connection", "keep-alive"},
		{"te", "gzip"},
		{":scheme", "<omit>"},
		{":method", "<omit>"},
		{"content-length", "nope"},
	} {
		sid := nextID()
		c.headers(sid, echoMethod, false, extra...)
		if f, ok := c.next().(*http2.RSTStreamFrame); !ok || f.StreamID != sid || f.ErrCode != http2.ErrCodeProtocol {
			t.Fatalf("%v: got %v, want RST_STREAM(%d, PROTOCOL_ERROR)", extra, f, sid)
		}
	}
	// A content-length that does not match the body.
	sid = nextID()
	c.headers(sid, echoMethod, false, "content-length", "100")
	c.data(sid, true, grpcFrame([]byte("x")))
	if f, ok := c.next().(*http2.RSTStreamFrame); !ok || f.StreamID != sid || f.ErrCode != http2.ErrCodeProtocol {
		t.Fatalf("content-length mismatch: got %v, want RST_STREAM PROTOCOL_ERROR", f)
	}

	// After all that, the connection still serves calls.
	sid = nextID()
	c.call(sid, echoMethod, []byte("ok"))
	c.expectStatus(sid, 200, codeOK)
}

func TestServerDeadline(t *testing.T) {
	ts := startServer(t, Options{}, map[string]Handler{slowMethod: func(ctx context.Context, _ []byte) ([]byte, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}})
	c := newRawClient(t, ts.addr)
	start := time.Now()
	c.call(1, slowMethod, nil, "grpc-timeout", "50m")
	c.expectStatus(1, 200, 4) // DEADLINE_EXCEEDED
	if el := time.Since(start); el < 50*time.Millisecond || el > 3*time.Second {
		t.Errorf("deadline fired after %v, want about 50ms", el)
	}
}

func TestSendFlowControl(t *testing.T) {
	resp := bytes.Repeat([]byte("0123456789"), 10) // 100 bytes, 105 framed
	ts := startServer(t, Options{}, map[string]Handler{echoMethod: func(context.Context, []byte) ([]byte, error) {
		return resp, nil
	}})
	c := newRawClient(t, ts.addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 10})

	c.call(1, echoMethod, nil)
	var got []byte
	window := 10
	grant := func(n int) {
		c.fr.WriteWindowUpdate(1, uint32(n))
		window += n
	}
	for {
		switch f := c.next().(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamEnded() {
				if !bytes.Equal(got, grpcFrame(resp)) {
					t.Fatalf("response = %q", got)
				}
				if header(f, "grpc-status") != "0" {
					t.Fatalf("trailers = %v", f.Fields)
				}
				return
			}
		case *http2.DataFrame:
			window -= len(f.Data())
			if window < 0 {
				t.Fatalf("server overran the stream window by %d", -window)
			}
			got = append(got, f.Data()...)
			if window == 0 {
				if len(got) == 10 {
					// Raising INITIAL_WINDOW_SIZE also opens the window of
					// the open stream (RFC 9113 6.9.2).
					c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 30})
					window += 20
				} else {
					grant(25)
				}
			}
		default:
			t.Fatalf("unexpected frame %v", f.Header())
		}
	}
}

func TestHeaderTableSizeZero(t *testing.T) {
	ts := startServer(t, Options{}, map[string]Handler{echoMethod: echo})
	// The decoder refuses any dynamic table use beyond size 0, so decoding
	// only works if the server applied our HEADER_TABLE_SIZE.
	c := newRawClient(t, ts.addr, http2.Setting{ID: http2.SettingHeaderTableSize, Val: 0})
	for i := uint32(1); i < 8; i += 2 {
		c.call(i, echoMethod, []byte("x"))
		c.expectStatus(i, 200, codeOK)
	}
}

func TestClientGoAway(t *testing.T) {
	ts := startServer(t, Options{}, map[string]Handler{slowMethod: func(context.Context, []byte) ([]byte, error) {
		time.Sleep(100 * time.Millisecond)
		return []byte("r"), nil
	}})
	c := newRawClient(t, ts.addr)
	c.call(1, slowMethod, nil)
	c.fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	c.expectStatus(1, 200, codeOK) // the open stream is finished
	c.expectGoAway(http2.ErrCodeNo)
	if _, err := c.fr.ReadFrame(); !errors.Is(err, io.EOF) {
		t.Fatalf("after GOAWAY: %v, want EOF", err)
	}
}

func TestConnectionErrors(t *testing.T) {
	ts := startServer(t, Options{}, map[string]Handler{echoMethod: echo})
	cases := []struct {
		name string
		send func(c *rawClient)
		code http2.ErrCode
	}{
		{"DATA on idle stream", func(c *rawClient) { c.data(5, true, []byte("x")) }, http2.ErrCodeProtocol},
		{"even stream", func(c *rawClient) { c.headers(2, echoMethod, true) }, http2.ErrCodeProtocol},
		{"reused stream id", func(c *rawClient) {
			c.call(3, echoMethod, nil)
			c.expectStatus(3, 200, codeOK)
			c.headers(1, echoMethod, true)
		}, http2.ErrCodeProtocol},
		{"connection window overflow", func(c *rawClient) { c.fr.WriteWindowUpdate(0, 1<<31-1) }, http2.ErrCodeFlowControl},
		{"stream window overflow via settings", func(c *rawClient) {
			c.headers(1, echoMethod, false)
			c.fr.WriteWindowUpdate(1, 1<<31-1-65535)
			c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1})
		}, http2.ErrCodeFlowControl},
		{"bad max frame size", func(c *rawClient) {
			c.fr.WriteSettings(http2.Setting{ID: http2.SettingMaxFrameSize, Val: 100})
		}, http2.ErrCodeProtocol},
		{"oversized frame", func(c *rawClient) {
			c.headers(1, echoMethod, false)
			c.data(1, true, make([]byte, 20000))
		}, http2.ErrCodeFrameSize},
		{"PUSH_PROMISE", func(c *rawClient) {
			c.fr.WritePushPromise(http2.PushPromiseParam{StreamID: 1, PromiseID: 2, EndHeaders: true})
		}, http2.ErrCodeProtocol},
		{"RST_STREAM on idle stream", func(c *rawClient) { c.fr.WriteRSTStream(9, http2.ErrCodeCancel) }, http2.ErrCodeProtocol},
		{"CONTINUATION without HEADERS", func(c *rawClient) { c.fr.WriteContinuation(1, true, []byte{0x82}) }, http2.ErrCodeProtocol},
		{"broken HPACK", func(c *rawClient) {
			c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0xff, 0xff, 0xff}, EndHeaders: true})
		}, http2.ErrCodeCompression},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newRawClient(t, ts.addr)
			c.fr.AllowIllegalWrites = true
			tc.send(c)
			c.expectGoAway(tc.code)
		})
	}

	// The first frame must be SETTINGS.
	t.Run("no SETTINGS first", func(t *testing.T) {
		nc, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(nc, http2.ClientPreface)
		c := &rawClient{t: t, nc: nc, fr: http2.NewFramer(nc, nc)}
		c.fr.WritePing(false, [8]byte{})
		c.expectGoAway(http2.ErrCodeProtocol)
	})
}

func TestParseTimeout(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"1H", time.Hour, true},
		{"2M", 2 * time.Minute, true},
		{"3S", 3 * time.Second, true},
		{"45m", 45 * time.Millisecond, true},
		{"100u", 100 * time.Microsecond, true},
		{"99999999n", 99999999, true},
		{"0m", 0, true},
		{"99999999H", 1<<63 - 1, true}, // clamped
		{"", 0, false},
		{"S", 0, false},
		{"10", 0, false},
		{"10s", 0, false},
		{"-1S", 0, false},
		{"123456789S", 0, false},
		{"1 S", 0, false},
	}
	for _, tc := range cases {
		got, ok := parseTimeout(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseTimeout(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestEncodeGRPCMessage(t *testing.T) {
	cases := map[string]string{
		"":               "",
		"plain text ~!":  "plain text ~!",
		"100%":           "100%25",
		"a\tb\nc":        "a%09b%0Ac",
		"ü":              "%C3%BC",
		"\x7f\x00":       "%7F%00",
		"mixed % ✓ end.": "mixed %25 %E2%9C%93 end.",
	}
	for in, want := range cases {
		if got := encodeGRPCMessage(in); got != want {
			t.Errorf("encodeGRPCMessage(%q) = %q, want %q", in, got, want)
		}
	}
}
