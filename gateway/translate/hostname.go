package translate

import "strings"

// hostMatches says whether the pattern p (a hostname, "*.suffix", or "" for
// any) covers the hostname h (itself possibly a "*.suffix" wildcard).
func hostMatches(p, h string) bool {
	switch {
	case p == "" || p == "*":
		return true
	case p == h:
		return true
	case strings.HasPrefix(p, "*."):
		suffix := p[1:] // ".example.com"
		if strings.HasPrefix(h, "*.") {
			// a wildcard covers a narrower wildcard: *.example.com covers *.a.example.com
			return strings.HasSuffix(h[1:], suffix) && len(h) > len(p)
		}
		return strings.HasSuffix(h, suffix) && len(h) > len(suffix)
	}
	return false
}

// intersect returns the hostnames requests must have to be served both by a
// listener with hostname lh and by a route with hostname rh ("" for none).
func intersect(lh, rh string) (string, bool) {
	switch {
	case lh == "" && rh == "":
		return "*", true
	case lh == "":
		return rh, true
	case rh == "":
		return lh, true
	case hostMatches(lh, rh):
		return rh, true
	case hostMatches(rh, lh):
		return lh, true
	}
	return "", false
}

// specificity ranks listener hostnames: exact names over wildcards, longer
// wildcards over shorter ones, and any hostname ("") last.
func specificity(h string) int {
	switch {
	case h == "":
		return 0
	case strings.HasPrefix(h, "*."):
		return 1 + len(h)
	}
	return 1 << 20
}
