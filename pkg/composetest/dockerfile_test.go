package composetest

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/pkg/service"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd, args string
}

// stage is one FROM and what follows it.
type stage struct {
	from  string
	instr []instruction
}

func parseDockerfile(t *testing.T) []stage {
	t.Helper()
	var stages []stage
	sc := bufio.NewScanner(strings.NewReader(readFile(t, "Dockerfile")))
	var cur strings.Builder
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		full := cur.String()
		cur.Reset()
		cmd, args, _ := strings.Cut(full, " ")
		in := instruction{strings.ToUpper(cmd), strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			stages = append(stages, stage{from: in.args})
			continue
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("Dockerfile: %s before the first FROM", in.cmd)
			}
			continue
		}
		stages[len(stages)-1].instr = append(stages[len(stages)-1].instr, in)
	}
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a builder and a final stage", len(stages))
	}
	return stages
}

// TestDockerfileBuildsEveryBinary: the builder compiles the four services
// and the CLI as static, trimmed binaries with the Go of go.mod.
func TestDockerfileBuildsEveryBinary(t *testing.T) {
	stages := parseDockerfile(t)
	build := stages[0]

	m := regexp.MustCompile(`golang:(\d+\.\d+)`).FindStringSubmatch(build.from)
	gomod := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(readFile(t, "go.mod"))
	if m == nil || gomod == nil || m[1] != gomod[1] {
		t.Errorf("builder %q does not match go.mod's go %v", build.from, gomod)
	}

	var goBuild []string
	cgoOff := false
	for _, in := range build.instr {
		if in.cmd == "ENV" && strings.Contains(in.args, "CGO_ENABLED=0") {
			cgoOff = true
		}
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			goBuild = append(goBuild, in.args)
			if strings.Contains(in.args, "CGO_ENABLED=0") {
				cgoOff = true
			}
		}
	}
	if len(goBuild) == 0 {
		t.Fatal("the first stage runs no go build")
	}
	if !cgoOff {
		t.Error("CGO_ENABLED=0 is not set: the binaries would not be static, and distroless/static has no libc")
	}
	pkgs := []string{"./cmd/sluice"}
	for _, s := range service.Stages {
		pkgs = append(pkgs, "./services/"+s)
	}
	all := strings.Join(goBuild, "\n")
	for _, pkg := range pkgs {
		if !regexp.MustCompile(regexp.QuoteMeta(pkg) + `(\s|$)`).MatchString(all) {
			t.Errorf("no go build names %s", pkg)
		}
		if _, err := os.Stat(filepath.Join(repoRoot(t), pkg, "main.go")); err != nil {
			t.Errorf("%s: %v", pkg, err)
		}
	}
	for _, run := range goBuild {
		for _, flag := range []string{"-trimpath", `-ldflags "-s -w"`} {
			if !strings.Contains(run, flag) {
				t.Errorf("go build without %s: %s", flag, run)
			}
		}
	}
}

// TestDockerfileFinalStage: the image runs as a non-root user, has the
// binaries on PATH and says which port it serves.
func TestDockerfileFinalStage(t *testing.T) {
	stages := parseDockerfile(t)
	final := stages[len(stages)-1]
	base := strings.Fields(final.from)[0]
	user := ""
	if strings.HasSuffix(base, ":nonroot") {
		user = "nonroot"
	}
	var exposes []string
	copied := false
	for _, in := range final.instr {
		switch in.cmd {
		case "USER":
			user = in.args
		case "EXPOSE":
			exposes = append(exposes, strings.Fields(in.args)...)
		case "COPY":
			if strings.Contains(in.args, "--from=") && strings.HasSuffix(in.args, "/usr/local/bin/") {
				copied = true
			}
		case "RUN":
			if base == "scratch" || strings.Contains(base, "distroless") {
				t.Errorf("RUN %s in a final stage without a shell", in.args)
			}
		}
	}
	if base != "scratch" && !strings.HasPrefix(base, "gcr.io/distroless/static") {
		t.Errorf("final stage FROM %s, want distroless/static or scratch", base)
	}
	name, _, _ := strings.Cut(user, ":")
	if name == "" || name == "root" || name == "0" {
		t.Errorf("final stage runs as %q, want a non-root user", user)
	}
	if !slices.Contains(exposes, "9090") {
		t.Errorf("EXPOSE %v, want 9090 (SLUICE_HTTP_ADDR)", exposes)
	}
	if !copied {
		t.Error("the final stage does not copy the binaries into /usr/local/bin, where compose's commands find them")
	}
}

