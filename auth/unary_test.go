package auth

import (
	"context"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

func TestUnaryCheckAnswersAsCheck(t *testing.T) {
	clock := newClock()
	s, _ := newTestServer(t, clock, jwtPolicy(t, nil))
	good := sign(t, jwt.SigningMethodRS256, rsaKey, "rsa1", claimsAt(clock.Now(), nil))
	ctx := context.Background()
	for name, r := range map[string]req{
		"allowed, claims to headers": {path: "/", headers: bearer(good)},
		"no token":                   {path: "/"},
		"a forged token":             {path: "/", headers: bearer(good[:len(good)-4] + "AAAA")},
	} {
		want, err := s.Check(ctx, r.proto())
		if err != nil {
			t.Fatal(err)
		}
		in, err := proto.Marshal(r.proto())
		if err != nil {
			t.Fatal(err)
		}
		out, err := s.UnaryCheck(ctx, in)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var got authv3.CheckResponse
		if err := proto.Unmarshal(out, &got); err != nil {
			t.Fatalf("%s: the answer does not parse: %v", name, err)
		}
		if !proto.Equal(&got, want) {
			t.Errorf("%s: got %v, want %v", name, &got, want)
		}
	}
	if _, err := s.UnaryCheck(ctx, []byte{0x0a, 0xff}); status.Code(err) != codes.Internal {
		t.Errorf("a request that does not parse: got %v, want Internal", err)
	}
}
