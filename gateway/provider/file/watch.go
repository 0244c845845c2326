package file

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/sekisho/sekisho/gateway/resource"
)

// Watch watches dir as Load reads it and calls onChange with the current
// resources and problems: once at the start, then after every change. See
// Watcher for what is served when a file goes bad. It returns nil when ctx is
// cancelled, or an error if dir cannot be watched.
func Watch(ctx context.Context, dir string, onChange func(*resource.Resources, []resource.Problem)) error {
	return (&Watcher{Dir: dir, OnChange: onChange}).Run(ctx)
}

// Watcher watches a folder of YAML files, subfolders included (ones created
// later too), and calls OnChange once at the start and then within a second
// of every change that alters a file's contents, the set of files, or what
// is served. Bursts of events (an editor's save, a checkout) are debounced.
// Editors that save by writing a new file and renaming it over the old one
// work, as do mounted ConfigMaps (symbolic links swapped atomically).
//
// Nothing is lost: when a file has any error-level problem (malformed YAML,
// an unknown kind or field, a failed validation) and it was good before, the
// objects of its last good version are served instead of its new contents;
// its problems are still reported, with a warning that the last good version
// is being served. A file that has never been good contributes the documents
// that decoded and validated. Deleting a file removes its objects.
//
// OnChange is called from Run's goroutine, one call at a time; it must not
// modify what it is given after returning (each call gets fresh copies).
type Watcher struct {
	Dir      string
	OnChange func(*resource.Resources, []resource.Problem)
	// Debounce is how long the folder must be quiet before it is read again
	// after a change; 0 means 80ms. A steady stream of changes is still
	// read every 500ms at most.
	Debounce time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger

	fsw      *fsnotify.Watcher
	watched  map[string]bool
	files    map[string]*fileResult // the current content's result, by path
	data     map[string][]byte      // the current content, by path
	lastGood map[string]*fileResult
	started  bool
}

const maxDebounce = 500 * time.Millisecond

// Run watches until ctx is cancelled, then returns nil. It returns an error
// when the watch cannot be set up or dir cannot be read at the start.
func (w *Watcher) Run(ctx context.Context) error {
	if w.Debounce <= 0 {
		w.Debounce = 80 * time.Millisecond
	}
	if w.Logger == nil {
		w.Logger = slog.Default()
	}
	if w.OnChange == nil {
		w.OnChange = func(*resource.Resources, []resource.Problem) {}
	}
	if st, err := os.Stat(w.Dir); err != nil {
		return fmt.Errorf("watching folder %s: %w", w.Dir, err)
	} else if !st.IsDir() {
		return fmt.Errorf("watching folder %s: not a folder", w.Dir)
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching folder %s: %w", w.Dir, err)
	}
	defer fsw.Close()
	w.fsw, w.watched = fsw, map[string]bool{}
	w.files, w.data, w.lastGood = map[string]*fileResult{}, map[string][]byte{}, map[string]*fileResult{}
	if err := w.rescan(); err != nil {
		return err
	}
	var (
		timer   = time.NewTimer(time.Hour)
		pending bool
		first   time.Time
	)
	timer.Stop()
	defer timer.Stop()
	schedule := func() {
		now := time.Now()
		if !pending {
			pending, first = true, now
		}
		timer.Reset(min(w.Debounce, max(0, maxDebounce-now.Sub(first))))
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fsw.Events:
			if !ok {
				return fmt.Errorf("watching folder %s: the watcher stopped", w.Dir)
			}
			w.Logger.Debug("file event", "folder", w.Dir, "path", ev.Name, "op", ev.Op.String())
			schedule()
		case err, ok := <-fsw.Errors:
			if !ok {
				return fmt.Errorf("watching folder %s: the watcher stopped", w.Dir)
			}
			// an overflow loses events: read everything again
			w.Logger.Warn("watching folder", "folder", w.Dir, "error", err)
			schedule()
		case <-timer.C:
			pending = false
			if err := w.rescan(); err != nil {
				w.Logger.Error("reading folder", "folder", w.Dir, "error", err)
			}
		}
	}
}

// rescan brings the watches up to date with the folders under Dir, reads
// every file, and calls OnChange if anything changed.
func (w *Watcher) rescan() error {
	w.syncWatches()
	paths, listProblems, err := listFiles(w.Dir)
	if err != nil {
		return err
	}
	changed := !w.started || len(listProblems) > 0
	present := map[string]bool{}
	var changedPaths []string
	var changedData [][]byte
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			// gone or replaced since it was listed; the event that follows reads it again
			w.Logger.Debug("reading file", "path", p, "error", err)
			continue
		}
		present[p] = true
		if old, ok := w.data[p]; ok && bytes.Equal(old, data) {
			continue
		}
		changed = true
		w.data[p] = data
		changedPaths, changedData = append(changedPaths, p), append(changedData, data)
	}
	for i, r := range loadFiles(changedPaths, changedData) {
		w.files[changedPaths[i]] = r
	}
	for p := range w.data {
		if !present[p] {
			changed = true
			delete(w.data, p)
			delete(w.files, p)
			delete(w.lastGood, p)
		}
	}
	if !changed {
		return nil
	}
	w.started = true
	var served []*fileResult
	for _, p := range paths {
		r, ok := w.files[p]
		if !ok {
			continue
		}
		switch good := w.lastGood[p]; {
		case !r.bad:
			w.lastGood[p] = r
		case good != nil:
			note := resource.Problem{Source: resource.Source{File: p}, Warning: true,
				Msg: fmt.Sprintf("this file has errors: serving its last good version (%d objects) until they are fixed", len(good.objects))}
			r = &fileResult{file: p, objects: good.objects, problems: append(append([]resource.Problem(nil), r.problems...), note), bad: true}
		}
		served = append(served, r)
	}
	res, problems := merge(served)
	problems = append(listProblems, problems...)
	w.Logger.Info("file provider loaded", "folder", w.Dir, "files", len(served), "problems", len(problems))
	w.OnChange(res, problems)
	return nil
}

// syncWatches watches every folder under Dir that is not hidden, and stops
// watching those that are gone.
func (w *Watcher) syncWatches() {
	now := map[string]bool{}
	_ = filepath.WalkDir(w.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if path != w.Dir && skipName(d.Name()) {
			return filepath.SkipDir
		}
		now[path] = true
		return nil
	})
	for dir := range now {
		if w.watched[dir] {
			continue
		}
		if err := w.fsw.Add(dir); err != nil {
			w.Logger.Warn("watching folder", "folder", dir, "error", err)
			continue
		}
		w.watched[dir] = true
	}
	for dir := range w.watched {
		if !now[dir] {
			if err := w.fsw.Remove(dir); err != nil && !errors.Is(err, fsnotify.ErrNonExistentWatch) {
				w.Logger.Debug("unwatching folder", "folder", dir, "error", err)
			}
			delete(w.watched, dir)
		}
	}
}
