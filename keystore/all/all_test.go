package all_test

import (
	"bytes"
	"go/ast"
	"go/build/constraint"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/openkes/openkes/keystore"
	_ "github.com/openkes/openkes/keystore/all"
	"github.com/openkes/openkes/keystore/seal"
)

const module = "github.com/openkes/openkes"

// backendFile is what a file of keystore/all says about its backend.
type backendFile struct {
	file    string   // e.g. "etcd.go"
	name    string   // the <name> of its build tag kes_omit_<name>
	pkg     string   // the backend's package, module/keystore/<name>
	kinds   []string // the kinds it passes to keystore.Register
	kekKind []string // the kinds it passes to seal.RegisterKEK
}

// backendFiles reads the files of this package: every file but all.go
// has the build constraint !kes_omit_<name>, imports
// keystore/<name> and registers at least one kind.
func backendFiles(t *testing.T) []backendFile {
	t.Helper()
	paths, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var out []backendFile
	fset := token.NewFileSet()
	for _, path := range paths {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		var tag string
		for _, c := range f.Comments {
			for _, line := range c.List {
				if !constraint.IsGoBuild(line.Text) {
					continue
				}
				expr, err := constraint.Parse(line.Text)
				if err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				var tagExpr *constraint.TagExpr
				if not, ok := expr.(*constraint.NotExpr); ok {
					tagExpr, _ = not.X.(*constraint.TagExpr)
				}
				if tagExpr == nil || !strings.HasPrefix(tagExpr.Tag, "kes_omit_") {
					t.Fatalf("%s: build constraint %q, want //go:build !kes_omit_<name>", path, line.Text)
				}
				tag = tagExpr.Tag
			}
		}
		if tag == "" {
			if path != "all.go" {
				t.Fatalf("%s has no //go:build !kes_omit_<name> line: every backend needs one", path)
			}
			if len(f.Imports) != 0 {
				t.Fatalf("all.go imports packages; backends are imported from their own files")
			}
			continue
		}
		b := backendFile{file: path, name: strings.TrimPrefix(tag, "kes_omit_")}
		b.pkg = module + "/keystore/" + b.name
		if want := b.name + ".go"; path != want {
			t.Errorf("%s has the tag %s, want it in %s", path, tag, want)
		}
		imported := false
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			imported = imported || p == b.pkg
		}
		if !imported {
			t.Errorf("%s does not import %s", path, b.pkg)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			lit, ok2 := call.Args[0].(*ast.BasicLit)
			if !ok || !ok2 {
				return true
			}
			kind, _ := strconv.Unquote(lit.Value)
			switch x, _ := sel.X.(*ast.Ident); {
			case x != nil && x.Name == "keystore" && sel.Sel.Name == "Register":
				b.kinds = append(b.kinds, kind)
			case x != nil && x.Name == "seal" && sel.Sel.Name == "RegisterKEK":
				b.kekKind = append(b.kekKind, kind)
			}
			return true
		})
		if len(b.kinds) == 0 {
			t.Errorf("%s registers no kind with keystore.Register", path)
		}
		out = append(out, b)
	}
	if len(out) == 0 {
		t.Fatal("no backend files found")
	}
	return out
}

// TestRegistered checks that importing this package registers the kinds
// its files name.
func TestRegistered(t *testing.T) {
	for _, b := range backendFiles(t) {
		for _, kind := range b.kinds {
			newConfig, ok := keystore.Lookup(kind)
			if !ok || newConfig() == nil {
				t.Errorf("%s: keystore.Lookup(%q) = %v, want the registered config", b.file, kind, ok)
			}
		}
		for _, kind := range b.kekKind {
			if !slices.Contains(seal.KEKKinds(), kind) {
				t.Errorf("%s: seal.KEKKinds() = %q, want %q", b.file, seal.KEKKinds(), kind)
			}
		}
	}
}

// TestRegisterOnlyHere checks that no backend package registers itself:
// a backend is registered from this package only, so that its build tag
// decides whether it is in the binary.
func TestRegisterOnlyHere(t *testing.T) {
	dirs, err := filepath.Glob("../*")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, dir := range dirs {
		if filepath.Base(dir) == "all" {
			continue
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, path := range files {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(f, func(n ast.Node) bool {
				sel, ok := n.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				if x, _ := sel.X.(*ast.Ident); x != nil && (x.Name == "keystore" && sel.Sel.Name == "Register" || x.Name == "seal" && sel.Sel.Name == "RegisterKEK") {
					t.Errorf("%s: calls %s.%s; register from keystore/all/<name>.go instead", fset.Position(sel.Pos()), x.Name, sel.Sel.Name)
				}
				return true
			})
		}
	}
}

// goPackage is one line of goList.
type goPackage struct {
	path, module string // module is "" for the standard library
}

// goList runs go list -deps in the module's root and returns the
// packages.
func goList(t *testing.T, tags []string, pkgs ...string) []goPackage {
	t.Helper()
	args := []string{"list", "-deps", "-f", "{{.ImportPath}} {{with .Module}}{{.Path}}{{end}}"}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	cmd := exec.Command("go", append(args, pkgs...)...)
	cmd.Dir = filepath.Join("..", "..")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, &stderr)
	}
	var list []goPackage
	for line := range strings.Lines(string(out)) {
		path, mod, _ := strings.Cut(strings.TrimSpace(line), " ")
		list = append(list, goPackage{path, mod})
	}
	return list
}

// thirdParty returns the modules other than this one that pkgs come from.
func thirdParty(pkgs []goPackage) map[string]bool {
	mods := map[string]bool{}
	for _, p := range pkgs {
		if p.module != "" && p.module != module {
			mods[p.module] = true
		}
	}
	return mods
}

// TestOmitTags builds the package list of cmd/kes with each backend's
// kes_omit_<name> tag and checks that neither the backend's packages nor
// the third-party modules that only it needs are left. The modules only
// a backend needs are computed: those its packages depend on, less those
// of cmd/kes without any backend and those of the other backends.
func TestOmitTags(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("the go command is needed to list dependencies: %v", err)
	}
	backends := backendFiles(t)
	var allTags []string
	for _, b := range backends {
		allTags = append(allTags, "kes_omit_"+b.name)
	}
	core := thirdParty(goList(t, allTags, "./cmd/kes"))
	deps := map[string]map[string]bool{}
	for _, b := range backends {
		deps[b.name] = thirdParty(goList(t, nil, b.pkg))
	}
	full := goList(t, nil, "./cmd/kes")

	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			if !slices.ContainsFunc(full, func(p goPackage) bool { return p.path == b.pkg }) {
				t.Fatalf("go list -deps ./cmd/kes does not list %s: the test would prove nothing", b.pkg)
			}
			only := map[string]bool{}
			for mod := range deps[b.name] {
				only[mod] = !core[mod]
				for _, other := range backends {
					if other.name != b.name && deps[other.name][mod] {
						only[mod] = false
					}
				}
			}
			if b.name == "etcd" && !only["go.etcd.io/etcd/client/v3"] {
				t.Errorf("go.etcd.io/etcd/client/v3 is not counted as needed by etcd only: %v", only)
			}
			tag := "kes_omit_" + b.name
			for _, p := range goList(t, []string{tag}, "./cmd/kes") {
				if p.path == b.pkg || strings.HasPrefix(p.path, b.pkg+"/") {
					t.Errorf("go list -deps -tags %s ./cmd/kes lists %s", tag, p.path)
				}
				if only[p.module] {
					t.Errorf("go list -deps -tags %s ./cmd/kes lists %s of module %s, which only %s needs", tag, p.path, p.module, b.pkg)
				}
			}
		})
	}
}
