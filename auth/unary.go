package auth

import (
	"context"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// CheckMethod is the full gRPC method name of Authorization/Check.
const CheckMethod = authv3.Authorization_Check_FullMethodName

// UnaryCheck is Check on the wire form of its messages, for a server that
// frames gRPC itself: it reads the CheckRequest and writes the CheckResponse
// as Codec does (directly where it can, through protobuf otherwise), so the
// bytes on the wire are the same as through grpc-go with GRPCServerOptions.
func (s *Server) UnaryCheck(ctx context.Context, req []byte) ([]byte, error) {
	var r authv3.CheckRequest
	if err := unmarshalCheckRequest(req, &r); err != nil {
		return nil, status.Errorf(codes.Internal, "reading the CheckRequest: %v", err)
	}
	resp, err := s.Check(ctx, &r)
	if err != nil {
		return nil, err
	}
	return marshalCheckResponse(resp)
}
