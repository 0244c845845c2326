package translate

import (
	"os"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sekisho/sekisho/gateway/provider/file"
	"github.com/sekisho/sekisho/gateway/resource"
	"github.com/sekisho/sekisho/gateway/status"
)

// In Kubernetes mode a Gateway's address is its proxy Service's: until the
// Service has one, the Gateway is served (its proxies need their xDS to come
// up) but not Programmed.
func TestAddressesFromTheProvider(t *testing.T) {
	data, err := os.ReadFile("testdata/basic-http.in.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		addrs      []string
		programmed metav1.ConditionStatus
		reason     string
	}{
		{"none yet", nil, metav1.ConditionFalse, string(gwv1.GatewayReasonAddressNotAssigned)},
		{"assigned", []string{"10.0.0.9", "gw.example.com"}, metav1.ConditionTrue, string(gwv1.GatewayReasonProgrammed)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var res resource.Resources
			if pp := file.ParseBytes("basic-http.in.yaml", data, &res); len(pp) > 0 {
				t.Fatal(pp)
			}
			r := Translate(&res, Options{DefaultAddresses: []string{"127.0.0.1"}, Addresses: func(ns, name string) []string { return tc.addrs }})
			if len(r.IR.Gateways) != 1 {
				t.Fatalf("the Gateway must be served either way; got %d gateways", len(r.IR.Gateways))
			}
			gw := res.Gateways[0]
			st := r.Status.Gateways[status.Key(gw.Namespace, gw.Name)]
			c := findCondition(st.Conditions, string(gwv1.GatewayConditionProgrammed))
			if c == nil || c.Status != tc.programmed || c.Reason != tc.reason {
				t.Fatalf("Programmed = %+v, want %s/%s", c, tc.programmed, tc.reason)
			}
			var got []string
			for _, a := range st.Addresses {
				got = append(got, a.Value)
			}
			if len(got) != len(tc.addrs) || (len(got) > 0 && (got[0] != tc.addrs[0] || *st.Addresses[1].Type != gwv1.HostnameAddressType)) {
				t.Errorf("addresses = %v, want %v (the second a Hostname)", got, tc.addrs)
			}
		})
	}
}

func findCondition(cs []metav1.Condition, typ string) *metav1.Condition {
	for i := range cs {
		if cs[i].Type == typ {
			return &cs[i]
		}
	}
	return nil
}
