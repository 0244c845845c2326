package ext

import (
	"fmt"
	"net/http"
	"slices"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func setOpt(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}
}

func addOpt(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}, AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD}
}

// legacyOpt is a header option with the deprecated append field, which
// services still send.
func legacyOpt(k, v string, app bool) *corev3.HeaderValueOption {
	//lint:ignore SA1019 the deprecated field is what this exercises
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}, Append: wrapperspb.Bool(app)}
}

func TestHeaderOps(t *testing.T) {
	legacy := legacyOpt
	opts := []*corev3.HeaderValueOption{
		setOpt("x-set", "1"),
		addOpt("x-add", "2"),
		legacy("x-app", "3", true),
		legacy("x-app-absent", "3", true),
		legacy("x-legacy-set", "4", false),
		{Header: &corev3.HeaderValue{Key: "x-if-absent", Value: "5"}, AppendAction: corev3.HeaderValueOption_ADD_IF_ABSENT},
		{Header: &corev3.HeaderValue{Key: "x-overwrite", Value: "6"}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS},
		{Header: &corev3.HeaderValue{Key: "x-overwrite-absent", Value: "6"}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS},
		setOpt(":path", "/x"), setOpt("content-length", "1"), setOpt("bad name", "v"), setOpt("x-crlf", "a\r\nb"),
	}
	h := http.Header{"X-Set": {"0"}, "X-Add": {"1"}, "X-App": {"1", "2"}, "X-Legacy-Set": {"0"}, "X-If-Absent": {"0"}, "X-Overwrite": {"0"}}
	ApplyHeaderOps(h, HeaderOps(opts, true), false)
	want := http.Header{"X-Set": {"1"}, "X-Add": {"1", "2"}, "X-App": {"1,2,3"}, "X-Legacy-Set": {"4"}, "X-If-Absent": {"0"}, "X-Overwrite": {"6"}}
	if fmt.Sprint(h) != fmt.Sprint(want) {
		t.Errorf("request headers\n got %v\nwant %v", h, want)
	}
	// Response side: legacy append adds a value.
	h = http.Header{"X-App": {"1"}}
	ApplyHeaderOps(h, HeaderOps([]*corev3.HeaderValueOption{legacy("x-app", "2", true)}, false), false)
	if !slices.Equal(h["X-App"], []string{"1", "2"}) {
		t.Errorf("response legacy append: %v", h)
	}
	// A local reply: replacing edits replace what the reply had, once.
	h = http.Header{"Content-Type": {"text/plain"}}
	ApplyHeaderOps(h, HeaderOps([]*corev3.HeaderValueOption{setOpt("set-cookie", "a"), setOpt("set-cookie", "b"), setOpt("content-type", "text/html")}, false), true)
	if !slices.Equal(h["Set-Cookie"], []string{"a", "b"}) || !slices.Equal(h["Content-Type"], []string{"text/html"}) {
		t.Errorf("local reply headers %v", h)
	}
}

func TestGRPCStatusMapping(t *testing.T) {
	for code, want := range map[int]int{400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14, 500: 2, 302: 2} {
		if got := grpcStatus(code); got != want {
			t.Errorf("grpcStatus(%d) = %d, want %d", code, got, want)
		}
	}
	if got := grpcMessage("a b%\n"); got != "a b%25%0A" {
		t.Errorf("grpcMessage = %q", got)
	}
}
