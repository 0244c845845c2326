package redistest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Cluster is a Redis Cluster of masters only, each a redis-server child
// process on 127.0.0.1, the 16384 hash slots split evenly between them.
type Cluster struct {
	Nodes []*Redis
}

// StartCluster runs a cluster of n masters for the test and stops it at
// cleanup. It fails the test when it does not come up.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c, err := LaunchCluster(t.TempDir(), n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

// LaunchCluster runs a cluster of n masters, each in a sub-folder of dir
// (where it keeps its nodes.conf), and waits until every node reports
// cluster_state:ok. The caller must Stop it.
func LaunchCluster(dir string, n int) (*Cluster, error) {
	if n < 1 {
		return nil, fmt.Errorf("a cluster of %d nodes", n)
	}
	c := &Cluster{}
	fail := func(err error) (*Cluster, error) {
		c.Stop()
		return nil, err
	}
	for i := range n {
		d := filepath.Join(dir, "node"+strconv.Itoa(i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fail(err)
		}
		r, err := launch(d, []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000"})
		if err != nil {
			return fail(err)
		}
		c.Nodes = append(c.Nodes, r)
	}
	const slots = 16384
	timeout := 2 * time.Second
	for i, r := range c.Nodes {
		from, to := i*slots/n, (i+1)*slots/n-1
		if _, err := Do(r.Addr(), timeout, "CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(from), strconv.Itoa(to)); err != nil {
			return fail(fmt.Errorf("node %s: CLUSTER ADDSLOTSRANGE: %w", r.Addr(), err))
		}
		if i > 0 {
			if _, err := Do(r.Addr(), timeout, "CLUSTER", "MEET", "127.0.0.1", strconv.Itoa(c.Nodes[0].Port())); err != nil {
				return fail(fmt.Errorf("node %s: CLUSTER MEET: %w", r.Addr(), err))
			}
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var notOK []string
		for _, r := range c.Nodes {
			info, err := Do(r.Addr(), timeout, "CLUSTER", "INFO")
			if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(n)+"\r") {
				notOK = append(notOK, r.Addr())
			}
		}
		if len(notOK) == 0 {
			return c, nil
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("redis cluster nodes %v not ready after 30s", notOK))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Addrs are the nodes' host:port.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, r := range c.Nodes {
		out[i] = r.Addr()
	}
	return out
}

// Stop stops every node.
func (c *Cluster) Stop() {
	for _, r := range c.Nodes {
		r.Stop()
	}
}
