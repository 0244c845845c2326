package translate

import (
	"regexp"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"github.com/sekisho/sekisho/ir"
)

// applyEnvoy applies a translated match and path rewrite to path the way the
// Envoy router does: path and path_separated_prefix (element-wise) matching,
// prefix_rewrite replacing the matched prefix, regex_rewrite replacing every
// match of the pattern. ok is false when the route does not match.
func applyEnvoy(t *testing.T, m *routev3.RouteMatch, pr pathRewrite, path string) (string, bool) {
	t.Helper()
	var matched string
	switch {
	case m.GetPath() != "":
		if path != m.GetPath() {
			return "", false
		}
		matched = path
	case m.GetPathSeparatedPrefix() != "":
		p := m.GetPathSeparatedPrefix()
		if path != p && !strings.HasPrefix(path, p+"/") {
			return "", false
		}
		matched = p
	case m.GetPrefix() != "":
		if !strings.HasPrefix(path, m.GetPrefix()) {
			return "", false
		}
		matched = m.GetPrefix()
	default:
		t.Fatalf("unexpected match %v", m)
	}
	switch {
	case pr.regex != nil:
		if regexp.MustCompile(`\\[0-9]`).MatchString(pr.regex.GetSubstitution()) {
			t.Fatalf("substitution %q uses capture groups", pr.regex.GetSubstitution())
		}
		sub := strings.ReplaceAll(pr.regex.GetSubstitution(), `\\`, `\`)
		return regexp.MustCompile(pr.regex.GetPattern().GetRegex()).ReplaceAllLiteralString(path, sub), true
	case pr.prefix != "":
		return pr.prefix + path[len(matched):], true
	default:
		return path, true
	}
}

// TestReplacePrefixMatch checks the translated rewrites against the table of
// the Gateway API's HTTPPathModifier.ReplacePrefixMatch documentation, and the
// prefix "/" cases it implies.
func TestReplacePrefixMatch(t *testing.T) {
	tests := []struct {
		path, prefix, replace, want string
	}{
		// The spec's table.
		{"/foo/bar", "/foo", "/xyz", "/xyz/bar"},
		{"/foo/bar", "/foo", "/xyz/", "/xyz/bar"},
		{"/foo/bar", "/foo/", "/xyz", "/xyz/bar"},
		{"/foo/bar", "/foo/", "/xyz/", "/xyz/bar"},
		{"/foo", "/foo", "/xyz", "/xyz"},
		{"/foo/", "/foo", "/xyz", "/xyz/"},
		{"/foo/bar", "/foo", "", "/bar"},
		{"/foo/", "/foo", "", "/"},
		{"/foo", "/foo", "", "/"},
		{"/foo/", "/foo", "/", "/"},
		{"/foo", "/foo", "/", "/"},
		// Beyond the table.
		{"/foo/bar", "/foo", "/", "/bar"},
		{"/foo/bar/baz", "/foo/bar", "/x/y", "/x/y/baz"},
		{"/a.b/c", "/a.b", "/", "/c"},
		{"/bar", "/", "/xyz", "/xyz/bar"},
		{"/", "/", "/xyz", "/xyz/"},
		{"/bar/baz", "/", "/", "/bar/baz"},
		{"/bar/baz", "/", "", "/bar/baz"},
	}
	for _, tc := range tests {
		t.Run(tc.path+" "+tc.prefix+" "+tc.replace, func(t *testing.T) {
			pm := ir.PathMatch{Type: ir.MatchPrefix, Value: tc.prefix}
			m, err := translateMatch(&ir.Match{Path: pm})
			if err != nil {
				t.Fatal(err)
			}
			pr, err := rewritePath(&ir.PathModifier{Type: ir.ReplacePrefixMatch, Value: tc.replace}, &pm)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := applyEnvoy(t, m, pr, tc.path)
			if !ok {
				t.Fatalf("the route does not match %q", tc.path)
			}
			if got != tc.want {
				t.Errorf("rewrote %q to %q, want %q", tc.path, got, tc.want)
			}
		})
	}
}

func TestPathPrefixIsElementWise(t *testing.T) {
	tests := []struct {
		prefix, path string
		want         bool
	}{
		{"/abc", "/abc", true},
		{"/abc", "/abc/", true},
		{"/abc", "/abc/def", true},
		{"/abc", "/abcd", false},
		{"/abc/", "/abc", true},
		{"/abc/", "/abc/def", true},
		{"/abc/", "/abcd", false},
		{"/", "/anything", true},
	}
	for _, tc := range tests {
		m, err := translateMatch(&ir.Match{Path: ir.PathMatch{Type: ir.MatchPrefix, Value: tc.prefix}})
		if err != nil {
			t.Fatal(err)
		}
		if _, got := applyEnvoy(t, m, pathRewrite{}, tc.path); got != tc.want {
			t.Errorf("prefix %q matches %q: %v, want %v", tc.prefix, tc.path, got, tc.want)
		}
	}
}

func TestReplaceFullPath(t *testing.T) {
	tests := []struct {
		path, value, want string
	}{
		{"/old/page", "/new", "/new"},
		{"/", "/index.html", "/index.html"},
		{"/a/b/c", `/odd\path`, `/odd\path`},
	}
	for _, tc := range tests {
		pm := ir.PathMatch{Type: ir.MatchPrefix, Value: "/"}
		m, err := translateMatch(&ir.Match{Path: pm})
		if err != nil {
			t.Fatal(err)
		}
		pr, err := rewritePath(&ir.PathModifier{Type: ir.ReplaceFullPath, Value: tc.value}, &pm)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := applyEnvoy(t, m, pr, tc.path); got != tc.want {
			t.Errorf("rewrote %q to %q, want %q", tc.path, got, tc.want)
		}
	}
}

func TestFractionalPercent(t *testing.T) {
	tests := []struct {
		num, den uint32
		want     uint32
		kind     typev3.FractionalPercent_DenominatorType
	}{
		{1, 1, 100, typev3.FractionalPercent_HUNDRED},
		{0, 5, 0, typev3.FractionalPercent_HUNDRED},
		{1, 2, 50, typev3.FractionalPercent_HUNDRED},
		{1, 8, 1250, typev3.FractionalPercent_TEN_THOUSAND},
		{1, 10000, 1, typev3.FractionalPercent_TEN_THOUSAND},
		{3, 1000000, 3, typev3.FractionalPercent_MILLION},
		{1, 3, 333333, typev3.FractionalPercent_MILLION},
		{2, 3, 666667, typev3.FractionalPercent_MILLION},
		{4294967295, 4294967295, 100, typev3.FractionalPercent_HUNDRED},
	}
	for _, tc := range tests {
		got, err := fractionalPercent(tc.num, tc.den)
		if err != nil {
			t.Errorf("%d/%d: %v", tc.num, tc.den, err)
			continue
		}
		if got.GetNumerator() != tc.want || got.GetDenominator() != tc.kind {
			t.Errorf("%d/%d = %d/%s, want %d/%s", tc.num, tc.den, got.GetNumerator(), got.GetDenominator(), tc.want, tc.kind)
		}
	}
}
