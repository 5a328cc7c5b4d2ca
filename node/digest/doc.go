// Package digest implements the server side of SIP Digest authentication:
// RFC 3261 §22.4 (Digest in SIP), RFC 7616 (HTTP Digest Access
// Authentication, which SIP inherits) and RFC 8760 (SHA-256 for SIP).
//
// The package is pure: it opens no sockets, starts no goroutines and never
// reads the clock; every time-dependent call takes the current time as an
// argument. Only MD5 and SHA-256 with qop=auth (or the RFC 2069 form without
// qop) are supported; the "-sess" variants, auth-int, userhash and
// SHA-512-256 are not.
//
// A server uses it as follows:
//
//  1. For a request without credentials, issue a nonce with [Nonces.New] and
//     answer 401 (WWW-Authenticate) or 407 (Proxy-Authenticate) with one
//     [Challenge] per algorithm, the preferred one first (RFC 3261 §22.2,
//     §22.3; RFC 8760 §2): SHA-256, then MD5.
//  2. For a request with Authorization or Proxy-Authorization, parse it with
//     [ParseResponse]; a parse error is a 400 whose reason phrase may be the
//     error text.
//  3. Look the user up and call [Nonces.Verify] with the stored
//     [Credentials] (the zero value for an unknown user). [Stale] calls for a
//     new challenge with stale=true (RFC 7616 §3.3); [Fail] and [Replay] for a
//     new challenge without it.
//
// The caller remains responsible for checking that the "uri" parameter
// designates the Request-URI of the request (RFC 3261 §22.4, RFC 7616 §3.4)
// and for the opaque parameter, if it uses one.
package digest
