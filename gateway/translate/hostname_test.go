package translate

import "testing"

func TestIntersect(t *testing.T) {
	tests := []struct {
		listener, route string
		want            string
		ok              bool
	}{
		{"", "", "*", true},
		{"", "foo.example.com", "foo.example.com", true},
		{"foo.example.com", "", "foo.example.com", true},
		{"foo.example.com", "foo.example.com", "foo.example.com", true},
		{"foo.example.com", "bar.example.com", "", false},
		{"*.example.com", "foo.example.com", "foo.example.com", true},
		{"*.example.com", "foo.bar.example.com", "foo.bar.example.com", true},
		{"*.example.com", "example.com", "", false},
		{"*.example.com", "fooexample.com", "", false},
		{"foo.example.com", "*.example.com", "foo.example.com", true},
		{"example.com", "*.example.com", "", false},
		{"*.example.com", "*.example.com", "*.example.com", true},
		{"*.example.com", "*.bar.example.com", "*.bar.example.com", true},
		{"*.bar.example.com", "*.example.com", "*.bar.example.com", true},
		{"*.example.com", "*.example.net", "", false},
	}
	for _, tt := range tests {
		got, ok := intersect(tt.listener, tt.route)
		if got != tt.want || ok != tt.ok {
			t.Errorf("intersect(%q, %q) = %q, %v; want %q, %v", tt.listener, tt.route, got, ok, tt.want, tt.ok)
		}
	}
}

func TestBestListener(t *testing.T) {
	ls := []*listenerCtx{{name: "any"}, {name: "wild", hostname: "*.example.com"}, {name: "deep", hostname: "*.a.example.com"}, {name: "foo", hostname: "foo.example.com"}}
	tests := []struct{ host, want string }{
		{"foo.example.com", "foo"},
		{"bar.example.com", "wild"},
		{"x.a.example.com", "deep"},
		{"*.a.example.com", "deep"},
		{"*.example.com", "wild"},
		{"other.net", "any"},
		{"*", "any"},
	}
	for _, tt := range tests {
		if got := bestListener(ls, tt.host); got == nil || got.name != tt.want {
			t.Errorf("bestListener(%q) = %v, want %s", tt.host, got, tt.want)
		}
	}
	if got := bestListener(ls[1:], "other.net"); got != nil {
		t.Errorf("bestListener without a catch-all = %s, want none", got.name)
	}
}
