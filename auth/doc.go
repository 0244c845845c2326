// Package auth is sekisho's external authorization service: the gRPC
// envoy.service.auth.v3.Authorization/Check the proxy calls for every request
// on a route that has a security policy. A policy authenticates the request
// (JWT bearer tokens, an OpenID Connect login with a session cookie, or both)
// and then authorizes it with an ordered list of allow and deny rules.
//
// # Serving
//
//	s, err := auth.NewServer(auth.Options{Logger: log, Registerer: reg})
//	err = s.SetConfig(cfg) // again on every change; a bad config keeps the last good one
//	g := grpc.NewServer(auth.GRPCServerOptions()...)
//	authv3.RegisterAuthorizationServer(g, s)
//	http.Handle("/", s.Handler()) // /healthz, /readyz, /metrics
//
// # What the proxy sends
//
// The context extension "sekisho.policy" (PolicyKey) names the policy: a
// request without it, or naming a policy the service does not have, is
// denied with 403 (and counted: checks_total{policy="", result="no_policy"
// or "unknown_policy"}). The service reads attributes.request.http (method,
// path with its query, host, scheme, headers with lower-case names, or
// header_map) and the socket address of attributes.source for ClientCIDRs.
// The path is normalised with httppath.Normalize, the normaliser of the
// proxy's router; a path it refuses (%2F, %5C, '#', a bad escape) is
// answered 400. The host is matched lower-cased, without port and trailing
// dot.
//
// # What it answers
//
// OK answers carry:
//
//   - headers: claim headers, set with OVERWRITE_IF_EXISTS_OR_ADD (and, for
//     OIDC with forwardAccessToken, "authorization: Bearer <access token>";
//     and a rewritten "cookie" without the token or session cookies);
//   - headers_to_remove: the policy's claim headers the identity has no value
//     for (so a client cannot send x-user itself), the token's header unless
//     forwardToken; a header is never both set and removed, so the order the
//     proxy applies them in does not matter;
//   - query_parameters_to_remove: the token's parameter unless forwardToken;
//   - response_headers_to_add: Set-Cookie (APPEND_IF_EXISTS_OR_ADD) when an
//     OIDC session was refreshed;
//   - CheckResponse.dynamic_metadata {"claims": {<every top-level claim that
//     is a string, number or boolean>}} for an authenticated request, none
//     for an anonymous one.
//
// Denied answers carry the HTTP status, headers and a short text body:
//
//   - 401 no or invalid credentials ("WWW-Authenticate: Bearer" or Bearer
//     error="invalid_token"), or a request denied by a rule while anonymous;
//     OIDC requests that want JSON (Accept with application/json and without
//     text/html) or carry X-Requested-With;
//   - 403 denied by a rule while authenticated, unknown or missing policy,
//     the provider refused the login;
//   - 302 login redirect (Location, Set-Cookie of the login state), callback
//     (Location, Set-Cookie of the session, deletion of the state cookie),
//     logout (Location, deletion of the session cookies);
//   - 400 unnormalisable path, bad login callback;
//   - 503 JWT keys never loaded, or the OIDC provider unreachable for a
//     request that needs it (Retry-After: 5).
//
// The gRPC status is OK for OK answers, UNAUTHENTICATED for 401,
// UNAVAILABLE for 503 and PERMISSION_DENIED otherwise. Answers share
// read-only parts between calls: they must not be modified.
package auth
