package server

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"slices"
	"strings"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
)

// versionLen is the number of hex characters kept from a SHA-256 digest for
// resource and type versions (64 bits).
const versionLen = 16

// typeURLs lists every resource type a sekisho snapshot carries, in the
// cache's response-type order. A type a gateway does not use is present and
// empty, so wildcard subscribers (LDS, CDS) still get an (empty) answer.
var typeURLs = func() []resourcev3.Type {
	out := make([]resourcev3.Type, 0, int(types.UnknownType))
	for i := types.ResponseType(0); i < types.UnknownType; i++ {
		u, err := cachev3.GetResponseTypeURL(i)
		if err != nil {
			continue
		}
		out = append(out, u)
	}
	return out
}()

// typeSet is the content of one resource type of one gateway, hashed.
type typeSet struct {
	version   string            // content hash of the whole type
	items     []types.Resource  // sorted by name
	resHashes map[string]string // resource name -> content hash (delta versions)
}

// validator is implemented by every generated Envoy proto message.
type validator interface {
	ValidateAll() error
}

// hashType computes the content hash of one type's resources: each resource
// is marshalled deterministically and hashed, and the type version hashes
// the sorted (name, resource hash) pairs. Equal content always gives equal
// versions, whatever the order of the input slice.
func hashType(typeURL resourcev3.Type, in []types.Resource, h hash.Hash, buf []byte) (typeSet, []byte, error) {
	ts := typeSet{
		items:     make([]types.Resource, 0, len(in)),
		resHashes: make(map[string]string, len(in)),
	}
	for i, r := range in {
		if r == nil {
			return ts, buf, fmt.Errorf("hashing %s resource #%d: resource is nil", typeURL, i)
		}
		ts.items = append(ts.items, r)
	}
	slices.SortFunc(ts.items, func(a, b types.Resource) int {
		return strings.Compare(cachev3.GetResourceName(a), cachev3.GetResourceName(b))
	})

	mo := proto.MarshalOptions{Deterministic: true}
	var sum [sha256.Size]byte
	th := sha256.New()
	prev := ""
	for i, r := range ts.items {
		name := cachev3.GetResourceName(r)
		if name == "" {
			return ts, buf, fmt.Errorf("hashing %s resource #%d: resource has no name", typeURL, i)
		}
		if i > 0 && name == prev {
			return ts, buf, fmt.Errorf("hashing %s resource %q: duplicate name", typeURL, name)
		}
		prev = name
		var err error
		buf, err = mo.MarshalAppend(buf[:0], r)
		if err != nil {
			return ts, buf, fmt.Errorf("marshalling %s resource %q: %w", typeURL, name, err)
		}
		h.Reset()
		h.Write(buf)
		h.Sum(sum[:0])
		rv := hex.EncodeToString(sum[:versionLen/2])
		ts.resHashes[name] = rv
		// Name and hash are separated by bytes that cannot occur in either.
		th.Write([]byte(name))
		th.Write([]byte{0})
		th.Write([]byte(rv))
		th.Write([]byte{'\n'})
	}
	th.Sum(sum[:0])
	ts.version = hex.EncodeToString(sum[:versionLen/2])
	return ts, buf, nil
}

// hashGateway hashes every known type of one gateway's desired resources.
// Resources under an unknown type URL are an error.
func hashGateway(byType map[resourcev3.Type][]types.Resource) (map[resourcev3.Type]typeSet, error) {
	for typeURL := range byType {
		if cachev3.GetResponseType(typeURL) == types.UnknownType {
			return nil, fmt.Errorf("unknown resource type %q", typeURL)
		}
	}
	out := make(map[resourcev3.Type]typeSet, len(typeURLs))
	h := sha256.New()
	var buf []byte
	for _, typeURL := range typeURLs {
		var (
			ts  typeSet
			err error
		)
		ts, buf, err = hashType(typeURL, byType[typeURL], h, buf)
		if err != nil {
			return nil, err
		}
		out[typeURL] = ts
	}
	return out, nil
}

// validateTypes runs ValidateAll on every resource of the types whose
// version differs from prev (resources of an unchanged type were validated
// when they were first accepted).
func validateTypes(sets map[resourcev3.Type]typeSet, prev map[resourcev3.Type]string) error {
	for _, typeURL := range typeURLs {
		ts := sets[typeURL]
		if prev != nil && prev[typeURL] == ts.version {
			continue
		}
		for _, r := range ts.items {
			v, ok := r.(validator)
			if !ok {
				continue
			}
			if err := v.ValidateAll(); err != nil {
				return fmt.Errorf("validating %s resource %q: %w", typeURL, cachev3.GetResourceName(r), err)
			}
		}
	}
	return nil
}

// buildSnapshot assembles a snapshot with one content-hash version per type
// and a precomputed per-resource version map (used by delta xDS), then checks
// that it is consistent (every EDS and RDS resource is referenced, and every
// reference resolves).
func buildSnapshot(sets map[resourcev3.Type]typeSet) (*cachev3.Snapshot, error) {
	snap := &cachev3.Snapshot{VersionMap: make(map[string]map[string]string, len(sets))}
	for _, typeURL := range typeURLs {
		ts := sets[typeURL]
		idx := cachev3.GetResponseType(typeURL)
		snap.Resources[idx] = cachev3.NewResources(ts.version, ts.items)
		snap.VersionMap[typeURL] = ts.resHashes
	}
	if err := snap.Consistent(); err != nil {
		return nil, fmt.Errorf("checking snapshot consistency: %w", err)
	}
	return snap, nil
}

// versionsOf extracts the per-type versions of hashed sets.
func versionsOf(sets map[resourcev3.Type]typeSet) map[resourcev3.Type]string {
	out := make(map[resourcev3.Type]string, len(sets))
	for t, ts := range sets {
		out[t] = ts.version
	}
	return out
}

// sameVersions reports whether two per-type version maps are equal.
func sameVersions(a, b map[resourcev3.Type]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
