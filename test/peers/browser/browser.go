// Package browser runs Debian's Chromium headless through chromedp for
// sekisho's end-to-end tests, and drives Dex's login form with it.
package browser

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// ExecPath is the Chromium that Start runs.
const ExecPath = "/usr/bin/chromium"

// InstallHint is how to get ExecPath when it is missing.
const InstallHint = "apt-get install -y chromium"

// Timeouts of Start and of the cleanup.
const (
	startTimeout = 60 * time.Second
	stopTimeout  = 15 * time.Second
)

// Browser is a running headless Chromium.
type Browser struct {
	root        context.Context // the first tab; its browser serves every tab
	pid         int
	userDataDir string
}

// Start runs Chromium headless with a fresh profile under t.TempDir(), and
// registers a cleanup that stops it (cancelling the allocator kills
// Chromium) and fails the test if Chromium or any of its child processes is
// still alive afterwards. It fails the test when ExecPath is missing.
func Start(t testing.TB) *Browser {
	t.Helper()
	if _, err := os.Stat(ExecPath); err != nil {
		t.Fatalf("browser: %s is missing: %s", ExecPath, InstallHint)
	}
	userDataDir := t.TempDir()
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(ExecPath),
		chromedp.UserDataDir(userDataDir),
		chromedp.Flag("headless", "new"),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	root, rootCancel := chromedp.NewContext(allocCtx)
	b := &Browser{root: root, userDataDir: userDataDir}
	stop := func() {
		rootCancel()
		allocCancel() // waits until the Chromium process has exited
		if err := b.waitGone(stopTimeout); err != nil {
			t.Errorf("browser: %v", err)
		}
	}

	// The first Run starts Chromium; it must not run with a deadline of its
	// own, which would end the browser with it, so the deadline is a timer.
	timer := time.AfterFunc(startTimeout, rootCancel)
	err := chromedp.Do(root)
	stopped := !timer.Stop()
	if err != nil {
		stop()
		if stopped {
			t.Fatalf("browser: %s did not start within %v: %v", ExecPath, startTimeout, err)
		}
		t.Fatalf("browser: starting %s: %v", ExecPath, err)
	}
	if p := chromedp.FromContext(root).Browser.Process(); p != nil {
		b.pid = p.Pid
	}
	t.Cleanup(stop)
	return b
}

// PID is the process ID of Chromium's browser process.
func (b *Browser) PID() int { return b.pid }

// NewTab opens a new tab and returns its context, for chromedp.Run and the
// helpers of this package. Cancelling the context closes the tab. Tabs share
// the browser's profile, and so its cookies.
func (b *Browser) NewTab() (context.Context, context.CancelFunc) {
	return chromedp.NewContext(b.root)
}

