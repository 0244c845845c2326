package status

import (
	"bytes"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func TestParentString(t *testing.T) {
	sec, port, ns, kind := gwv1.SectionName("http"), gwv1.PortNumber(80), gwv1.Namespace("infra"), gwv1.Kind("Service")
	tests := []struct {
		ref  gwv1.ParentReference
		want string
	}{
		{gwv1.ParentReference{Name: "eg"}, "default/eg"},
		{gwv1.ParentReference{Name: "eg", Namespace: &ns, SectionName: &sec}, "infra/eg/http"},
		{gwv1.ParentReference{Name: "eg", Port: &port}, "default/eg:80"},
		{gwv1.ParentReference{Name: "svc", Kind: &kind}, "Service:default/svc"},
	}
	for _, tt := range tests {
		if got := ParentString(tt.ref, "default"); got != tt.want {
			t.Errorf("ParentString(%+v) = %q, want %q", tt.ref, got, tt.want)
		}
	}
}

func TestWriteTable(t *testing.T) {
	s := NewSet()
	cond := func(typ, st, reason, msg string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: metav1.ConditionStatus(st), Reason: reason, Message: msg}
	}
	s.HTTPRoutes[Key("default", "web")] = &gwv1.HTTPRouteStatus{RouteStatus: gwv1.RouteStatus{Parents: []gwv1.RouteParentStatus{{
		ParentRef:  gwv1.ParentReference{Name: "eg"},
		Conditions: []metav1.Condition{cond("ResolvedRefs", "False", "BackendNotFound", "Service default/x\nnot found"), cond("Accepted", "True", "Accepted", "ok")},
	}}}}
	s.Gateways[Key("default", "eg")] = &gwv1.GatewayStatus{
		Conditions: []metav1.Condition{cond("Programmed", "True", "Programmed", "ok")},
		Listeners:  []gwv1.ListenerStatus{{Name: "http", Conditions: []metav1.Condition{cond("Accepted", "True", "Accepted", "ok")}}},
	}
	s.GatewayClasses[Key("", "sekisho")] = &gwv1.GatewayClassStatus{Conditions: []metav1.Condition{cond("Accepted", "True", "Accepted", "ok")}}
	var buf bytes.Buffer
	if err := s.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	want := [][]string{
		{"KIND", "NAMESPACE/NAME", "PARENT", "TYPE", "STATUS", "REASON", "MESSAGE"},
		{"GatewayClass", "sekisho", "-", "Accepted", "True", "Accepted", "ok"},
		{"Gateway", "default/eg", "-", "Programmed", "True", "Programmed", "ok"},
		{"Gateway", "default/eg", "http", "Accepted", "True", "Accepted", "ok"},
		{"HTTPRoute", "default/web", "default/eg", "Accepted", "True", "Accepted", "ok"},
		{"HTTPRoute", "default/web", "default/eg", "ResolvedRefs", "False", "BackendNotFound", "Service", "default/x", "not", "found"},
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), buf.String())
	}
	col := strings.Index(lines[0], "PARENT")
	for i, l := range lines {
		if got := strings.Fields(l); strings.Join(got, " ") != strings.Join(want[i], " ") {
			t.Errorf("line %d = %q, want fields %q", i, l, want[i])
		}
		if i > 0 && (len(l) <= col || l[col-1] != ' ' || l[col] == ' ') {
			t.Errorf("line %d is not aligned with the header: %q", i, l)
		}
	}
}
