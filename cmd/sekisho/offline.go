package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	k8stypes "k8s.io/apimachinery/pkg/types"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/sekisho/sekisho/gateway/provider/file"
	"github.com/sekisho/sekisho/gateway/resource"
	"github.com/sekisho/sekisho/gateway/status"
	gwtranslate "github.com/sekisho/sekisho/gateway/translate"
	"github.com/sekisho/sekisho/internal/gatewayproxy"
	"github.com/sekisho/sekisho/ir"
	xdstranslate "github.com/sekisho/sekisho/xds/translate"
)

// offlineFlags are the flags of the commands that read a folder without
// running it (translate, validate, status).
type offlineFlags struct {
	dir, authz, rateLimit *string
}

// addOfflineFlags adds them. `sekisho run` picks the ports of its embedded
// services when it starts, so a command that only reads files cannot know
// them: it translates as for the services run apart (`sekisho authz`,
// `sekisho ratelimit`) at their default addresses, or at those the flags
// name. The xDS printed names those addresses; `sekisho run` serves the same
// xDS with its own.
func addOfflineFlags(fs *flag.FlagSet) offlineFlags {
	return offlineFlags{
		dir:       dirFlag(fs),
		authz:     fs.String("authz-address", "127.0.0.1:18081", "host:port of the authorization service the xDS names (sekisho authz's default)"),
		rateLimit: fs.String("ratelimit-address", "127.0.0.1:18082", "host:port of the rate-limit service the xDS names (sekisho ratelimit's default)"),
	}
}

// loadAndTranslate reads the folder and translates it.
func (f offlineFlags) loadAndTranslate() (*gwtranslate.Result, error) {
	dir := *f.dir
	if dir == "" {
		return nil, fmt.Errorf("%w: -f DIR is required", errUsage)
	}
	authz, err := serviceAddress(*f.authz)
	if err != nil {
		return nil, fmt.Errorf("%w: --authz-address: %v", errUsage, err)
	}
	rl, err := serviceAddress(*f.rateLimit)
	if err != nil {
		return nil, fmt.Errorf("%w: --ratelimit-address: %v", errUsage, err)
	}
	res, problems, err := file.Load(dir)
	if err != nil {
		return nil, err
	}
	result := gwtranslate.Translate(res, gwtranslate.Options{
		DefaultAddresses: []string{"127.0.0.1"},
		AuthzService:     []ir.ServiceAddress{*authz},
		RateLimitService: []ir.ServiceAddress{*rl},
	})
	result.Problems = append(problems, result.Problems...)
	return result, nil
}

func dirFlag(fs *flag.FlagSet) *string {
	return fs.String("f", "", "folder of Gateway API, Service, EndpointSlice and Secret YAML (read recursively)")
}

func runValidate(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("validate", stderr)
	f := addOfflineFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	result, err := f.loadAndTranslate()
	if err != nil {
		return err
	}
	// The xDS translator is the last check: what it refuses, no proxy gets.
	for _, gw := range result.IR.Gateways {
		// Translate validates what it builds (Resources.Validate).
		_, err := xdstranslate.Translate(gw)
		if err != nil {
			result.Problems = append(result.Problems, resource.Problem{
				Object: resource.ObjectKey{Kind: "Gateway", Namespace: gw.Namespace, Name: gw.GatewayName},
				Msg:    fmt.Sprintf("building xDS: %v", err),
			})
		}
	}
	// One file's problems together, in document order.
	sort.SliceStable(result.Problems, func(i, j int) bool {
		a, b := result.Problems[i].Source, result.Problems[j].Source
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Doc < b.Doc
	})
	errorsFound, warnings := 0, 0
	for _, p := range result.Problems {
		if p.Warning {
			warnings++
			fmt.Fprintf(stdout, "warning: %s\n", p)
			continue
		}
		errorsFound++
		fmt.Fprintf(stdout, "%s\n", p)
	}
	fmt.Fprintf(stderr, "%d error(s), %d warning(s)\n", errorsFound, warnings)
	if errorsFound > 0 {
		return errFound
	}
	return nil
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("status", stderr)
	f := addOfflineFlags(fs)
	adminAddr := fs.String("admin", "", "the admin address of a running `sekisho run` or `sekisho controller` (e.g. 127.0.0.1:19000): print the status it serves, Programmed included, instead of reading -f DIR")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *adminAddr != "" {
		if *f.dir != "" {
			return fmt.Errorf("%w: give -f DIR or --admin ADDR, not both", errUsage)
		}
		return liveStatus(ctx, *adminAddr, stdout)
	}
	result, err := f.loadAndTranslate()
	if err != nil {
		return err
	}
	// Nothing here has been served: Programmed says so rather than claim
	// that the listeners serve.
	unknown := status.Serving{State: status.ServedUnknown,
		Message: "Not known: `sekisho status -f` reads the files only; `sekisho status --admin ADDR` shows what a running sekisho serves"}
	served := map[k8stypes.NamespacedName]map[gwv1.SectionName]status.Serving{}
	for key, st := range result.Status.Gateways {
		m := map[gwv1.SectionName]status.Serving{}
		for _, l := range st.Listeners {
			m[l.Name] = unknown
		}
		served[key] = m
	}
	return result.Status.WithServing(served).WriteTable(stdout)
}

