package file

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sekisho/sekisho/gateway/resource"
)

// snapshot is one OnChange call, reduced to what the tests compare.
type snapshot struct {
	objects  []string // "Kind ns/name@file:doc port=N" for Services
	problems []string
}

func (s snapshot) String() string {
	return fmt.Sprintf("objects %v\nproblems %v", s.objects, s.problems)
}

func reduce(dir string, res *resource.Resources, problems []resource.Problem) snapshot {
	var s snapshot
	for _, e := range entries(res) {
		rel, _ := filepath.Rel(dir, e.src.File)
		o := fmt.Sprintf("%s@%s:%d", e.key, filepath.ToSlash(rel), e.src.Doc)
		s.objects = append(s.objects, o)
	}
	for _, svc := range res.Services {
		for i, o := range s.objects {
			if strings.HasPrefix(o, "Service "+svc.Namespace+"/"+svc.Name+"@") && len(svc.Spec.Ports) > 0 {
				s.objects[i] += fmt.Sprintf(" port=%d", svc.Spec.Ports[0].Port)
			}
		}
	}
	for _, p := range problems {
		s.problems = append(s.problems, strings.ReplaceAll(p.String(), dir+string(filepath.Separator), ""))
	}
	slices.Sort(s.objects)
	return s
}

func svcYAML(name string, port int) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Service\nmetadata: {name: %s}\nspec:\n  ports: [{port: %d}]\n", name, port)
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestWatch drives a watcher through the changes users make and checks what
// is served after each, waiting for the callback (never for a fixed time).
func TestWatch(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.yaml"), svcYAML("a", 80))

	ctx, cancel := context.WithCancel(context.Background())
	snaps := make(chan snapshot, 100)
	done := make(chan error, 1)
	w := &Watcher{Dir: dir, Debounce: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnChange: func(res *resource.Resources, problems []resource.Problem) { snaps <- reduce(dir, res, problems) }}
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v after cancel", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
	}()

	// await waits for the first callback whose snapshot is want, failing
	// with the last snapshot seen if none comes within the timeout.
	await := func(step string, want snapshot) {
		t.Helper()
		var last snapshot
		timeout := time.After(5 * time.Second)
		for {
			select {
			case s := <-snaps:
				last = s
				if slices.Equal(s.objects, want.objects) && slices.Equal(s.problems, want.problems) {
					return
				}
			case <-timeout:
				t.Fatalf("%s: no callback with\n%s\nlast seen:\n%s", step, want, last)
			}
		}
	}

	await("start", snapshot{objects: []string{"Service default/a@a.yaml:0 port=80"}})

	write(t, filepath.Join(dir, "b.yaml"), svcYAML("b", 90))
	await("create", snapshot{objects: []string{"Service default/a@a.yaml:0 port=80", "Service default/b@b.yaml:0 port=90"}})

	write(t, filepath.Join(dir, "b.yaml"), svcYAML("b", 91))
	await("modify", snapshot{objects: []string{"Service default/a@a.yaml:0 port=80", "Service default/b@b.yaml:0 port=91"}})

	// a bad edit: the last good version of b.yaml stays served
	write(t, filepath.Join(dir, "b.yaml"), svcYAML("b", 92)+"  bogus: 1\n")
	await("bad edit", snapshot{
		objects: []string{"Service default/a@a.yaml:0 port=80", "Service default/b@b.yaml:0 port=91"},
		problems: []string{
			"b.yaml:0: Service default/b: spec.bogus: unknown field",
			"b.yaml:0: this file has errors: serving its last good version (1 objects) until they are fixed",
		},
	})

	write(t, filepath.Join(dir, "b.yaml"), svcYAML("b", 93))
	await("fix", snapshot{objects: []string{"Service default/a@a.yaml:0 port=80", "Service default/b@b.yaml:0 port=93"}})

	// an atomic save: write a hidden temporary file, rename it over b.yaml
	tmp := filepath.Join(dir, ".b.yaml.tmp")
	write(t, tmp, svcYAML("b", 94))
	if err := os.Rename(tmp, filepath.Join(dir, "b.yaml")); err != nil {
		t.Fatal(err)
	}
	await("rename over", snapshot{objects: []string{"Service default/a@a.yaml:0 port=80", "Service default/b@b.yaml:0 port=94"}})

	// a new subfolder, then a file in it
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "sub", "c.yaml"), svcYAML("c", 95))
	await("new subfolder", snapshot{objects: []string{"Service default/a@a.yaml:0 port=80", "Service default/b@b.yaml:0 port=94", "Service default/c@sub/c.yaml:0 port=95"}})

	write(t, filepath.Join(dir, "sub", "c.yaml"), svcYAML("c", 96))
	await("modify in subfolder", snapshot{objects: []string{"Service default/a@a.yaml:0 port=80", "Service default/b@b.yaml:0 port=94", "Service default/c@sub/c.yaml:0 port=96"}})

	// a file that was never good contributes the documents that are
	write(t, filepath.Join(dir, "d.yaml"), svcYAML("d1", 97)+"---\n"+svcYAML("d2", 0))
	await("never good", snapshot{
		objects:  []string{"Service default/a@a.yaml:0 port=80", "Service default/b@b.yaml:0 port=94", "Service default/c@sub/c.yaml:0 port=96", "Service default/d1@d.yaml:0 port=97"},
		problems: []string{"d.yaml:1: Service default/d2: spec.ports[0].port: port 0 out of range: must be between 1 and 65535"},
	})

	// rename a file: its objects move with it
	if err := os.Rename(filepath.Join(dir, "a.yaml"), filepath.Join(dir, "sub", "a2.yaml")); err != nil {
		t.Fatal(err)
	}
	await("rename", snapshot{
		objects:  []string{"Service default/a@sub/a2.yaml:0 port=80", "Service default/b@b.yaml:0 port=94", "Service default/c@sub/c.yaml:0 port=96", "Service default/d1@d.yaml:0 port=97"},
		problems: []string{"d.yaml:1: Service default/d2: spec.ports[0].port: port 0 out of range: must be between 1 and 65535"},
	})

	// delete files and a whole subfolder
	if err := os.Remove(filepath.Join(dir, "d.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "sub")); err != nil {
		t.Fatal(err)
	}
	await("delete", snapshot{objects: []string{"Service default/b@b.yaml:0 port=94"}})
}

func TestWatchMissingFolder(t *testing.T) {
	err := Watch(context.Background(), filepath.Join(t.TempDir(), "nope"), func(*resource.Resources, []resource.Problem) {})
	if err == nil {
		t.Fatal("Watch of a missing folder: no error")
	}
}