// TestDockerIgnoreKeepsTheBuild: .dockerignore leaves out node_modules and
// .git, but nothing the go build needs: not go.mod, not a package the
// binaries import, not a file they embed.
func TestDockerIgnoreKeepsTheBuild(t *testing.T) {
	patterns := dockerignore(t)
	for _, must := range []string{".git", "node_modules", "pkg/x/node_modules"} {
		if !ignored(patterns, must) {
			t.Errorf(".dockerignore keeps %s in the build context", must)
		}
	}
	needed := []string{"go.mod", "go.sum"}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Log("no go command: checking go.mod and go.sum only")
	} else {
		root := repoRoot(t)
		args := []string{"list", "-deps", "-json=Dir,EmbedFiles,Module", "./cmd/sluice"}
		for _, s := range service.Stages {
			args = append(args, "./services/"+s)
		}
		cmd := exec.CommandContext(t.Context(), gobin, args...)
		cmd.Dir = root
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list: %v\n%s", err, stderr.String())
		}
		dec := json.NewDecoder(strings.NewReader(string(out)))
		for dec.More() {
			var p struct {
				Dir        string
				EmbedFiles []string
				Module     *struct{ Main bool }
			}
			if err := dec.Decode(&p); err != nil {
				t.Fatal(err)
			}
			if p.Module == nil || !p.Module.Main {
				continue // the standard library and modules are not in the context
			}
			rel, err := filepath.Rel(root, p.Dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range p.EmbedFiles {
				needed = append(needed, path.Join(filepath.ToSlash(rel), f))
			}
			needed = append(needed, path.Join(filepath.ToSlash(rel), "x.go"))
		}
		if len(needed) < 10 {
			t.Fatalf("go list found only %v", needed)
		}
	}
	for _, f := range needed {
		if ignored(patterns, f) {
			t.Errorf(".dockerignore leaves out %s, which the build needs", f)
		}
	}
}

type ignorePattern struct {
	pattern string
	negate  bool
}

func dockerignore(t *testing.T) []ignorePattern {
	t.Helper()
	var ps []ignorePattern
	for line := range strings.Lines(readFile(t, ".dockerignore")) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p := ignorePattern{pattern: line}
		if strings.HasPrefix(line, "!") {
			p = ignorePattern{pattern: line[1:], negate: true}
		}
		p.pattern = strings.TrimPrefix(path.Clean(p.pattern), "/")
		ps = append(ps, p)
	}
	return ps
}

// ignored reports whether Docker leaves rel (slash-separated, relative to
// the context) out of the build context: a pattern matches the path or one
// of its parent directories, "**/" matches any number of directories, and
// the last matching pattern wins. That is the subset of Docker's rules this
// repository's .dockerignore uses.
func ignored(ps []ignorePattern, rel string) bool {
	parts := strings.Split(rel, "/")
	out := false
	for _, p := range ps {
		for i := 1; i <= len(parts); i++ {
			if matchIgnore(p.pattern, parts[:i]) {
				out = !p.negate
				break
			}
		}
	}
	return out
}

func matchIgnore(pattern string, parts []string) bool {
	if rest, ok := strings.CutPrefix(pattern, "**/"); ok {
		for i := range parts {
			if matchIgnore(rest, parts[i:]) {
				return true
			}
		}
		return false
	}
	ok, _ := path.Match(pattern, strings.Join(parts, "/"))
	return ok
}
