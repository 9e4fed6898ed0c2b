package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// composeTool returns the command that runs `compose`: Docker's plugin
// (docker compose) or the standalone docker-compose; nil when neither is
// installed. Validating needs no Docker daemon.
func composeTool(t *testing.T) []string {
	t.Helper()
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return []string{p}
	}
	return nil
}

// TestComposeConfig validates deploy/compose.yaml with `docker compose
// config` and checks the topology of docs/scaling.md: two federated
// gateway replicas, processors publishing upstream, one upstream broker.
func TestComposeConfig(t *testing.T) {
	tool := composeTool(t)
	if tool == nil {
		t.Skip("neither `docker compose` nor docker-compose is installed (make test installs docker-compose)")
	}
	args := append(slices.Clone(tool[1:]), "-f", "compose.yaml", "config")
	out, err := exec.Command(tool[0], args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", tool[0], strings.Join(args, " "), err, out)
	}
	var cfg struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
			Ports       []any             `yaml:"ports"`
			Healthcheck map[string]any    `yaml:"healthcheck"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("compose config output: %v", err)
	}
	var names []string
	for n := range cfg.Services {
		names = append(names, n)
	}
	slices.Sort(names)
	if want := []string{"gateway-1", "gateway-2", "localaws", "processor", "upstream"}; !slices.Equal(names, want) {
		t.Fatalf("services %v, want %v", names, want)
	}
	for _, n := range []string{"gateway-1", "gateway-2"} {
		s := cfg.Services[n]
		if s.Environment["HERALD_ROLES"] != "broker,web" || s.Environment["HERALD_FEDERATION_URL"] != "mqtt://upstream:1883" || len(s.Ports) != 1 {
			t.Errorf("%s: %+v", n, s)
		}
		if s.Healthcheck != nil {
			t.Errorf("%s overrides the image's HEALTHCHECK: %v", n, s.Healthcheck)
		}
	}
	p := cfg.Services["processor"]
	if p.Environment["HERALD_ROLES"] != "processor" || p.Environment["HERALD_BROKER_MODE"] != "mqtt" || p.Environment["HERALD_BROKER_URL"] != "mqtt://upstream:1883" || len(p.Ports) != 0 {
		t.Errorf("processor: %+v", p)
	}
	if _, err := os.Stat("herald.compose.yaml"); err != nil {
		t.Fatal(err)
	}
}

// TestDockerfile checks the image's declarations: a health check on
// /readyz through `herald healthcheck`, only ports that listen by default
// exposed, and a build context that leaves state and secrets out.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	if !regexp.MustCompile(`(?m)^HEALTHCHECK .*CMD \["herald", "healthcheck"\]$`).MatchString(df) {
		t.Error("no HEALTHCHECK running herald healthcheck")
	}
	// The ports the image listens on by default: HERALD_HTTP_ADDR and
	// HERALD_LOCALAWS_ADDR; HERALD_MQTT_ADDR is off unless set.
	listening := map[string]bool{}
	for _, env := range []string{"HERALD_HTTP_ADDR", "HERALD_LOCALAWS_ADDR", "HERALD_MQTT_ADDR"} {
		if m := regexp.MustCompile(env + `=\S*:(\d+)`).FindStringSubmatch(df); m != nil {
			listening[m[1]] = true
		}
	}
	m := regexp.MustCompile(`(?m)^EXPOSE (.+)$`).FindStringSubmatch(df)
	if m == nil {
		t.Fatal("no EXPOSE")
	}
	for _, port := range strings.Fields(m[1]) {
		if !listening[port] {
			t.Errorf("EXPOSE %s: nothing listens there by default (listening: %v)", port, listening)
		}
	}
	ignore, err := os.ReadFile(filepath.Join("..", ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"data/", "node_modules/", ".git", "bin/"} {
		if !slices.Contains(strings.Fields(string(ignore)), want) {
			t.Errorf(".dockerignore lacks %q", want)
		}
	}
}
