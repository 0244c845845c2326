// Package dex runs Dex, a real OpenID Connect provider, for sekisho's
// end-to-end tests: bin/dex, built by test/tools/dex/build.sh (make dex), on
// 127.0.0.1 with in-memory storage, static users and static clients, as
// test/scripts/dex-up.sh does for tests driven from the shell.
//
// Dex's quirks at the pinned version, which tests must allow for:
//   - Its password database logs users in by email: the "login" field of the
//     login form takes User.Email, not User.Username.
//   - It keeps no login session: every authorization request shows the login
//     form again, and its discovery document has no end_session_endpoint
//     (RP-initiated logout is not implemented).
//   - ID tokens are signed with RS256 only. A password user's Username is
//     the token's name claim; preferred_username is empty.
package dex

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BuildHint is how to get bin/dex and bin/dex-bcrypt when they are missing.
const BuildHint = "run test/tools/dex/build.sh (make dex)"

// Timeouts of Start and of the cleanup that stops Dex.
const (
	readyTimeout = 30 * time.Second
	stopTimeout  = 10 * time.Second
)

// Client is a static OAuth2 client of Dex. A client with a Secret is
// confidential; Dex checks RedirectURIs exactly.
type Client struct {
	ID           string
	Secret       string
	RedirectURIs []string
}

// User is a static user of Dex's password database. Email is what the login
// form takes and the email claim (always verified); Username becomes the
// name claim, while preferred_username stays empty.
type User struct {
	Email    string
	Username string
	Password string
}

// Admin is the user Start creates when Options.Users is empty, the same as
// test/scripts/dex-up.sh's default user.
var Admin = User{Email: "admin@example.com", Username: "admin", Password: "password"}

// Options configure Start.
type Options struct {
	// Port is Dex's port on 127.0.0.1; 0 picks a free one.
	Port int
	// Clients are the static clients.
	Clients []Client
	// Users are the static users of the password database; empty means
	// only Admin.
	Users []User
}

// Dex is a running Dex process.
type Dex struct {
	issuer     string
	configPath string
	logPath    string
	pid        int
}

// Issuer is the issuer URL, http://127.0.0.1:PORT/dex; discovery is at
// Issuer()+"/.well-known/openid-configuration".
func (d *Dex) Issuer() string { return d.issuer }

// ConfigPath is the path of the config file Dex runs with.
func (d *Dex) ConfigPath() string { return d.configPath }

// LogPath is the path of the file that receives Dex's output.
func (d *Dex) LogPath() string { return d.logPath }

// PID is the process ID of Dex.
func (d *Dex) PID() int { return d.pid }

// Start writes a config for opts, starts bin/dex serve, waits until its
// discovery document answers, and registers a cleanup that stops Dex by its
// PID (SIGTERM, then SIGKILL after 10s) and waits until it has exited. It
// fails the test when bin/dex or bin/dex-bcrypt is missing. On Linux, Dex is
// also killed when the test binary dies.
func Start(t testing.TB, opts Options) *Dex {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatalf("dex: %v", err)
	}
	dexBin := filepath.Join(root, "bin", "dex")
	bcryptBin := filepath.Join(root, "bin", "dex-bcrypt")
	for _, bin := range []string{dexBin, bcryptBin} {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("dex: %s is missing: %s", bin, BuildHint)
		}
	}

	users := opts.Users
	if len(users) == 0 {
		users = []User{Admin}
	}
	hashes, err := hashPasswords(bcryptBin, users)
	if err != nil {
		t.Fatalf("dex: %v", err)
	}

	dir := t.TempDir()
	// A free port found by listening on port 0 can be taken by someone else
	// before Dex binds it, so a Dex that cannot bind gets another port.
	const attempts = 3
	for attempt := 1; ; attempt++ {
		port := opts.Port
		if port == 0 {
			if port, err = freePort(); err != nil {
				t.Fatalf("dex: %v", err)
			}
		}
		d := &Dex{
			issuer:     "http://127.0.0.1:" + strconv.Itoa(port) + "/dex",
			configPath: filepath.Join(dir, "config.yaml"),
			logPath:    filepath.Join(dir, fmt.Sprintf("dex-%d.log", attempt)),
		}
		cfg := config(d.issuer, port, opts.Clients, users, hashes)
		if err := os.WriteFile(d.configPath, cfg, 0o600); err != nil {
			t.Fatalf("dex: %v", err)
		}
		err := d.start(t, dexBin)
		if err == nil {
			return d
		}
		if opts.Port == 0 && attempt < attempts && errors.Is(err, errAddrInUse) {
			t.Logf("dex: port %d was taken, trying another", port)
			continue
		}
		t.Fatalf("dex: %v", err)
	}
}

var errAddrInUse = errors.New("address already in use")

