package fsblob

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// livePrefix names a process's marker in a bucket's root:
// .sluice-tmp-live-<token>. The process holds a shared flock on it while
// any of its Stores on that bucket is open, so that a sweep in another
// process can tell its temporary files from a dead one's: processes that
// share a data directory without its lock (the local-backend services,
// the chaos driver) write beside whoever sweeps. It is under TempPrefix so
// that List never shows it and no key can name it; the sweeps never take
// it for a temporary file.
const livePrefix = TempPrefix + "live-"

// token is this process's: it names its temporary files and its markers.
var token = processToken()

// markers are this process's markers, by bucket root: one flock per
// bucket however many Stores are open on it.
var markers struct {
	sync.Mutex
	m map[string]*marker
}

type marker struct {
	f    *os.File
	refs int
}

// holdLive takes (or counts one more use of) this process's marker in root.
func holdLive(root string) error {
	markers.Lock()
	defer markers.Unlock()
	if m := markers.m[root]; m != nil {
		m.refs++
		return nil
	}
	f, err := lockMarker(filepath.Join(root, livePrefix+token))
	if err != nil {
		return err
	}
	if markers.m == nil {
		markers.m = map[string]*marker{}
	}
	markers.m[root] = &marker{f: f, refs: 1}
	return nil
}

// releaseLive lets go of one use of root's marker; the last removes it
// (before unlocking: a sweep that locks the orphan finds the path gone).
func releaseLive(root string) error {
	markers.Lock()
	defer markers.Unlock()
	m := markers.m[root]
	if m == nil {
		return nil
	}
	if m.refs--; m.refs > 0 {
		return nil
	}
	delete(markers.m, root)
	if m.f == nil {
		return nil
	}
	os.Remove(m.f.Name())
	return m.f.Close() // closing lets go of the flock
}

// tokenOf is the process token in a temporary file's name, "" for a file
// of a binary from before tokens (os.CreateTemp's digits only).
func tokenOf(name string) string {
	rest, ok := strings.CutPrefix(name, TempPrefix)
	if !ok {
		return ""
	}
	tok, _, ok := strings.Cut(rest, "-")
	if !ok || len(tok) != 8 || strings.Trim(tok, "0123456789abcdef") != "" {
		return ""
	}
	return tok
}

// markerState is what a sweep learns from a token's marker.
type markerState int

const (
	markerNone markerState = iota // no marker: a binary from before markers, or one that let go
	markerLive                    // another process holds it
	markerDead                    // nobody holds it: the sweep holds it now
)
