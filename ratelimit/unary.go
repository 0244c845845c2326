package ratelimit

import (
	"context"

	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ShouldRateLimitMethod is the full gRPC method name of
// RateLimitService/ShouldRateLimit.
const ShouldRateLimitMethod = rlsv3.RateLimitService_ShouldRateLimit_FullMethodName

// UnaryShouldRateLimit is ShouldRateLimit on the wire form of its messages,
// for a server that frames gRPC itself: it reads the RateLimitRequest and
// writes the RateLimitResponse as Codec does, so the bytes on the wire are
// the same as through grpc-go with GRPCServerOptions.
func (s *Server) UnaryShouldRateLimit(ctx context.Context, req []byte) ([]byte, error) {
	var r rlsv3.RateLimitRequest
	if err := unmarshalRequest(req, &r); err != nil {
		return nil, status.Errorf(codes.Internal, "reading the RateLimitRequest: %v", err)
	}
	resp, err := s.ShouldRateLimit(ctx, &r)
	if err != nil {
		return nil, err
	}
	return marshalResponse(resp)
}