// start runs Dex with d's config and waits for discovery. On success it has
// registered the cleanup that stops Dex; on failure Dex is stopped.
func (d *Dex) start(t testing.TB, dexBin string) error {
	logFile, err := os.Create(d.logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(dexBin, "serve", d.configPath)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	setProcAttr(cmd)
	started := make(chan error, 1)
	exited := make(chan struct{})
	var waitErr error
	// Start and Wait run on one locked OS thread: on Linux, Dex gets SIGKILL
	// when the thread that started it ends (Pdeathsig), and a locked thread
	// lives as long as this goroutine, that is as long as Dex.
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		waitErr = cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("starting %s: %w", dexBin, err)
	}
	d.pid = cmd.Process.Pid
	stop := func() error {
		select {
		case <-exited:
			return fmt.Errorf("dex (pid %d) exited before it was stopped: %v", d.pid, waitErr)
		default:
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("stopping dex (pid %d): %w", d.pid, err)
		}
		select {
		case <-exited:
			return nil
		case <-time.After(stopTimeout):
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("dex (pid %d) ignored SIGTERM for %v and was killed", d.pid, stopTimeout)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := waitReady(ctx, d.issuer, exited); err != nil {
		_ = stop()
		log, _ := os.ReadFile(d.logPath)
		if bytes.Contains(log, []byte(errAddrInUse.Error())) {
			return fmt.Errorf("%w: %s", errAddrInUse, tail(log, 10))
		}
		return fmt.Errorf("%v\n%s:\n%s", err, d.logPath, tail(log, 20))
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("dex: %v", err)
		}
		if t.Failed() {
			log, _ := os.ReadFile(d.logPath)
			t.Logf("dex: last lines of %s:\n%s", d.logPath, tail(log, 40))
		}
	})
	return nil
}

// waitReady polls the discovery document of issuer until it answers 200,
// Dex exits, or ctx ends.
func waitReady(ctx context.Context, issuer string, exited <-chan struct{}) error {
	url := issuer + "/.well-known/openid-configuration"
	client := &http.Client{Timeout: 2 * time.Second}
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		last = err
		select {
		case <-exited:
			return errors.New("dex exited before serving discovery")
		case <-ctx.Done():
			return fmt.Errorf("dex did not serve discovery within %v: %v", readyTimeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// config returns Dex's config. JSON is YAML, so encoding/json writes it.
func config(issuer string, port int, clients []Client, users []User, hashes []string) []byte {
	type staticPassword struct {
		Email    string `json:"email"`
		Username string `json:"username"`
		UserID   string `json:"userID"`
		Hash     string `json:"hash"`
	}
	type staticClient struct {
		ID           string   `json:"id"`
		Secret       string   `json:"secret,omitempty"`
		Name         string   `json:"name"`
		RedirectURIs []string `json:"redirectURIs"`
	}
	passwords := make([]staticPassword, len(users))
	for i, u := range users {
		passwords[i] = staticPassword{
			Email:    u.Email,
			Username: u.Username,
			UserID:   fmt.Sprintf("user-%d-%s", i+1, u.Username),
			Hash:     hashes[i],
		}
	}
	staticClients := make([]staticClient, len(clients))
	for i, c := range clients {
		staticClients[i] = staticClient{ID: c.ID, Secret: c.Secret, Name: c.ID, RedirectURIs: c.RedirectURIs}
	}
	cfg := map[string]any{
		"issuer":  issuer,
		"storage": map[string]any{"type": "memory"},
		"web":     map[string]any{"http": "127.0.0.1:" + strconv.Itoa(port)},
		"logger":  map[string]any{"level": "info", "format": "text"},
		"oauth2": map[string]any{
			"skipApprovalScreen": true,
			"responseTypes":      []string{"code"},
		},
		"enablePasswordDB": true,
		"staticPasswords":  passwords,
		"staticClients":    staticClients,
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		panic(err) // only strings, slices and maps of them
	}
	return append(b, '\n')
}

// hashPasswords returns the bcrypt hashes of the users' passwords, from
// bin/dex-bcrypt (the main module has no bcrypt of its own).
func hashPasswords(bcryptBin string, users []User) ([]string, error) {
	var in strings.Builder
	for _, u := range users {
		if u.Email == "" || u.Password == "" {
			return nil, fmt.Errorf("user %+v needs an Email and a Password", User{Email: u.Email, Username: u.Username})
		}
		if strings.ContainsAny(u.Password, "\r\n") {
			return nil, fmt.Errorf("the password of %s has a line break", u.Email)
		}
		in.WriteString(u.Password + "\n")
	}
	cmd := exec.Command(bcryptBin)
	cmd.Stdin = strings.NewReader(in.String())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %v: %s", bcryptBin, err, strings.TrimSpace(stderr.String()))
	}
	var hashes []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		hashes = append(hashes, sc.Text())
	}
	if len(hashes) != len(users) {
		return nil, fmt.Errorf("%s printed %d hashes for %d passwords", bcryptBin, len(hashes), len(users))
	}
	return hashes, nil
}

// freePort returns a port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// RepoRoot returns the root of the sekisho checkout: the nearest directory
// at or above the working directory whose go.mod is the main module's.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			bytes.Contains(b, []byte("module github.com/sekisho/sekisho\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod of github.com/sekisho/sekisho at or above the working directory")
		}
		dir = parent
	}
}

// tail returns the last n lines of b.
func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
