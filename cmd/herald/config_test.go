package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"
)

func loadTest(t *testing.T, args []string, env map[string]string) (*Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return loadConfig(fs, args, func(k string) string { return env[k] })
}

func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "herald.yaml")
	if err := os.WriteFile(file, []byte("httpAddr: ':9000'\nmqttAddr: 127.0.0.1:1883\nroles: [web]\nprocessor: {workers: 3}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(*Config) bool
	}{
		{"defaults", nil, nil, func(c *Config) bool {
			return c.HTTPAddr == ":8080" && c.DataDir == "./data" && reflect.DeepEqual(c.Roles, []Role{"broker", "web", "processor"}) &&
				c.Broker.Mode == "embedded" && c.AWS.Mode == "local" && c.AWS.LocalawsAddr == "127.0.0.1:4566" && *c.AWS.LocalawsEmbed
		}},
		{"file", []string{"--config", file}, nil, func(c *Config) bool {
			return c.HTTPAddr == ":9000" && c.MQTTAddr == "127.0.0.1:1883" && reflect.DeepEqual(c.Roles, []Role{"web"}) && c.Processor.Workers == 3
		}},
		{"env over file", nil, map[string]string{"HERALD_CONFIG": file, "HERALD_HTTP_ADDR": ":9100", "HERALD_ROLES": "broker,web", "HERALD_PROCESSOR_VISIBILITY": "5s", "HERALD_LOCALAWS_EMBED": "false"}, func(c *Config) bool {
			return c.HTTPAddr == ":9100" && reflect.DeepEqual(c.Roles, []Role{"broker", "web"}) && c.Processor.Visibility == 5*time.Second && !*c.AWS.LocalawsEmbed
		}},
		{"flag over env", []string{"--http-addr", ":9200", "--roles", "processor"}, map[string]string{"HERALD_CONFIG": file, "HERALD_HTTP_ADDR": ":9100"}, func(c *Config) bool {
			return c.HTTPAddr == ":9200" && reflect.DeepEqual(c.Roles, []Role{"processor"})
		}},
		{"external broker env", nil, map[string]string{"HERALD_BROKER_MODE": "mqtt", "HERALD_BROKER_URL": "mqtts://b:8883", "HERALD_BROKER_CONNECTIONS": "4", "HERALD_FEDERATION_URL": "mqtt://up:1883"}, func(c *Config) bool {
			return c.Broker.Mode == "mqtt" && c.Broker.URL == "mqtts://b:8883" && c.Broker.Connections == 4 && c.Broker.Federation.URL == "mqtt://up:1883"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadTest(t, tt.args, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Fatalf("got %+v", c)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("htpAddr: ':1'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"unknown role", []string{"--roles", "broker,chef"}, nil},
		{"unknown yaml field", []string{"--config", bad}, nil},
		{"missing file", []string{"--config", "/nonexistent/herald.yaml"}, nil},
		{"bad broker mode", nil, map[string]string{"HERALD_BROKER_MODE": "carrier-pigeon"}},
		{"external mode without url", nil, map[string]string{"HERALD_BROKER_MODE": "mqtt"}},
		{"bad aws mode", nil, map[string]string{"HERALD_AWS_MODE": "gcp"}},
		{"bad workers", nil, map[string]string{"HERALD_PROCESSOR_WORKERS": "many"}},
		{"bad embed flag", nil, map[string]string{"HERALD_LOCALAWS_EMBED": "perhaps"}},
		{"stray argument", []string{"extra"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := loadTest(t, tt.args, tt.env); err == nil {
				t.Fatal("loadConfig succeeded, want an error")
			}
		})
	}
}

// TestExampleConfigParses keeps docs/herald.example.yaml in step with Config:
// unknown fields are refused, so a renamed setting fails here.
func TestExampleConfigParses(t *testing.T) {
	c, err := loadTest(t, []string{"--config", "../../docs/herald.example.yaml"}, nil)
	if err != nil {
		t.Fatalf("docs/herald.example.yaml: %v", err)
	}
	if c.HTTPAddr != ":8080" || c.AWS.Bucket != "herald" {
		t.Fatalf("example config: got %+v", c)
	}
}

// TestSettingNames keeps one name per setting from YAML to environment to
// code: every YAML field of the configuration is its Go field's name (up to
// case), every HERALD_* variable the configuration reads is documented in
// docs/herald.example.yaml and vice versa, and each documented variable
// ends with its YAML field's name.
func TestSettingNames(t *testing.T) {
	var walk func(reflect.Type)
	walk = func(typ reflect.Type) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !strings.EqualFold(tag, f.Name) {
				t.Errorf("%s.%s has YAML name %q", typ.Name(), f.Name, tag)
			}
			if ft := f.Type; ft.Kind() == reflect.Struct && ft.PkgPath() == typ.PkgPath() {
				walk(ft)
			}
		}
	}
	walk(reflect.TypeFor[Config]())

	example, err := os.ReadFile("../../docs/herald.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	read := map[string]bool{"HERALD_CONFIG": true, "HERALD_DEMO_API_KEY": true}
	for _, s := range (&Config{}).envSettings() {
		read[s.name] = true
	}
	documented := map[string]bool{}
	line := regexp.MustCompile(`^\s*(?:- )?([A-Za-z]+):.*#\s*(HERALD_[A-Z_]+)`)
	for _, l := range strings.Split(string(example), "\n") {
		for _, name := range regexp.MustCompile(`HERALD_[A-Z_]+`).FindAllString(l, -1) {
			documented[name] = true
		}
		if m := line.FindStringSubmatch(l); m != nil {
			if want := "_" + upperSnake(m[1]); !strings.HasSuffix(m[2], want) {
				t.Errorf("YAML field %q is documented as %s; want a name ending in %s", m[1], m[2], want)
			}
		}
	}
	for name := range read {
		if !documented[name] && name != "HERALD_CONFIG" {
			t.Errorf("%s is read but not in docs/herald.example.yaml", name)
		}
	}
	for name := range documented {
		if !read[name] {
			t.Errorf("docs/herald.example.yaml names %s, which nothing reads", name)
		}
	}
}

// upperSnake turns a YAML field name into its environment form
// ("localawsAddr" → "LOCALAWS_ADDR", "publicURL" → "PUBLIC_URL").
func upperSnake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && unicode.IsUpper(r) && !unicode.IsUpper(rune(s[i-1])) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}

func TestRenamedSetting(t *testing.T) {
	_, err := loadTest(t, nil, map[string]string{"HERALD_BROKER_MAX_QUEUED": "10"})
	if err == nil || !strings.Contains(err.Error(), "HERALD_BROKER_OUTBOX_MAX") {
		t.Fatalf("HERALD_BROKER_MAX_QUEUED: got %v, want an error naming HERALD_BROKER_OUTBOX_MAX", err)
	}
	c, err := loadTest(t, nil, map[string]string{"HERALD_BROKER_OUTBOX_MAX": "10"})
	if err != nil || c.Broker.OutboxMax != 10 {
		t.Fatalf("HERALD_BROKER_OUTBOX_MAX=10: got %v, %v", c, err)
	}
}

// TestConfigExamples: each configuration example in docs/examples loads
// through the real config reader (unknown fields are errors) into a
// command pipeline. The convert and processor tests run them.
func TestConfigExamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "docs", "examples", "*.yaml"))
	if err != nil || len(files) < 2 {
		t.Fatalf("examples: %v %v", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, err := loadTest(t, []string{"--config", f}, nil)
			if err != nil {
				t.Fatal(err)
			}
			ps := c.Processor.Convert.Pipelines
			if len(ps) == 0 || len(ps[0].Outputs) == 0 || ps[0].Outputs[0].Converter != "command" {
				t.Errorf("pipelines %+v", ps)
			}
		})
	}
}
