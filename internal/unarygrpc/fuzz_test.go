package unarygrpc

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// fuzzSeeds returns frame sequences (without the preface) that exercise the
// interesting paths, for the fuzzer to mutate.
func fuzzSeeds() [][]byte {
	var seeds [][]byte
	build := func(write func(fr *http2.Framer, enc func(fields ...string) []byte)) {
		var buf, hbuf bytes.Buffer
		fr := http2.NewFramer(&buf, nil)
		fr.AllowIllegalWrites = true
		henc := hpack.NewEncoder(&hbuf)
		enc := func(fields ...string) []byte {
			hbuf.Reset()
			for i := 0; i+1 < len(fields); i += 2 {
				henc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
			}
			return append([]byte(nil), hbuf.Bytes()...)
		}
		fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100})
		write(fr, enc)
		seeds = append(seeds, buf.Bytes())
	}
	req := func(path string, extra ...string) []string {
		return append([]string{":method", "POST", ":scheme", "http", ":path", path, "content-type", "application/grpc", "te", "trailers"}, extra...)
	}
	// A complete call, with a timeout.
	build(func(fr *http2.Framer, enc func(...string) []byte) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: enc(req(echoMethod, "grpc-timeout", "1m")...), EndHeaders: true})
		fr.WriteData(1, true, grpcFrame([]byte("hello")))
		fr.WriteWindowUpdate(1, 1000)
		fr.WritePing(false, [8]byte{1})
	})
	// A header block split over CONTINUATION, padding, and a reset.
	build(func(fr *http2.Framer, enc func(...string) []byte) {
		block := enc(req(slowMethod)...)
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: block[:4], PadLength: 3})
		fr.WriteContinuation(3, true, block[4:])
		fr.WriteDataPadded(3, false, grpcFrame([]byte("x"))[:3], []byte{0, 0})
		fr.WriteData(3, true, []byte{0, 1, 'x'})
		fr.WriteRSTStream(3, http2.ErrCodeCancel)
		fr.WriteSettings(http2.Setting{ID: http2.SettingHeaderTableSize, Val: 0}, http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1 << 20})
	})
	// Unknown method, trailers, priority, GOAWAY.
	build(func(fr *http2.Framer, enc func(...string) []byte) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 5, BlockFragment: enc(req("/x.Y/Z")...), EndHeaders: true,
			Priority: http2.PriorityParam{StreamDep: 5, Weight: 1}})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 7, BlockFragment: enc(req(echoMethod, "grpc-encoding", "gzip")...), EndHeaders: true})
		fr.WriteData(7, false, grpcFrame(nil))
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 7, BlockFragment: enc("x-trailer", "1"), EndHeaders: true, EndStream: true})
		fr.WritePriority(9, http2.PriorityParam{StreamDep: 1})
		fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	})
	return seeds
}

// FuzzConnection feeds arbitrary bytes after a valid client preface to a
// server connection and checks that the server neither panics nor hangs.
func FuzzConnection(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Add([]byte{})
	f.Add([]byte("\x00\x00\x00\x04\x00\x00\x00\x00\x00garbage"))

	srv := NewServer(Options{MaxRecvMsgSize: 1 << 16, MaxConcurrentStreams: 8})
	srv.Handle(echoMethod, echo)
	srv.Handle(slowMethod, func(ctx context.Context, req []byte) ([]byte, error) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Millisecond):
			return bytes.Repeat(req, 1000), nil
		}
	})

	f.Fuzz(func(t *testing.T, data []byte) {
		client, server := net.Pipe()
		done := make(chan struct{})
		go func() {
			srv.serveConn(server)
			close(done)
		}()
		go io.Copy(io.Discard, client) // net.Pipe is unbuffered: always drain

		client.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(client, http2.ClientPreface); err == nil {
			client.Write(data) // the server may hang up early; that is fine
		}
		client.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("server did not finish with the connection")
		}
	})
}
