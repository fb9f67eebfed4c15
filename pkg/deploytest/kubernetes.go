package deploytest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Object is one Kubernetes manifest, decoded as generic YAML.
type Object map[string]any

// Kind, Name: the object's kind and metadata.name.
func (o Object) Kind() string { s, _ := o["kind"].(string); return s }
func (o Object) Name() string { s, _ := get(o, "metadata", "name").(string); return s }

// ReadManifests decodes every document of every .yaml file in dir, and
// returns them with the names of the files.
func ReadManifests(dir string) ([]Object, []string, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, nil, err
	}
	var objs []Object
	var files []string
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			return nil, nil, err
		}
		files = append(files, filepath.Base(n))
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			// Plain maps, so that nested mappings decode as map[string]any.
			var o map[string]any
			if err := dec.Decode(&o); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", filepath.Base(n), err)
			}
			if o != nil {
				objs = append(objs, Object(o))
			}
		}
	}
	return objs, files, nil
}

// get walks maps by key and lists by index ("0").
func get(v any, keys ...string) any {
	for _, k := range keys {
		switch x := v.(type) {
		case Object:
			v = x[k]
		case map[string]any:
			v = x[k]
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func getString(v any, keys ...string) string {
	switch x := get(v, keys...).(type) {
	case string:
		return x
	case int:
		return strconv.Itoa(x)
	}
	return ""
}

// CheckKubernetes returns every way the manifests differ from Stages: each
// service has a Deployment running its command and a KEDA ScaledObject
// that scales that Deployment on its own queue, counting in-flight
// messages. files are the manifest files; the kustomization must list
// every other one.
func CheckKubernetes(objs []Object, files []string) []string {
	var p problems
	byKind := map[string]map[string]Object{}
	for _, o := range objs {
		if byKind[o.Kind()] == nil {
			byKind[o.Kind()] = map[string]Object{}
		}
		byKind[o.Kind()][o.Name()] = o
	}
	config := byKind["ConfigMap"]["sluice-config"]
	prefix := getString(config, "data", "SLUICE_QUEUE_PREFIX")
	if prefix == "" {
		p.add("kubernetes: ConfigMap sluice-config must set SLUICE_QUEUE_PREFIX")
	}
	checkKustomization(&p, objs, files)
	for _, s := range Stages {
		name := "sluice-" + s.Name
		d := byKind["Deployment"][name]
		if d == nil {
			p.add("%s: no Deployment %s", s.Name, name)
			continue
		}
		checkDeployment(&p, s, d)
		var scaled []Object
		for _, so := range byKind["ScaledObject"] {
			if getString(so, "spec", "scaleTargetRef", "name") == name {
				scaled = append(scaled, so)
			}
		}
		if len(scaled) != 1 {
			p.add("%s: want one ScaledObject targeting Deployment %s, have %d", s.Name, name, len(scaled))
			continue
		}
		checkScaledObject(&p, s, scaled[0], prefix, byKind["TriggerAuthentication"])
	}
	sort.Strings(p)
	return p
}

// checkKustomization: kubectl apply -k deploys only what the
// kustomization lists, so a manifest it misses is never applied.
func checkKustomization(p *problems, objs []Object, files []string) {
	var kust Object
	for _, o := range objs {
		if o.Kind() == "Kustomization" {
			kust = o
		}
	}
	if kust == nil {
		p.add("kubernetes: no kustomization.yaml")
		return
	}
	listed, _ := kust["resources"].([]any)
	for _, f := range files {
		if f != "kustomization.yaml" && !slices.Contains(listed, any(f)) {
			p.add("kubernetes: kustomization.yaml does not list %s", f)
		}
	}
}

// checkDeployment: the stage's Deployment runs its command, exposes the
// metrics port, drains before Kubernetes kills it, and reads the shared
// ConfigMap.
func checkDeployment(p *problems, s Stage, d Object) {
	name := d.Name()
	c := get(d, "spec", "template", "spec", "containers", "0")
	cmd, _ := get(c, "command").([]any)
	if len(cmd) != 1 || cmd[0] != s.Name {
		p.add("%s: Deployment %s must run command [%s]", s.Name, name, s.Name)
	}
	if get(c, "ports", "0", "containerPort") != 9090 {
		p.add("%s: Deployment %s must expose containerPort 9090", s.Name, name)
	}
	grace, _ := get(d, "spec", "template", "spec", "terminationGracePeriodSeconds").(int)
	drain := time.Duration(-1)
	envs, _ := get(c, "env").([]any)
	for _, e := range envs {
		if getString(e, "name") == "SLUICE_DRAIN" {
			drain, _ = time.ParseDuration(getString(e, "value"))
		}
	}
	if drain <= 0 || grace == 0 || drain >= time.Duration(grace)*time.Second {
		p.add("%s: SLUICE_DRAIN (%v) must be set and below terminationGracePeriodSeconds (%d)", s.Name, drain, grace)
	}
	refs := getString(c, "envFrom", "0", "configMapRef", "name")
	if refs != "sluice-config" {
		p.add("%s: Deployment %s must take its settings from ConfigMap sluice-config", s.Name, name)
	}
}

// checkScaledObject: the stage's ScaledObject targets a Deployment and has
// exactly one SQS trigger, on the stage's own queue.
func checkScaledObject(p *problems, s Stage, so Object, prefix string, auths map[string]Object) {
	if kind := getString(so, "spec", "scaleTargetRef", "kind"); kind != "" && kind != "Deployment" {
		p.add("%s: ScaledObject %s must target a Deployment", s.Name, so.Name())
	}
	triggers, _ := get(so, "spec", "triggers").([]any)
	own := 0
	for i := range triggers {
		tr := get(so, "spec", "triggers", strconv.Itoa(i))
		if getString(tr, "type") != "aws-sqs-queue" {
			continue
		}
		q := getString(tr, "metadata", "queueURL")
		q = q[strings.LastIndex(q, "/")+1:]
		if q != prefix+s.Queue {
			p.add("%s: ScaledObject %s scales on queue %s, not its own %s", s.Name, so.Name(), q, prefix+s.Queue)
			continue
		}
		own++
		checkSQSTrigger(p, s, so, tr, auths)
	}
	if own != 1 {
		p.add("%s: ScaledObject %s needs one aws-sqs-queue trigger on %s", s.Name, so.Name(), prefix+s.Queue)
	}
}

// checkSQSTrigger: the trigger counts in-flight messages, has a target
// length, a region, and credentials from KEDA's aws pod identity.
func checkSQSTrigger(p *problems, s Stage, so Object, tr any, auths map[string]Object) {
	if getString(tr, "metadata", "scaleOnInFlight") != "true" {
		p.add(`%s: ScaledObject %s must set scaleOnInFlight: "true"`, s.Name, so.Name())
	}
	if n, err := strconv.Atoi(getString(tr, "metadata", "queueLength")); err != nil || n < 1 {
		p.add("%s: ScaledObject %s needs queueLength, a positive integer as a string", s.Name, so.Name())
	}
	// identityOwner in the trigger is deprecated since KEDA 2.13:
	// credentials come from a TriggerAuthentication with the aws
	// pod identity provider.
	if get(tr, "metadata", "identityOwner") != nil {
		p.add("%s: ScaledObject %s sets identityOwner, deprecated since KEDA 2.13; use authenticationRef", s.Name, so.Name())
	}
	auth := auths[getString(tr, "authenticationRef", "name")]
	if auth == nil || getString(auth, "spec", "podIdentity", "provider") != "aws" {
		p.add("%s: ScaledObject %s needs authenticationRef to a TriggerAuthentication with podIdentity provider aws", s.Name, so.Name())
	}
	if getString(tr, "metadata", "awsRegion") == "" {
		p.add("%s: ScaledObject %s needs awsRegion", s.Name, so.Name())
	}
}
