package vaulttest

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// kv1DefaultLease is the lease_duration Vault reports for K/V v1 reads:
// the default TTL of 32 days (a hint only; K/V values never expire).
const kv1DefaultLease = 32 * 24 * 60 * 60

// kv2Entry is a K/V v2 secret: its metadata and versions.
type kv2Entry struct {
	created, updated time.Time
	current          int
	versions         map[int]*kv2Version
}

type kv2Version struct {
	data      map[string]any
	created   time.Time
	deleted   time.Time // zero: not deleted
	destroyed bool
}

// listReply answers a LIST: the names directly below folder, sub-folders
// with a trailing '/', sorted; 404 {"errors":[]} if there are none.
func listReply(paths []string, folder string) reply {
	prefix := ""
	if folder != "" {
		prefix = folder + "/"
	}
	seen := map[string]bool{}
	for _, p := range paths {
		rest, ok := strings.CutPrefix(p, prefix)
		if !ok || rest == "" {
			continue
		}
		if seg, _, sub := strings.Cut(rest, "/"); sub {
			seen[seg+"/"] = true
		} else {
			seen[seg] = true
		}
	}
	if len(seen) == 0 {
		return notFound
	}
	return dataReply(map[string]any{"keys": slices.Sorted(maps.Keys(seen))})
}

