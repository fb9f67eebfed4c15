// Package deploytest checks the deployment files in deploy/ without a cloud
// account or the Terraform binary: it parses deploy/terraform with HCL and
// deploy/kubernetes as YAML and asserts their wiring, so that every service
// keeps its scaling policy on its own queue, its task role names only its
// own queues, tables and prefixes, and the bucket stays private, encrypted,
// TLS-only and announced to the ingest queue. Terraform itself cannot be run
// here (no registry), so these checks are what keeps the files honest.
package deploytest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// Module is a parsed Terraform root module: every top-level block of every
// .tf file, in file order.
type Module struct {
	Blocks []*hclsyntax.Block
	locals map[string]hclsyntax.Expression
}

// ReadDir returns the .tf files of dir by name.
func ReadDir(dir string) (map[string][]byte, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.tf"))
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no .tf files in %s", dir)
	}
	files := map[string][]byte{}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			return nil, err
		}
		files[filepath.Base(n)] = b
	}
	return files, nil
}

// Parse parses the files (name to source) into one module; any syntax error
// in any file is an error.
func Parse(files map[string][]byte) (*Module, error) {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	p := hclparse.NewParser()
	m := &Module{}
	var errs []error
	for _, n := range names {
		f, diags := p.ParseHCL(files[n], n)
		if diags.HasErrors() {
			errs = append(errs, diags)
			continue
		}
		m.Blocks = append(m.Blocks, f.Body.(*hclsyntax.Body).Blocks...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	m.index()
	return m, nil
}

func (m *Module) index() {
	m.locals = map[string]hclsyntax.Expression{}
	for _, b := range m.Blocks {
		if b.Type == "locals" {
			for name, a := range b.Body.Attributes {
				m.locals[name] = a.Expr
			}
		}
	}
}

// Block returns the top-level block of that type and labels, or nil:
// Block("resource", "aws_sqs_queue", "ingest").
func (m *Module) Block(typ string, labels ...string) *hclsyntax.Block {
	for _, b := range m.Blocks {
		if b.Type == typ && equal(b.Labels, labels) {
			return b
		}
	}
	return nil
}

// Resources returns the resource blocks of one type, by name.
func (m *Module) Resources(typ string) map[string]*hclsyntax.Block {
	out := map[string]*hclsyntax.Block{}
	for _, b := range m.Blocks {
		if b.Type == "resource" && len(b.Labels) == 2 && b.Labels[0] == typ {
			out[b.Labels[1]] = b
		}
	}
	return out
}

// Remove drops a top-level block, as if it had been deleted from its file,
// and reports whether there was one.
func (m *Module) Remove(typ string, labels ...string) bool {
	for i, b := range m.Blocks {
		if b.Type == typ && equal(b.Labels, labels) {
			m.Blocks = append(m.Blocks[:i:i], m.Blocks[i+1:]...)
			m.index()
			return true
		}
	}
	return false
}

// Local is the expression of a local value, or nil.
func (m *Module) Local(name string) hclsyntax.Expression { return m.locals[name] }

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// attr is a block's attribute expression, or nil.
func attr(b *hclsyntax.Block, name string) hclsyntax.Expression {
	if b == nil {
		return nil
	}
	if a, ok := b.Body.Attributes[name]; ok {
		return a.Expr
	}
	return nil
}

// children are a block's nested blocks of one type; dynamic blocks of that
// type count too, by their content block.
func children(b *hclsyntax.Block, typ string) []*hclsyntax.Block {
	if b == nil {
		return nil
	}
	var out []*hclsyntax.Block
	for _, c := range b.Body.Blocks {
		switch {
		case c.Type == typ:
			out = append(out, c)
		case c.Type == "dynamic" && len(c.Labels) == 1 && c.Labels[0] == typ:
			for _, content := range c.Body.Blocks {
				if content.Type == "content" {
					out = append(out, content)
				}
			}
		}
	}
	return out
}

// child is the first nested block of that type, or nil.
func child(b *hclsyntax.Block, typ string) *hclsyntax.Block {
	if cs := children(b, typ); len(cs) > 0 {
		return cs[0]
	}
	return nil
}

// path follows nested blocks: path(b, "a", "b") is b's first a's first b.
func path(b *hclsyntax.Block, types ...string) *hclsyntax.Block {
	for _, t := range types {
		b = child(b, t)
	}
	return b
}

// refs renders every reference in expr: aws_sqs_queue.chunks.arn,
// local.container["worker"].
func refs(expr hclsyntax.Expression) []string {
	if expr == nil {
		return nil
	}
	var out []string
	for _, t := range expr.Variables() {
		out = append(out, render(t))
	}
	return out
}

func render(t hcl.Traversal) string {
	var sb strings.Builder
	for _, step := range t {
		switch s := step.(type) {
		case hcl.TraverseRoot:
			sb.WriteString(s.Name)
		case hcl.TraverseAttr:
			sb.WriteString("." + s.Name)
		case hcl.TraverseIndex:
			if s.Key.Type() == cty.String {
				fmt.Fprintf(&sb, "[%q]", s.Key.AsString())
			} else {
				sb.WriteString("[?]")
			}
		case hcl.TraverseSplat:
			sb.WriteString("[*]")
		}
	}
	return sb.String()
}

// refersTo reports whether expr references addr or something inside it:
// refersTo(e, "aws_sqs_queue.chunks") matches aws_sqs_queue.chunks.name
// but not aws_sqs_queue.chunks_dlq.arn.
func refersTo(expr hclsyntax.Expression, addr string) bool {
	for _, r := range refs(expr) {
		if under(r, addr) {
			return true
		}
	}
	return false
}

func under(ref, addr string) bool {
	return ref == addr || strings.HasPrefix(ref, addr+".") || strings.HasPrefix(ref, addr+"[")
}

// referenced returns the names of the resources of type typ that expr
// references: referenced(e, "aws_sqs_queue") = [chunks, merge].
func referenced(expr hclsyntax.Expression, typ string) []string {
	seen := map[string]bool{}
	for _, r := range refs(expr) {
		parts := strings.SplitN(r, ".", 3)
		if len(parts) >= 2 && parts[0] == typ {
			name, _, _ := strings.Cut(parts[1], "[")
			seen[name] = true
		}
	}
	return sortedKeys(seen)
}

// literal is expr's value when it needs no variables or functions.
func literal(expr hclsyntax.Expression) (cty.Value, bool) {
	if expr == nil {
		return cty.NilVal, false
	}
	v, diags := expr.Value(nil)
	if diags.HasErrors() || !v.IsWhollyKnown() {
		return cty.NilVal, false
	}
	return v, true
}

// str is expr's literal string value, or "".
func str(expr hclsyntax.Expression) string {
	v, ok := literal(expr)
	if !ok || v.IsNull() || v.Type() != cty.String {
		return ""
	}
	return v.AsString()
}

// isTrue reports whether expr is the literal true.
func isTrue(expr hclsyntax.Expression) bool {
	v, ok := literal(expr)
	return ok && !v.IsNull() && v.Type() == cty.Bool && v.True()
}

// strs is expr's literal list of strings; ok is false if any is not literal.
func strs(expr hclsyntax.Expression) ([]string, bool) {
	v, ok := literal(expr)
	if !ok || v.IsNull() || !(v.Type().IsTupleType() || v.Type().IsListType()) {
		return nil, false
	}
	var out []string
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if e.IsNull() || e.Type() != cty.String {
			return nil, false
		}
		out = append(out, e.AsString())
	}
	return out, true
}

// number is expr's literal number, or false.
func number(expr hclsyntax.Expression) (float64, bool) {
	v, ok := literal(expr)
	if !ok || v.IsNull() || v.Type() != cty.Number {
		return 0, false
	}
	f, _ := v.AsBigFloat().Float64()
	return f, true
}

// items splits a list expression into its elements; anything else is one
// item.
func items(expr hclsyntax.Expression) []hclsyntax.Expression {
	if t, ok := expr.(*hclsyntax.TupleConsExpr); ok {
		return t.Exprs
	}
	return []hclsyntax.Expression{expr}
}

// objectKeys finds, anywhere under node, the values of object items whose
// key is key: { containerPort = 9090 } under a for expression, a
// jsonencode call or a list.
func objectKeys(node hclsyntax.Node, key string) []hclsyntax.Expression {
	if node == nil {
		return nil
	}
	var out []hclsyntax.Expression
	hclsyntax.VisitAll(node, func(n hclsyntax.Node) hcl.Diagnostics {
		obj, ok := n.(*hclsyntax.ObjectConsExpr)
		if !ok {
			return nil
		}
		for _, it := range obj.Items {
			if keyName(it.KeyExpr) == key {
				out = append(out, it.ValueExpr)
			}
		}
		return nil
	})
	return out
}

func keyName(e hclsyntax.Expression) string {
	if k := hcl.ExprAsKeyword(e); k != "" {
		return k
	}
	return str(e)
}

// templateParts splits a string template into its references and literal
// text: "${aws_s3_bucket.this.arn}/input/*" is ("aws_s3_bucket.this.arn",
// "/input/*"). ok is false for anything but one reference then text.
func templateParts(expr hclsyntax.Expression) (ref, rest string, ok bool) {
	t, isTemplate := expr.(*hclsyntax.TemplateExpr)
	if !isTemplate || len(t.Parts) == 0 {
		return "", "", false
	}
	head, isRef := t.Parts[0].(*hclsyntax.ScopeTraversalExpr)
	if !isRef {
		return "", "", false
	}
	var sb strings.Builder
	for _, p := range t.Parts[1:] {
		lit, isLit := p.(*hclsyntax.LiteralValueExpr)
		if !isLit || lit.Val.Type() != cty.String {
			return "", "", false
		}
		sb.WriteString(lit.Val.AsString())
	}
	return render(head.Traversal), sb.String(), true
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
