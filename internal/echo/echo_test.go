package echo

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/websocket"
)

func TestEchoesRequestAndWebSocket(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, lis, "v1") }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	base := "http://" + lis.Addr().String()

	req, _ := http.NewRequest("POST", base+"/a/b?x=1", strings.NewReader("hello"))
	req.Header.Set("X-Test", "yes")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var got Request
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got.Backend != "v1" || got.Method != "POST" || got.Path != "/a/b" || got.RawQuery != "x=1" || got.BodySize != 5 || got.Headers["X-Test"][0] != "yes" {
		t.Errorf("echo = %+v", got)
	}

	resp, err = http.Get(base + "/?status=503")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Errorf("status = %d, want 503", resp.StatusCode)
	}

	ws, err := websocket.Dial("ws://"+lis.Addr().String()+"/ws", "", base)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := websocket.Message.Send(ws, "ping"); err != nil {
		t.Fatal(err)
	}
	var msg string
	if err := websocket.Message.Receive(ws, &msg); err != nil || msg != "ping" {
		t.Errorf("websocket echo = %q, %v", msg, err)
	}
}