// waitGone waits until neither the browser process nor any process started
// with the browser's --user-data-dir is alive, and kills whatever is still
// there at the deadline.
func (b *Browser) waitGone(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		left := b.leftovers()
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			for _, p := range left {
				if proc, err := os.FindProcess(p); err == nil {
					_ = proc.Kill()
				}
			}
			return fmt.Errorf("chromium processes %v were still alive %v after the browser was stopped", left, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// leftovers returns the live (not zombie) processes that are the browser
// process or that have its --user-data-dir on their command line.
func (b *Browser) leftovers() []int {
	want := []byte("--user-data-dir=" + b.userDataDir)
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !alive(pid) {
			continue
		}
		if pid == b.pid {
			pids = append(pids, pid)
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		for arg := range bytes.SplitSeq(cmdline, []byte{0}) {
			if bytes.Equal(arg, want) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// alive reports whether pid is a process that is not a zombie.
func alive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses and may
	// contain anything.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return false
	}
	state := stat[i+2]
	return state != 'Z' && state != 'X'
}

// ErrLoginRejected is returned by Login when Dex shows its login form again
// with an error, as it does for a wrong password.
var ErrLoginRejected = errors.New("dex rejected the login")

// Dex's password login form (web/templates/password.html).
const (
	loginField    = `input[name="login"]`
	passwordField = `input[name="password"]`
	submitButton  = `form button[type="submit"]`
	loginError    = `#login-error`
)

// Login navigates the tab ctx to startURL, which must lead to Dex's password
// login form (Dex's authorization URL, or a relying party's page that
// redirects there), fills in username (for Dex's password database, the
// user's email) and password, submits the form, and waits until the tab has
// left Dex's host (scheme, host and port of the login page) and that page
// has loaded. It returns the URL the tab ends on.
//
// When Dex shows the form again with an error, Login returns the URL of that
// page and an error wrapping ErrLoginRejected. Login gives up when ctx ends:
// give it a deadline.
func Login(ctx context.Context, startURL, username, password string) (finalURL string, err error) {
	if err := chromedp.Do(ctx,
		chromedp.Navigate(startURL),
		chromedp.WaitVisible(chromedp.CSS(loginField)),
		chromedp.WaitVisible(chromedp.CSS(passwordField)),
	); err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		return loc, fmt.Errorf("waiting for dex's login form after %s (at %s): %w", startURL, loc, err)
	}
	formURL, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		return "", err
	}
	dex, err := url.Parse(formURL)
	if err != nil {
		return formURL, err
	}
	if err := chromedp.Do(ctx,
		chromedp.Clear(chromedp.CSS(loginField)), // Dex refills it after an error
		chromedp.SendKeys(chromedp.CSS(loginField), username),
		chromedp.SendKeys(chromedp.CSS(passwordField), password),
		chromedp.Click(chromedp.CSS(submitButton)),
	); err != nil {
		return formURL, fmt.Errorf("submitting dex's login form at %s: %w", formURL, err)
	}

	// The page is polled, not awaited by events: the form's POST is answered
	// either by the login page again, with an error, or by redirects that end
	// on the relying party, and an evaluation may hit a document that is
	// being replaced, which only costs a retry.
	type page struct {
		URL   string `json:"url"`
		Ready bool   `json:"ready"`
		Error string `json:"error"`
	}
	const probe = `(() => {
		const e = document.querySelector(` + "`" + loginError + "`" + `);
		return {
			url: document.location.href,
			ready: document.readyState === "complete",
			error: e ? e.textContent.trim() : "",
		};
	})()`
	var last page
	for {
		p, err := chromedp.Run(ctx, chromedp.Evaluate[page](probe))
		if err == nil {
			last = p
			if u, err := url.Parse(p.URL); err == nil && p.Ready &&
				(u.Scheme != dex.Scheme || u.Host != dex.Host) {
				return p.URL, nil
			}
			if p.Error != "" {
				return p.URL, fmt.Errorf("%w: %s", ErrLoginRejected, p.Error)
			}
		}
		select {
		case <-ctx.Done():
			if last.URL == "" {
				last.URL = formURL
			}
			return last.URL, fmt.Errorf("waiting to leave dex (%s) after the login, still at %s: %w", dex.Host, last.URL, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Cookies returns the browser's cookies for urls, or, without urls, for the
// tab's current page and its frames.
func Cookies(ctx context.Context, urls ...string) ([]*network.Cookie, error) {
	return chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) ([]*network.Cookie, error) {
		r, err := cdp.Call(ctx, t, network.GetCookies, network.GetCookiesParams{URLs: urls})
		if err != nil {
			return nil, err
		}
		return r.Cookies, nil
	})
}

// Text returns the text of the tab's document body, for assertions on what
// a page shows.
func Text(ctx context.Context) (string, error) {
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	return strings.TrimSpace(s), err
}

// Navigate loads target in the tab ctx, following redirects, and returns the
// URL the tab ends on once that page has loaded.
func Navigate(ctx context.Context, target string) (string, error) {
	if err := chromedp.Do(ctx, chromedp.Navigate(target)); err != nil {
		return "", fmt.Errorf("navigating to %s: %w", target, err)
	}
	for {
		p, err := chromedp.Run(ctx, chromedp.Evaluate[[2]string](`[document.location.href, document.readyState]`))
		if err == nil && p[1] == "complete" {
			return p[0], nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for %s to load: %w", target, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