// cloneData deep-copies a JSON object through JSON, so that stored values
// never alias request or response values.
func cloneData(data map[string]any) map[string]any {
	b, err := json.Marshal(data)
	if err != nil {
		panic(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}

func (s *Server) kv1(rq *request, m *mount, path string) reply {
	switch rq.op {
	case opRead:
		s.counts[CountRead]++
		data, ok := m.kv1[path]
		if !ok || path == "" {
			return notFound
		}
		return reply{http.StatusOK, &envelope{RequestID: uuid(), LeaseDuration: kv1DefaultLease, Data: cloneData(data), MountType: "kv"}}
	case opList:
		s.counts[CountList]++
		return listReply(slices.Collect(maps.Keys(m.kv1)), path)
	case opUpdate:
		s.counts[CountWrite]++
		if path == "" {
			return errorReply(http.StatusMethodNotAllowed, msgUnsupported)
		}
		if len(rq.body) == 0 {
			return errorReply(http.StatusBadRequest, "missing data fields")
		}
		m.kv1[path] = cloneData(rq.body)
		return noContent
	case opDelete:
		s.counts[CountDelete]++
		delete(m.kv1, path) // Vault answers 204 whether or not the path existed
		return noContent
	}
	return errorReply(http.StatusMethodNotAllowed, msgUnsupported)
}

// versionMetadata is the metadata of one version as Vault reports it with
// a read or write.
func versionMetadata(v *kv2Version, version int) map[string]any {
	deletion := ""
	if !v.deleted.IsZero() {
		deletion = v.deleted.UTC().Format(time.RFC3339Nano)
	}
	return map[string]any{
		"created_time":    v.created.UTC().Format(time.RFC3339Nano),
		"custom_metadata": nil,
		"deletion_time":   deletion,
		"destroyed":       v.destroyed,
		"version":         version,
	}
}

// versionList parses the "versions" of a delete, undelete or destroy.
func versionList(body map[string]any) ([]int, bool) {
	raw, ok := body["versions"].([]any)
	if !ok || len(raw) == 0 {
		return nil, false
	}
	var out []int
	for _, v := range raw {
		switch v := v.(type) {
		case float64:
			out = append(out, int(v))
		case string:
			n, err := strconv.Atoi(v)
			if err != nil {
				return nil, false
			}
			out = append(out, n)
		default:
			return nil, false
		}
	}
	return out, true
}

func (s *Server) kv2(rq *request, m *mount, rel string) reply {
	sub, path, _ := strings.Cut(rel, "/")
	path = cleanPath(path)
	switch sub {
	case "data":
		return s.kv2Data(rq, m, path)
	case "metadata":
		return s.kv2Metadata(rq, m, path)
	case "delete", "undelete", "destroy":
		if rq.op != opUpdate {
			return errorReply(http.StatusMethodNotAllowed, msgUnsupported)
		}
		s.counts[CountDelete]++
		versions, ok := versionList(rq.body)
		if !ok {
			return errorReply(http.StatusBadRequest, "no version number provided")
		}
		e := m.kv2[path]
		if e == nil {
			return noContent
		}
		now := time.Now()
		for _, n := range versions {
			v := e.versions[n]
			if v == nil {
				continue
			}
			switch sub {
			case "delete":
				if v.deleted.IsZero() {
					v.deleted = now
				}
			case "undelete":
				if !v.destroyed {
					v.deleted = time.Time{}
				}
			case "destroy":
				v.destroyed, v.data = true, nil
			}
		}
		e.updated = now
		return noContent
	}
	return errorReply(http.StatusNotFound, "no handler for route. route entry not found.")
}

func (s *Server) kv2Data(rq *request, m *mount, path string) reply {
	if path == "" {
		return errorReply(http.StatusMethodNotAllowed, msgUnsupported)
	}
	e := m.kv2[path]
	switch rq.op {
	case opRead:
		s.counts[CountRead]++
		if e == nil {
			return notFound
		}
		n := e.current
		if q := rq.r.URL.Query().Get("version"); q != "" {
			var err error
			if n, err = strconv.Atoi(q); err != nil || n < 0 {
				return errorReply(http.StatusBadRequest, "invalid version")
			}
			if n == 0 {
				n = e.current
			}
		}
		v := e.versions[n]
		if v == nil {
			return notFound
		}
		md := versionMetadata(v, n)
		if !v.deleted.IsZero() || v.destroyed {
			// Vault returns the metadata of a deleted or destroyed
			// version in the body of a 404.
			return reply{http.StatusNotFound, &envelope{RequestID: uuid(), Data: map[string]any{"data": nil, "metadata": md}, MountType: "kv"}}
		}
		return reply{http.StatusOK, &envelope{RequestID: uuid(), Data: map[string]any{"data": cloneData(v.data), "metadata": md}, MountType: "kv"}}
	case opUpdate:
		s.counts[CountWrite]++
		data, ok := rq.body["data"].(map[string]any)
		if !ok {
			return errorReply(http.StatusBadRequest, "no data provided")
		}
		if opts, ok := rq.body["options"].(map[string]any); ok {
			if raw, ok := opts["cas"]; ok {
				cas, ok := raw.(float64)
				if !ok {
					return errorReply(http.StatusBadRequest, "invalid cas parameter")
				}
				current := 0
				if e != nil {
					current = e.current
				}
				if int(cas) != current {
					return errorReply(http.StatusBadRequest, msgCASMismatch)
				}
			}
		}
		now := time.Now()
		if e == nil {
			e = &kv2Entry{created: now, versions: map[int]*kv2Version{}}
			m.kv2[path] = e
		}
		e.current++
		e.updated = now
		v := &kv2Version{data: cloneData(data), created: now}
		e.versions[e.current] = v
		return dataReply(versionMetadata(v, e.current))
	case opDelete:
		s.counts[CountDelete]++
		if e != nil {
			if v := e.versions[e.current]; v != nil && v.deleted.IsZero() {
				v.deleted = time.Now()
			}
		}
		return noContent
	}
	return errorReply(http.StatusMethodNotAllowed, msgUnsupported)
}

func (s *Server) kv2Metadata(rq *request, m *mount, path string) reply {
	switch rq.op {
	case opList:
		s.counts[CountList]++
		return listReply(slices.Collect(maps.Keys(m.kv2)), path)
	case opRead:
		s.counts[CountRead]++
		e := m.kv2[path]
		if e == nil || path == "" {
			return notFound
		}
		versions := map[string]any{}
		oldest := e.current
		for n, v := range e.versions {
			oldest = min(oldest, n)
			md := versionMetadata(v, n)
			delete(md, "version")
			delete(md, "custom_metadata")
			versions[strconv.Itoa(n)] = md
		}
		return dataReply(map[string]any{
			"cas_required":         false,
			"created_time":         e.created.UTC().Format(time.RFC3339Nano),
			"current_version":      e.current,
			"custom_metadata":      nil,
			"delete_version_after": "0s",
			"max_versions":         0,
			"oldest_version":       oldest,
			"updated_time":         e.updated.UTC().Format(time.RFC3339Nano),
			"versions":             versions,
		})
	case opDelete:
		s.counts[CountDelete]++
		delete(m.kv2, path) // 204 whether or not it existed
		return noContent
	case opUpdate:
		if path == "" {
			return errorReply(http.StatusMethodNotAllowed, msgUnsupported)
		}
		// Metadata settings (max_versions, cas_required, ...) are
		// accepted and ignored; creating metadata alone makes no
		// version.
		s.counts[CountWrite]++
		if m.kv2[path] == nil {
			now := time.Now()
			m.kv2[path] = &kv2Entry{created: now, updated: now, versions: map[int]*kv2Version{}}
		}
		return noContent
	}
	return errorReply(http.StatusMethodNotAllowed, msgUnsupported)
}

// WriteKV writes data to path of the K/V mount at mountPath in namespace,
// as "vault kv put" would (for v2: a new version, without
// check-and-set). It panics if there is no such K/V mount.
func (s *Server) WriteKV(namespace, mountPath, path string, data map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.kvMount(namespace, mountPath)
	path = cleanPath(path)
	if m.kind == kindKV1 {
		m.kv1[path] = cloneData(data)
		return
	}
	now := time.Now()
	e := m.kv2[path]
	if e == nil {
		e = &kv2Entry{created: now, versions: map[int]*kv2Version{}}
		m.kv2[path] = e
	}
	e.current++
	e.updated = now
	e.versions[e.current] = &kv2Version{data: cloneData(data), created: now}
}

// ReadKV returns the data at path of the K/V mount (for v2: of the
// current version), and whether it exists and is not deleted.
func (s *Server) ReadKV(namespace, mountPath, path string) (map[string]any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.kvMount(namespace, mountPath)
	path = cleanPath(path)
	if m.kind == kindKV1 {
		data, ok := m.kv1[path]
		if !ok {
			return nil, false
		}
		return cloneData(data), true
	}
	e := m.kv2[path]
	if e == nil {
		return nil, false
	}
	v := e.versions[e.current]
	if v == nil || !v.deleted.IsZero() || v.destroyed {
		return nil, false
	}
	return cloneData(v.data), true
}

// KVPaths returns the sorted paths of all secrets of a K/V mount (for v2:
// every path with metadata).
func (s *Server) KVPaths(namespace, mountPath string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.kvMount(namespace, mountPath)
	if m.kind == kindKV1 {
		return slices.Sorted(maps.Keys(m.kv1))
	}
	return slices.Sorted(maps.Keys(m.kv2))
}

func (s *Server) kvMount(namespace, mountPath string) *mount {
	n := s.namespaces[cleanPath(namespace)]
	if n == nil {
		panic("vaulttest: no namespace " + namespace)
	}
	m := n.mounts[cleanPath(mountPath)]
	if m == nil || (m.kind != kindKV1 && m.kind != kindKV2) {
		panic("vaulttest: no K/V mount " + mountPath)
	}
	return m
}
