package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// nginxConf is nginx as the equivalent reverse proxy: two workers, a pool of
// up to 64 idle keep-alive connections to the backend, HTTP/1.1 upstream, no
// access log, and the request headers sekisho (and Envoy) send upstream: the
// client's Host, X-Forwarded-For with the client's address appended, and
// X-Forwarded-Proto, so that the backend gets the same request from both
// proxies. Every path it writes is in its own temp folder.
const nginxConf = `daemon off;
master_process on;
worker_processes 2;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;

events {
    worker_connections 4096;
}

http {
    access_log off;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;

    upstream backend {
        server 127.0.0.1:%[2]d;
        keepalive 64;
    }

    server {
        listen 127.0.0.1:%[3]d;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }
    }
}
`

type nginx struct {
	*child
	addr string
}

// startNginx writes the config under tmp, starts nginx in the foreground as
// a child and waits for a 200 through it.
func startNginx(bin, tmp string, backendPort int) (*nginx, error) {
	dir := filepath.Join(tmp, "nginx")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	// nginx's workers may run as another user when the harness is root;
	// let them reach their temp paths.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("opening %s to nginx's workers: %w", tmp, err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, nginxConf, dir, backendPort, port), 0o644); err != nil {
		return nil, fmt.Errorf("writing %s: %w", conf, err)
	}
	c, err := startChild("nginx", filepath.Join(dir, "nginx.log"), bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", conf)
	if err != nil {
		return nil, err
	}
	n := &nginx{child: c, addr: fmt.Sprintf("127.0.0.1:%d", port)}
	if err := waitHTTP(c, "http://"+n.addr+"/", 10*time.Second); err != nil {
		b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return n, c.failed(fmt.Errorf("%w\n--- error.log ---\n%s", err, b))
	}
	return n, nil
}
