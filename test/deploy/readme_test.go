package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// columnsClaim is the README's way of saying what `kubectl get` prints: "`kubectl get wap` shows
// Ready, Mode and Age; `-o wide` adds Workspace and Reason".
var columnsClaim = regexp.MustCompile("`kubectl get ([a-z]+)` shows ([^;.]+)(?:; `-o wide` adds ([^;.]+))?")

// TestReadmeMatchesCRDs checks what the README says the resources look like in kubectl against
// the CRDs: each kind's short name, the `flex` category, and, for every "`kubectl get x` shows …"
// sentence, the printer columns in order (and the `-o wide` ones), with none left unmentioned.
func TestReadmeMatchesCRDs(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := strings.Join(strings.Fields(string(b)), " ") // sentences wrap across lines
	crds := readCRDs(t)

	claimed := map[string]bool{}
	for _, m := range columnsClaim.FindAllStringSubmatch(readme, -1) {
		name, shows, wide := m[1], m[2], m[3]
		crd, ok := crds[name]
		if !ok {
			t.Errorf("README: `kubectl get %s`: no CRD has that short name", name)
			continue
		}
		claimed[name] = true
		cols, wideCols := printerColumns(crd)
		if got := listItems(shows); !slices.Equal(got, cols) {
			t.Errorf("README: `kubectl get %s` shows %q; the CRD's columns are %q", name, got, cols)
		}
		if got := listItems(wide); !slices.Equal(got, wideCols) {
			t.Errorf("README: `kubectl get %s -o wide` adds %q; the CRD's wide columns are %q", name, got, wideCols)
		}
	}
	for short, crd := range crds {
		if !claimed[short] {
			t.Errorf("README does not say what `kubectl get %s` shows (%s)", short, crd.Spec.Names.Kind)
		}
		if !slices.Contains(crd.Spec.Names.Categories, "flex") {
			t.Errorf("%s is not in the category `flex` the README lists it under", crd.Spec.Names.Kind)
		}
		if !strings.Contains(readme, "**"+crd.Spec.Names.Kind+"** (`"+short+"`)") {
			t.Errorf("README does not introduce %s with its short name `%s`", crd.Spec.Names.Kind, short)
		}
	}
	if !strings.Contains(readme, "`kubectl get flex`") {
		t.Error("README no longer mentions `kubectl get flex`; keep TestReadmeMatchesCRDs in step")
	}
}

// readCRDs reads config/crd/bases, by each CRD's one short name.
func readCRDs(t *testing.T) map[string]apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(configDir, "crd", "bases", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs in config/crd/bases (%v)", err)
	}
	out := map[string]apiextensionsv1.CustomResourceDefinition{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(b, &crd); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(crd.Spec.Names.ShortNames) != 1 {
			t.Fatalf("%s: short names %v, want exactly one (the README names one)", f, crd.Spec.Names.ShortNames)
		}
		out[crd.Spec.Names.ShortNames[0]] = crd
	}
	return out
}

// printerColumns returns the served version's columns kubectl prints by default and with -o wide,
// with Age (metadata.creationTimestamp) among the default ones, where kubectl shows it.
func printerColumns(crd apiextensionsv1.CustomResourceDefinition) (cols, wide []string) {
	for _, v := range crd.Spec.Versions {
		if !v.Served || !v.Storage {
			continue
		}
		for _, c := range v.AdditionalPrinterColumns {
			if c.Priority == 0 {
				cols = append(cols, c.Name)
			} else {
				wide = append(wide, c.Name)
			}
		}
	}
	return cols, wide
}

// listItems splits "A, B and C" into its items.
func listItems(s string) []string {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	var items []string
	for _, part := range strings.Split(s, ", ") {
		for _, item := range strings.Split(part, " and ") {
			items = append(items, strings.TrimSpace(item))
		}
	}
	return items
}
