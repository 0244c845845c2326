package httppath

import "testing"

func TestNormalize(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      error
	}{
		{"/a/b", "/a/b", nil},
		{"/a//b///c", "/a/b/c", nil},
		{"/a/./b/../c", "/a/c", nil},
		{"/../../etc/passwd", "/etc/passwd", nil},
		{"/a/%2e%2e/admin", "/admin", nil},
		{"/a/%2E./admin", "/admin", nil},
		{"/%61%64min", "/admin", nil},
		{"/a%20b", "/a%20b", nil},
		{"/a%3fb", "/a%3Fb", nil},
		{"/a\\..\\admin", "/admin", nil},
		{"/a/..", "/", nil},
		{"/a/b/.", "/a/b/", nil},
		{"/admin;x/y", "/admin;x/y", nil},
		{"/a%2fb", "", ErrEscapedSlash},
		{"/a%5Cb", "", ErrEscapedSlash},
		{"/a%zz", "", ErrBadEscape},
		{"/a%4", "", ErrBadEscape},
		{"/a#b", "", ErrFragment},
		{"a/b", "", ErrNotAbsolute},
		{"/a b", "", ErrControl},
	} {
		got, err := Normalize(tc.in)
		if err != tc.err || got != tc.want {
			t.Errorf("Normalize(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
	if Forward("/admin;x/y") != "/admin%3Bx/y" {
		t.Errorf("Forward does not escape ';'")
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = Normalize("/api/v1/users/42") }); n != 0 {
		t.Errorf("Normalize of a clean path allocates %v times", n)
	}
}
