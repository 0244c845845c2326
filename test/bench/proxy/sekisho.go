package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// sekishoConfig is a folder for `sekisho run -f`: one Gateway with an HTTP
// listener on gatewayPort and routes HTTPRoutes to Services whose
// EndpointSlices point at the backend.
//
// With routes == 1 it is the quickstart's shape: one route, path prefix /,
// one Service. With more, route i matches the path prefix /r/<i> and goes to
// one of up to 100 Services (all pointing at the backend); a last route for
// / catches the rest.
func writeSekishoConfig(dir string, gatewayPort, backendPort, routes int) error {
	if err := writeFile(filepath.Join(dir, "gateway.yaml"), func(w *bufio.Writer) {
		fmt.Fprintf(w, `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: sekisho
spec:
  controllerName: sekisho.dev/gateway-controller
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: bench
  namespace: default
spec:
  gatewayClassName: sekisho
  listeners:
  - name: http
    protocol: HTTP
    port: %d
    allowedRoutes:
      namespaces:
        from: Same
`, gatewayPort)
	}); err != nil {
		return err
	}
	services := min(routes, 100)
	if err := writeFile(filepath.Join(dir, "backends.yaml"), func(w *bufio.Writer) {
		for s := 0; s < services; s++ {
			fmt.Fprintf(w, `---
apiVersion: v1
kind: Service
metadata:
  name: backend-%03d
  namespace: default
spec:
  ports:
  - name: http
    port: 80
    targetPort: %[2]d
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: backend-%03[1]d
  namespace: default
  labels:
    kubernetes.io/service-name: backend-%03[1]d
addressType: IPv4
ports:
- name: http
  port: %[2]d
endpoints:
- addresses: ["127.0.0.1"]
  conditions:
    ready: true
`, s, backendPort)
		}
	}); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, "routes.yaml"), func(w *bufio.Writer) {
		if routes > 1 {
			for i := 0; i < routes-1; i++ {
				writeRoute(w, fmt.Sprintf("route-%05d", i), fmt.Sprintf("/r/%05d", i), i%services)
			}
		}
		writeRoute(w, "root", "/", 0)
	})
}

// writeRoute writes an HTTPRoute of the Gateway bench that sends the path
// prefix to Service backend-<svc>.
func writeRoute(w *bufio.Writer, name, prefix string, svc int) {
	fmt.Fprintf(w, `---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: %s
  namespace: default
spec:
  parentRefs:
  - name: bench
    sectionName: http
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: %s
    backendRefs:
    - name: backend-%03d
      port: 80
`, name, prefix, svc)
}

func writeFile(path string, body func(*bufio.Writer)) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	w := bufio.NewWriter(f)
	body(w)
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// sekisho is a running `sekisho run` and the address its Gateway serves on.
type sekisho struct {
	*child
	gateway string // 127.0.0.1:PORT
	admin   string
	ready   time.Duration // from start to /readyz 200 and a 200 through the proxy
}

// startSekisho writes a config of the given size into a folder under tmp,
// starts `sekisho run` on it and waits until /readyz says ready and a
// request through the proxy (to probePath) gets a 200. extra, when not nil,
// adds files to the config folder (the policy routes and their policies).
//
// The embedded authorization and rate-limit services listen on free ports
// rather than their defaults, which another sekisho on the machine may hold.
func startSekisho(bin, tmp, name string, backendPort, routes int, timeout time.Duration, probePath string, extra func(dir string) error) (*sekisho, error) {
	dir := filepath.Join(tmp, name)
	if err := os.MkdirAll(filepath.Join(dir, "config"), 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	gwPort, err := freePort()
	if err != nil {
		return nil, err
	}
	if err := writeSekishoConfig(filepath.Join(dir, "config"), gwPort, backendPort, routes); err != nil {
		return nil, err
	}
	if extra != nil {
		if err := extra(filepath.Join(dir, "config")); err != nil {
			return nil, err
		}
	}
	var addrs [4]string // xDS, admin, authorization, rate limit
	for i := range addrs {
		if addrs[i], err = freeAddr(); err != nil {
			return nil, err
		}
	}
	xds, adm := addrs[0], addrs[1]
	start := time.Now()
	c, err := startChild(name, filepath.Join(dir, "sekisho.log"), bin, "run",
		"-f", filepath.Join(dir, "config"), "--xds-address", xds, "--admin-address", adm,
		"--authz-listen", addrs[2], "--ratelimit-listen", addrs[3])
	if err != nil {
		return nil, err
	}
	s := &sekisho{child: c, gateway: fmt.Sprintf("127.0.0.1:%d", gwPort), admin: adm}
	if err := waitHTTP(c, "http://"+adm+"/readyz", timeout); err != nil {
		return s, c.failed(err)
	}
	if err := waitHTTP(c, "http://"+s.gateway+probePath, time.Until(start.Add(timeout))+time.Second); err != nil {
		return s, c.failed(fmt.Errorf("ready, but not serving through the proxy: %w", err))
	}
	s.ready = time.Since(start)
	return s, nil
}
