package file

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	policyv1alpha1 "github.com/sekisho/sekisho/crds/policy/v1alpha1"
	"github.com/sekisho/sekisho/gateway/resource"
)

// Load reads every *.yaml and *.yml file under dir, recursively and in
// lexical order of path, skipping hidden files and folders (names starting
// with ".") and editor temporary files. Each object's Source.File is dir
// joined with its path under dir. Objects are decoded (ParseBytes) and
// validated (Validate); an object with an error-level problem is left out,
// the rest are kept. When two files define the same object, the first in
// path order is kept and the other is reported. The error is only for a
// failure to read dir itself; every problem with the files is a Problem.
func Load(dir string) (*resource.Resources, []resource.Problem, error) {
	files, problems, err := listFiles(dir)
	if err != nil {
		return nil, nil, err
	}
	var names []string
	var datas [][]byte
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			problems = append(problems, resource.Problem{Source: resource.Source{File: f}, Msg: fmt.Sprintf("reading file: %v", err)})
			continue
		}
		names, datas = append(names, f), append(datas, data)
	}
	// the results are Load's alone: merge need not copy their objects
	res, more := mergeFiles(loadFiles(names, datas), false)
	return res, append(problems, more...), nil
}

// listFiles lists the YAML files under dir in lexical order. Symbolic links
// to files are followed (as a mounted ConfigMap has them); links to folders
// are not. Folders that cannot be read are problems; dir itself is an error.
func listFiles(dir string) ([]string, []resource.Problem, error) {
	var files []string
	var problems []resource.Problem
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == dir {
				return fmt.Errorf("reading folder %s: %w", dir, err)
			}
			problems = append(problems, resource.Problem{Source: resource.Source{File: path}, Msg: fmt.Sprintf("reading: %v", err)})
			return nil
		}
		if path != dir && skipName(d.Name()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || !isYAML(d.Name()) {
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			if st, err := os.Stat(path); err != nil || !st.Mode().IsRegular() {
				return nil
			}
		} else if !d.Type().IsRegular() {
			return nil
		}
		files = append(files, path)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	sort.Strings(files)
	return files, problems, nil
}

// skipName says whether a file or folder is hidden or an editor's temporary
// or backup file.
func skipName(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasPrefix(name, "#") || strings.HasSuffix(name, "~") ||
		strings.HasSuffix(name, ".swp") || strings.HasSuffix(name, ".swx") || strings.HasSuffix(name, ".tmp")
}

func isYAML(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	return ext == ".yaml" || ext == ".yml"
}

// fileResult is what one file contributes.
type fileResult struct {
	file string
	// objects are the documents that decoded and validated, in file order.
	objects []entry
	// problems are every problem of the file, errors and warnings.
	problems []resource.Problem
	// bad says whether any problem is an error.
	bad bool
}

// entry is one decoded object and where it came from.
type entry struct {
	key resource.ObjectKey
	src resource.Source
	obj metav1.Object
}

// loadFile decodes and validates one file.
func loadFile(name string, data []byte) *fileResult {
	res := &resource.Resources{}
	problems := ParseBytes(name, data, res)
	return fileVerdict(name, res, append(problems, Validate(res)...))
}

// loadFiles is loadFile of each file, with the same results, but the
// documents of all the files are decoded and checked against their CRDs
// concurrently, by GOMAXPROCS workers; the rest (duplicates within a file,
// sekisho's own rules, the order of problems) is done file by file, in
// document order, as loadFile does.
func loadFiles(names []string, datas [][]byte) []*fileResult {
	type job struct {
		file int
		src  resource.Source
		doc  document
		dec  decoded
	}
	var jobs []job
	for i, name := range names {
		for j, d := range splitDocuments(datas[i]) {
			jobs = append(jobs, job{file: i, src: resource.Source{File: name, Doc: j}, doc: d})
		}
	}
	parallel(len(jobs), func(i int) {
		j := &jobs[i]
		if j.doc.badSeparator == "" {
			j.dec = decodeDocument(j.doc, j.src)
			j.dec.check()
		}
		j.doc.data = nil
	})
	out := make([]*fileResult, len(names))
	for i, name := range names {
		res := &resource.Resources{Sources: map[resource.ObjectKey]resource.Source{}}
		checked := map[resource.ObjectKey]field.ErrorList{}
		var problems []resource.Problem
		for len(jobs) > 0 && jobs[0].file == i {
			j := &jobs[0]
			if j.doc.badSeparator != "" {
				problems = append(problems, separatorProblem(j.src, j.doc))
			} else {
				more := j.dec.commit(res, j.src)
				if more == nil && j.dec.checked {
					checked[j.dec.key] = j.dec.crdErrs
				}
				problems = append(problems, more...)
			}
			jobs[0] = job{} // let the garbage collector have what it held
			jobs = jobs[1:]
		}
		out[i] = fileVerdict(name, res, append(problems, validate(res, checked)...))
	}
	return out
}

