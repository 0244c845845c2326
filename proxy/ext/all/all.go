// Package all links in every extension the proxy runs: importing it (for
// its side effects) fills the ext registry. A new filter is added here.
package all

import (
	_ "github.com/sekisho/sekisho/proxy/filter/extauthz"
	_ "github.com/sekisho/sekisho/proxy/filter/localratelimit"
	_ "github.com/sekisho/sekisho/proxy/filter/ratelimit"
)