// liveStatus prints the status table a running control plane serves on
// its admin address.
func liveStatus(ctx context.Context, addr string, stdout io.Writer) error {
	url := addr
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	url = strings.TrimSuffix(url, "/") + "/status"
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("%w: --admin %q: %v", errUsage, addr, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reading the status from %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("reading the status from %s: %s", url, resp.Status)
	}
	if _, err := io.Copy(stdout, resp.Body); err != nil {
		return fmt.Errorf("reading the status from %s: %w", url, err)
	}
	return nil
}

func runTranslate(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("translate", stderr)
	f := addOfflineFlags(fs)
	output := fs.String("o", "yaml", "output format: yaml or json")
	showSecrets := fs.Bool("show-secrets", false, "print private keys instead of redacting them")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *output != "yaml" && *output != "json" {
		return fmt.Errorf("%w: -o must be yaml or json, not %q", errUsage, *output)
	}
	result, err := f.loadAndTranslate()
	if err != nil {
		return err
	}
	for _, p := range result.Problems {
		if !p.Warning {
			fmt.Fprintf(stderr, "%s\n", p)
		}
	}
	var docs []map[string]any
	for _, gw := range result.IR.Gateways {
		xr, err := xdstranslate.Translate(gw)
		if err != nil {
			return fmt.Errorf("building xDS for gateway %s: %w", gw.Name, err)
		}
		doc, err := xdsDocument(gw.Name, xr, *showSecrets)
		if err != nil {
			return err
		}
		docs = append(docs, doc)
	}
	for i, doc := range docs {
		if *output == "json" {
			b, err := json.MarshalIndent(doc, "", "  ")
			if err != nil {
				return fmt.Errorf("printing gateway %d: %w", i, err)
			}
			fmt.Fprintf(stdout, "%s\n", b)
			continue
		}
		b, err := sigsyaml.Marshal(doc)
		if err != nil {
			return fmt.Errorf("printing gateway %d: %w", i, err)
		}
		fmt.Fprintf(stdout, "---\n%s", b)
	}
	return nil
}

// xdsDocument renders one Gateway's xDS as plain JSON-shaped values, in the
// form Envoy's own config dump uses for each resource.
func xdsDocument(name string, xr *xdstranslate.Resources, showSecrets bool) (map[string]any, error) {
	doc := map[string]any{"gateway": name}
	add := func(key string, msgs []proto.Message) error {
		if len(msgs) == 0 {
			return nil
		}
		out := make([]any, 0, len(msgs))
		for _, m := range msgs {
			b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
			if err != nil {
				return fmt.Errorf("encoding %s of gateway %s: %w", key, name, err)
			}
			var v any
			if err := json.Unmarshal(b, &v); err != nil {
				return fmt.Errorf("decoding %s of gateway %s: %w", key, name, err)
			}
			out = append(out, v)
		}
		doc[key] = out
		return nil
	}
	secrets := make([]proto.Message, 0, len(xr.Secrets))
	for _, s := range xr.Secrets {
		if !showSecrets {
			s = gatewayproxy.RedactSecret(s)
		}
		secrets = append(secrets, s)
	}
	for _, part := range []struct {
		key  string
		msgs []proto.Message
	}{
		{"listeners", messages(xr.Listeners)},
		{"routes", messages(xr.Routes)},
		{"clusters", messages(xr.Clusters)},
		{"endpoints", messages(xr.Endpoints)},
		{"secrets", secrets},
	} {
		if err := add(part.key, part.msgs); err != nil {
			return nil, err
		}
	}
	return doc, nil
}

func messages[T proto.Message](in []T) []proto.Message {
	out := make([]proto.Message, len(in))
	for i, m := range in {
		out[i] = m
	}
	return out
}