// parallel calls f(0), ..., f(n-1) on GOMAXPROCS goroutines and returns
// when every call has.
func parallel(n int, f func(int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f(i)
			}
		})
	}
	wg.Wait()
}

// fileVerdict is the result of one file from its decoded objects and all
// its problems.
func fileVerdict(name string, res *resource.Resources, problems []resource.Problem) *fileResult {
	r := &fileResult{file: name, problems: problems}
	rejected := map[resource.ObjectKey]bool{}
	for _, p := range r.problems {
		if !p.Warning {
			r.bad = true
			if p.Object.Kind != "" {
				rejected[p.Object] = true
			}
		}
	}
	for _, e := range entries(res) {
		if !rejected[e.key] {
			r.objects = append(r.objects, e)
		}
	}
	sort.SliceStable(r.objects, func(i, j int) bool { return r.objects[i].src.Doc < r.objects[j].src.Doc })
	return r
}

// entries lists every object of res with its key and source.
func entries(res *resource.Resources) []entry {
	var out []entry
	addAll := func(kind string, objs []metav1.Object) {
		for _, o := range objs {
			key := resource.ObjectKey{Kind: kind, Namespace: o.GetNamespace(), Name: o.GetName()}
			if !namespaced(kind) {
				key.Namespace = ""
			}
			out = append(out, entry{key: key, src: res.Sources[key], obj: o})
		}
	}
	addAll("GatewayClass", asObjects(res.GatewayClasses))
	addAll("Gateway", asObjects(res.Gateways))
	addAll("HTTPRoute", asObjects(res.HTTPRoutes))
	addAll("GRPCRoute", asObjects(res.GRPCRoutes))
	addAll("ReferenceGrant", asObjects(res.ReferenceGrants))
	addAll("Service", asObjects(res.Services))
	addAll("EndpointSlice", asObjects(res.EndpointSlices))
	addAll("Secret", asObjects(res.Secrets))
	addAll("Namespace", asObjects(res.Namespaces))
	addAll("GatewayClassConfig", asObjects(res.GatewayClassConfigs))
	addAll(policyv1alpha1.RateLimitPolicyKind, asObjects(res.RateLimitPolicies))
	addAll(policyv1alpha1.SecurityPolicyKind, asObjects(res.SecurityPolicies))
	return out
}

func asObjects[T metav1.Object](objs []T) []metav1.Object {
	out := make([]metav1.Object, len(objs))
	for i, o := range objs {
		out[i] = o
	}
	return out
}

// merge puts the objects of files together, in the order given. An object
// that an earlier file (or document) already defined is reported, naming
// both places, and left out. The problems of every file come first, then
// the duplicates.
// Each object is a copy: a watcher hands out the same last-good objects
// again.
func merge(files []*fileResult) (*resource.Resources, []resource.Problem) {
	return mergeFiles(files, true)
}

// mergeFiles is merge, copying the objects or not: a caller that owns the
// results, as Load does, needs no copies.
func mergeFiles(files []*fileResult, copyObjects bool) (*resource.Resources, []resource.Problem) {
	res := &resource.Resources{Sources: map[resource.ObjectKey]resource.Source{}}
	var problems, dups []resource.Problem
	for _, f := range files {
		problems = append(problems, f.problems...)
		for _, e := range f.objects {
			if prev, dup := res.Sources[e.key]; dup {
				dups = append(dups, resource.Problem{Source: e.src, Object: e.key,
					Msg: fmt.Sprintf("duplicate: the same object is also defined at %s; this copy is ignored", prev)})
				continue
			}
			obj := e.obj
			if copyObjects {
				obj = e.obj.(k8sruntime.Object).DeepCopyObject().(metav1.Object)
			}
			add(res, e.key, obj)
			res.Sources[e.key] = e.src
		}
	}
	return res, append(problems, dups...)
}
