package call

// Final is what the caller is answered when no branch answered.
type Final struct {
	Code   int
	Reason string
	// Callee marks an outcome that the callee (or its device) gave, as
	// opposed to a failure of the node or the network: busy, decline, not
	// found, no answer. A path through the federation is never retried on
	// such an outcome.
	Callee bool
}

// Reasons the node gives for outcomes it decides itself.
var (
	NotFound     = Final{404, "Not Found", true}
	NotReachable = Final{480, "Temporarily Unavailable", true}
	NoAnswer     = Final{480, "Temporarily Unavailable (no answer)", true}
	Cancelled    = Final{487, "Request Terminated", false}
	// NoPath: every path of a failover list failed by the paths' fault.
	NoPath = Final{503, "Service Unavailable (no path completed the call)", false}
)

// rank orders final responses for the choice among failed branches, after
// RFC 3261 §16.7 step 6: a 6xx first (it is global), then what the user
// said (busy, decline), then other client errors, then unavailability,
// then server errors. Higher wins.
func rank(code int) int {
	switch {
	case code >= 600:
		return 60
	case code == 486:
		return 50
	case code == 488 || code == 415 || code == 420:
		return 45 // the offer itself was refused: the caller can fix it
	case code == 404 || code == 410 || code == 484:
		return 40
	case code >= 400 && code != 408 && code != 480 && code != 401 && code != 407:
		return 35
	case code == 480 || code == 408:
		return 30
	case code >= 300 && code < 400, code == 401, code == 407:
		return 25 // the node follows no redirect and holds no callee credentials
	case code >= 500:
		return 20
	}
	return 0
}

// MapFinal turns the best callee final response into what the caller is
// answered:
//   - 3xx: redirects are not followed → 480;
//   - 401/407: a device challenging the node → 480;
//   - 408 (including a branch timeout or transport error) → 480;
//   - 5xx: a failure of the callee's side is not the node's → 500, without
//     Retry-After (RFC 3261 §16.7: a 503 is not passed upstream);
//   - 486, 600, 603, 404 and other 4xx/6xx pass with their code.
func MapFinal(code int, reason string) Final {
	switch {
	case code >= 300 && code < 400, code == 401, code == 407:
		return Final{480, "Temporarily Unavailable", true}
	case code == 408 || code == 480:
		return Final{480, "Temporarily Unavailable", true}
	case code >= 500 && code < 600:
		return Final{500, "Server Internal Error (callee failed)", false}
	case code >= 400:
		if reason == "" {
			reason = defaultReason(code)
		}
		return Final{code, reason, true}
	}
	return Final{500, "Server Internal Error", false}
}

func defaultReason(code int) string {
	switch code {
	case 404:
		return "Not Found"
	case 486:
		return "Busy Here"
	case 487:
		return "Request Terminated"
	case 488:
		return "Not Acceptable Here"
	case 600:
		return "Busy Everywhere"
	case 603:
		return "Decline"
	case 604:
		return "Does Not Exist Anywhere"
	case 606:
		return "Not Acceptable"
	}
	return "Call Failed"
}
