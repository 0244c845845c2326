package contract

import (
	"strings"
	"testing"

	xdstypev3 "github.com/cncf/xds/go/xds/type/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/sekisho/sekisho/proxy/ext"
	_ "github.com/sekisho/sekisho/proxy/ext/all" // the filters the proxy links
)

// TestFiltersFromTheRegistry: the filters' typed configs and fields are
// those the registered extensions declare.
func TestFiltersFromTheRegistry(t *testing.T) {
	fs := ext.HTTPFilters()
	if len(fs) == 0 {
		t.Fatal("no HTTP filter is registered")
	}
	configs := strings.Join(TypedConfigs(), " ")
	for _, f := range fs {
		if !strings.Contains(configs, string(f.Config.ProtoReflect().Descriptor().FullName())) {
			t.Errorf("TypedConfigs lacks %s's config", f.Name)
		}
		for _, field := range f.Fields {
			if !Honoured(field) {
				t.Errorf("%s declares %s, which the contract does not honour", f.Name, field)
			}
		}
	}
}

// TestWrappedFilterConfigsChecked: the walk sees through a per-route
// FilterConfig and a TypedStruct, as the proxy decodes them.
func TestWrappedFilterConfigsChecked(t *testing.T) {
	value, err := structpb.NewStruct(map[string]any{"disabled": true})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := anypb.New(&xdstypev3.TypedStruct{TypeUrl: "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute", Value: value})
	if err != nil {
		t.Fatal(err)
	}
	fc, err := anypb.New(&routev3.FilterConfig{Config: ts, IsOptional: true})
	if err != nil {
		t.Fatal(err)
	}
	rc := &routev3.RouteConfiguration{Name: "rc", VirtualHosts: []*routev3.VirtualHost{{
		Name: "vh", Domains: []string{"*"}, TypedPerFilterConfig: map[string]*anypb.Any{"envoy.filters.http.ext_authz": fc},
	}}}
	if bad := Unhonoured(rc); len(bad) != 0 {
		t.Errorf("Unhonoured = %v, want nothing", bad)
	}

	value.Fields["check_settings"] = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
		"disable_request_body_buffering": structpb.NewBoolValue(true)}})
	delete(value.Fields, "disabled")
	if ts, err = anypb.New(&xdstypev3.TypedStruct{TypeUrl: "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute", Value: value}); err != nil {
		t.Fatal(err)
	}
	if fc, err = anypb.New(&routev3.FilterConfig{Config: ts}); err != nil {
		t.Fatal(err)
	}
	rc.VirtualHosts[0].TypedPerFilterConfig["envoy.filters.http.ext_authz"] = fc
	if bad := strings.Join(Unhonoured(rc), " "); !strings.Contains(bad, "<FilterConfig>.config<ExtAuthzPerRoute>.check_settings.disable_request_body_buffering") {
		t.Errorf("Unhonoured = %s, want disable_request_body_buffering inside the TypedStruct", bad)
	}
}
