package deploytest

import (
	"strings"
	"testing"
)

const kubernetesDir = "../../deploy/kubernetes"

func TestKubernetesWiring(t *testing.T) {
	objs, files, err := ReadManifests(kubernetesDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range CheckKubernetes(objs, files) {
		t.Error(p)
	}
}

func TestKubernetesChecksCatch(t *testing.T) {
	cases := []struct {
		name string
		edit func(objs []Object)
		want []string
	}{
		{"worker's ScaledObject targets the splitter", func(objs []Object) {
			for _, o := range objs {
				if o.Kind() == "ScaledObject" && o.Name() == "sluice-worker" {
					get(o, "spec", "scaleTargetRef").(map[string]any)["name"] = "sluice-splitter"
				}
			}
		}, []string{"worker:", "have 0"}},
		{"merger scales on the chunks queue", func(objs []Object) {
			for _, o := range objs {
				if o.Kind() == "ScaledObject" && o.Name() == "sluice-merger" {
					get(o, "spec", "triggers", "0", "metadata").(map[string]any)["queueURL"] = "sluice-chunks"
				}
			}
		}, []string{"merger:", "not its own"}},
		{"deprecated identityOwner in the trigger", func(objs []Object) {
			for _, o := range objs {
				if o.Kind() == "ScaledObject" && o.Name() == "sluice-worker" {
					get(o, "spec", "triggers", "0", "metadata").(map[string]any)["identityOwner"] = "operator"
				}
			}
		}, []string{"worker:", "identityOwner", "2.13"}},
		{"trigger without authentication", func(objs []Object) {
			for _, o := range objs {
				if o.Kind() == "ScaledObject" && o.Name() == "sluice-merger" {
					delete(get(o, "spec", "triggers", "0").(map[string]any), "authenticationRef")
				}
			}
		}, []string{"merger:", "authenticationRef"}},
		{"in-flight messages not counted", func(objs []Object) {
			for _, o := range objs {
				if o.Kind() == "ScaledObject" && o.Name() == "sluice-notifier" {
					get(o, "spec", "triggers", "0", "metadata").(map[string]any)["scaleOnInFlight"] = "false"
				}
			}
		}, []string{"notifier:", "scaleOnInFlight"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			objs, files, err := ReadManifests(kubernetesDir)
			if err != nil {
				t.Fatal(err)
			}
			c.edit(objs)
			got := CheckKubernetes(objs, files)
			for _, p := range got {
				if containsAll(p, c.want) {
					return
				}
			}
			t.Errorf("no problem mentions all of %q; got:\n%s", c.want, strings.Join(got, "\n"))
		})
	}
}
