package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"sort"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/sekisho/sekisho/gateway/provider/file"
	"github.com/sekisho/sekisho/gateway/resource"
	gwtranslate "github.com/sekisho/sekisho/gateway/translate"
	"github.com/sekisho/sekisho/internal/gatewayproxy"
	"github.com/sekisho/sekisho/ir"
	xdstranslate "github.com/sekisho/sekisho/xds/translate"
)

// offlineServices are where `sekisho run` serves its authorization and
// rate-limit services by default: the offline commands translate a folder
// as `sekisho run` would.
var offlineServices = struct{ authz, rateLimit []ir.ServiceAddress }{
	authz:     []ir.ServiceAddress{{Address: "127.0.0.1", Port: 18081}},
	rateLimit: []ir.ServiceAddress{{Address: "127.0.0.1", Port: 18082}},
}

// loadAndTranslate reads dir and translates it as `sekisho run` would.
func loadAndTranslate(dir string) (*gwtranslate.Result, error) {
	if dir == "" {
		return nil, fmt.Errorf("%w: -f DIR is required", errUsage)
	}
	res, problems, err := file.Load(dir)
	if err != nil {
		return nil, err
	}
	result := gwtranslate.Translate(res, gwtranslate.Options{
		DefaultAddresses: []string{"127.0.0.1"},
		AuthzService:     offlineServices.authz,
		RateLimitService: offlineServices.rateLimit,
	})
	result.Problems = append(problems, result.Problems...)
	return result, nil
}

func dirFlag(fs *flag.FlagSet) *string {
	return fs.String("f", "", "folder of Gateway API, Service, EndpointSlice and Secret YAML (read recursively)")
}

func runValidate(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("validate", stderr)
	dir := dirFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	result, err := loadAndTranslate(*dir)
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

func runStatus(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("status", stderr)
	dir := dirFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	result, err := loadAndTranslate(*dir)
	if err != nil {
		return err
	}
	result.Status.WriteTable(stdout)
	return nil
}

func runTranslate(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("translate", stderr)
	dir := dirFlag(fs)
	output := fs.String("o", "yaml", "output format: yaml or json")
	showSecrets := fs.Bool("show-secrets", false, "print private keys instead of redacting them")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *output != "yaml" && *output != "json" {
		return fmt.Errorf("%w: -o must be yaml or json, not %q", errUsage, *output)
	}
	result, err := loadAndTranslate(*dir)
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
