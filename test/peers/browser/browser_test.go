package browser_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sekisho/sekisho/test/peers/browser"
)

// TestTabsAndCleanup opens two tabs on one browser, checks that they share
// cookies, and that the browser is gone once the test that started it ends.
func TestTabsAndCleanup(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/set" {
			http.SetCookie(w, &http.Cookie{Name: "probe", Value: "42", Path: "/"})
		}
		c, err := r.Cookie("probe")
		value := "none"
		if err == nil {
			value = c.Value
		}
		fmt.Fprintf(w, "<html><body>probe=%s</body></html>", value)
	}))
	defer srv.Close()

	var pid int
	t.Run("browser", func(t *testing.T) {
		b := browser.Start(t)
		pid = b.PID()
		if pid == 0 {
			t.Fatal("no browser process")
		}

		tab1, close1 := b.NewTab()
		defer close1()
		ctx1, cancel1 := context.WithTimeout(tab1, 60*time.Second)
		defer cancel1()
		if err := chromedp.Do(ctx1, chromedp.Navigate(srv.URL+"/set")); err != nil {
			t.Fatal(err)
		}
		cookies, err := browser.Cookies(ctx1)
		if err != nil {
			t.Fatal(err)
		}
		if len(cookies) != 1 || cookies[0].Name != "probe" || cookies[0].Value != "42" {
			t.Errorf("Cookies = %v, want probe=42", cookies)
		}

		tab2, close2 := b.NewTab()
		defer close2()
		ctx2, cancel2 := context.WithTimeout(tab2, 60*time.Second)
		defer cancel2()
		if err := chromedp.Do(ctx2, chromedp.Navigate(srv.URL+"/")); err != nil {
			t.Fatal(err)
		}
		if text, err := browser.Text(ctx2); err != nil || text != "probe=42" {
			t.Errorf("second tab shows %q, %v; want probe=42 (shared cookies)", text, err)
		}
	})

	// The subtest's cleanup has stopped the browser and failed it if any
	// Chromium process were left; check the browser process once more.
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err == nil && !strings.Contains(string(stat), ") Z ") {
		t.Errorf("chromium (pid %d) is still running after its test ended: %s", pid, stat)
	}
}
