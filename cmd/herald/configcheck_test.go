package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Config file mistakes are reported with YAML names and lines, never Go
// type names.
func TestConfigFileErrorsUseYAMLNames(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"typo at top", "httpAdr: ':1'\n", []string{"line 1: httpAdr is not a setting; did you mean httpAddr?"}},
		{"typo nested", "broker:\n  maxConections: 5\n", []string{"line 2: broker.maxConections is not a setting; did you mean broker.maxConnections?"}},
		{"typo in an app", "apps:\n  - id: shop\n    apikey: k\n", []string{"line 3: apps[0].apikey is not a setting; did you mean apps[0].apiKey?"}},
		{"no close match", "zzzzzzzz: 1\n", []string{"line 1: zzzzzzzz is not a setting", "httpAddr", "processor"}},
		{"not a number", "broker:\n  maxConnections: many\n", []string{`line 2: broker.maxConnections: want a whole number, got "many"`}},
		{"not a duration", "processor:\n  visibility: soon\n", []string{`line 2: processor.visibility: want a duration such as 30s`}},
		{"not a bool", "aws:\n  localawsEmbed: perhaps\n", []string{`line 2: aws.localawsEmbed: want true or false, got "perhaps"`}},
		{"not a list", "roles: web\n", []string{`line 1: roles: want a list`}},
		{"not a section", "aws: 5\n", []string{`line 1: aws: want settings (key: value lines), got "5"`}},
		{"syntax", "httpAddr: [\n", []string{"yaml: line"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "herald.yaml")
			if err := os.WriteFile(file, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := loadTest(t, []string{"--config", file}, nil)
			if err == nil {
				t.Fatal("loaded, want an error")
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			for _, leak := range []string{"main.", "in type", "tenant.", "convert.", "[]main"} {
				if strings.Contains(msg, leak) {
					t.Errorf("error %q leaks a Go name (%q)", msg, leak)
				}
			}
		})
	}
	// An empty file is every default.
	file := filepath.Join(t.TempDir(), "empty.yaml")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadTest(t, []string{"--config", file}, nil); err != nil {
		t.Fatalf("empty file: %v", err)
	}
}

// deploy/herald.compose.yaml (the compose file's shared config) loads.
func TestComposeConfigFileLoads(t *testing.T) {
	c, err := loadTest(t, []string{"--config", "../../deploy/herald.compose.yaml"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *c.Demo || len(c.Apps) != 1 || c.Apps[0].ID != "demo" {
		t.Fatalf("got demo=%v apps=%+v", *c.Demo, c.Apps)
	}
}
