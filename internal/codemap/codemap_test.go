// Package codemap checks the "Map of the code" in docs/design.md against
// the packages as `go list` sees them: every package has a row, and each
// row's imports are exactly the package's imports (tests aside).
package codemap

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/heraldgw/herald"

// pkg is what the test needs of `go list -json`.
type pkg struct {
	ImportPath string
	GoFiles    []string
	Imports    []string
	Deps       []string
}

// row is one package of the map.
type row struct {
	herald, outside []string
}

func TestMapMatchesGoList(t *testing.T) {
	pkgs := goList(t, "./...")
	rows := readMap(t)
	for _, p := range pkgs {
		name := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		if len(p.GoFiles) == 0 {
			continue // tests only
		}
		r, ok := rows[name]
		if !ok {
			t.Errorf("package %s is not in the map of docs/design.md", name)
			continue
		}
		delete(rows, name)
		herald, outside := imports(p)
		if !slices.Equal(herald, r.herald) {
			t.Errorf("%s imports Herald packages %v; the map says %v", name, herald, r.herald)
		}
		if !slices.Equal(outside, r.outside) {
			t.Errorf("%s imports outside modules %v; the map says %v", name, outside, r.outside)
		}
	}
	for name := range rows {
		t.Errorf("the map of docs/design.md names %s, which is not a package", name)
	}
}

// TestProcessorFreeOfBroker: the processor publishes through its own
// interface, so neither the broker nor mochi is among its dependencies.
func TestProcessorFreeOfBroker(t *testing.T) {
	for _, dep := range goList(t, "./processor")[0].Deps {
		if strings.Contains(dep, "mochi-mqtt") || dep == module+"/broker" || dep == module+"/bridge" {
			t.Errorf("processor depends on %s", dep)
		}
	}
}

// imports splits a package's imports into Herald packages and outside
// modules (see outsideKey), each sorted and without repeats.
func imports(p pkg) (herald, outside []string) {
	for _, imp := range p.Imports {
		switch {
		case strings.HasPrefix(imp, module+"/"):
			herald = append(herald, strings.TrimPrefix(imp, module+"/"))
		case strings.Contains(strings.SplitN(imp, "/", 2)[0], "."):
			outside = append(outside, outsideKey(imp))
		}
	}
	slices.Sort(herald)
	slices.Sort(outside)
	return slices.Compact(herald), slices.Compact(outside)
}

// outsideKey names an outside import by its first three path elements,
// without "github.com/": github.com/aws/aws-sdk-go-v2/service/s3 is
// aws/aws-sdk-go-v2, golang.org/x/time/rate is golang.org/x/time.
func outsideKey(imp string) string {
	parts := strings.Split(imp, "/")
	key := strings.Join(parts[:min(3, len(parts))], "/")
	return strings.TrimPrefix(key, "github.com/")
}

func goList(t *testing.T, pattern string) []pkg {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go tool not on PATH: %v", err)
	}
	cmd := exec.Command(goTool, "list", "-json", pattern)
	cmd.Dir = root(t)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", pattern, err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			return pkgs
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
}

// root is the module's directory.
func root(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// readMap parses the table under "## Map of the code" in docs/design.md:
// | `package` | owns | `herald`, `imports` | `outside`, `imports` |
func readMap(t *testing.T) map[string]row {
	t.Helper()
	f, err := os.Open(filepath.Join(root(t), "docs", "design.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows := map[string]row{}
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			in = line == "## Map of the code"
			continue
		}
		if !in || !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		if len(cells) != 4 {
			t.Fatalf("docs/design.md map row %q: want 4 cells", line)
		}
		rows[strings.Trim(strings.TrimSpace(cells[0]), "`")] = row{herald: names(cells[2]), outside: names(cells[3])}
	}
	if len(rows) == 0 {
		t.Fatal(`docs/design.md has no "## Map of the code" table`)
	}
	return rows
}

// names reads "`a`, `b`" (or "—") as a sorted list.
func names(cell string) []string {
	var out []string
	for _, n := range strings.Split(cell, ",") {
		if n = strings.Trim(strings.TrimSpace(n), "`"); n != "" && n != "—" {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}
