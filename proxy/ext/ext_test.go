package ext

import (
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
)

// TestRegisterHTTPRefuses: a filter registered twice, a message another
// filter has, or a declared field that does not exist panics at start-up.
func TestRegisterHTTPRefuses(t *testing.T) {
	filter := func(name string, cfg proto.Message, fields ...string) *HTTPFilter {
		return &HTTPFilter{
			Name: name, Config: cfg, Fields: fields,
			Decode: func(proto.Message) (any, error) { return nil, nil },
			Build:  func(any, BuildContext) (Filter, error) { return nil, nil },
		}
	}
	panics := func(f *HTTPFilter, want string) {
		t.Helper()
		defer func() {
			if v := recover(); v == nil || !strings.Contains(v.(string), want) {
				t.Errorf("RegisterHTTP(%q) panicked with %v, want %q", f.Name, v, want)
			}
		}()
		RegisterHTTP(f)
	}
	RegisterHTTP(filter("test.a", &routev3.Route{}, "envoy.config.route.v3.Route.name"))
	if FilterFor("envoy.config.route.v3.Route") == nil || !Honours("envoy.config.route.v3.Route.name") {
		t.Fatal("the registered filter is not found by its config's full name")
	}
	panics(filter("test.a", &routev3.VirtualHost{}), "registered twice")
	panics(filter("test.b", &routev3.Route{}), "is the config of \"test.a\" already")
	panics(filter("test.c", &routev3.RouteAction{}, "envoy.config.route.v3.RouteAction.no_such_field"), "not a known field")
	panics(&HTTPFilter{Name: "test.d", Config: &routev3.RouteMatch{}}, "Decode and Build are required")
}
