package topic

import (
	"strings"
	"testing"
)

const (
	app = "demo"
	ch  = "AAAAAAAAAAAAAAAAAAAAAA"
)

func TestBrowserMaySubscribe(t *testing.T) {
	tests := []struct {
		name   string
		filter string
		want   bool
	}{
		{"whole channel", "apps/demo/channels/" + ch + "/#", true},
		{"events", "apps/demo/channels/" + ch + "/events", true},
		{"one job", "apps/demo/channels/" + ch + "/jobs/j1", true},
		{"all jobs", "apps/demo/channels/" + ch + "/jobs/+", true},
		{"plus below channel", "apps/demo/channels/" + ch + "/+", true},
		{"channel root alone", "apps/demo/channels/" + ch, false},
		{"everything", "#", false},
		{"plus everything", "+/#", false},
		{"sys", "$SYS/#", false},
		{"shared", "$share/g/apps/demo/channels/" + ch + "/#", false},
		{"any channel", "apps/demo/channels/+/#", false},
		{"any app", "apps/+/channels/" + ch + "/#", false},
		{"channels hash", "apps/demo/channels/#", false},
		{"app hash", "apps/demo/#", false},
		{"other channel", "apps/demo/channels/BBBBBBBBBBBBBBBBBBBBBB/#", false},
		{"other app", "apps/other/channels/" + ch + "/#", false},
		{"prefix of channel", "apps/demo/channels/" + ch[:21] + "/#", false},
		{"hash not last", "apps/demo/channels/" + ch + "/#/x", false},
		{"partial plus", "apps/demo/channels/" + ch + "/jo+", false},
		{"empty", "", false},
		{"nul", "apps/demo/channels/" + ch + "/\x00", false},
		{"too deep", "apps/demo/channels/" + ch + "/jobs/a/b/c/d", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := BrowserMaySubscribe(tt.filter, app, ch); got != tt.want {
				t.Errorf("BrowserMaySubscribe(%q) = %v, want %v", tt.filter, got, tt.want)
			}
		})
	}
}

func TestServiceACL(t *testing.T) {
	tests := []struct {
		name      string
		topic     string
		publish   bool
		subscribe bool
	}{
		{"own job topic", Job(app, ch, "j1"), true, true},
		{"own app all", "apps/demo/#", false, true},
		{"other app", Job("other", ch, "j1"), false, false},
		{"wildcard app", "apps/+/channels/x/events", false, false},
		{"root", "#", false, false},
		{"sys", "$SYS/broker/uptime", false, false},
		{"app root only", "apps/demo", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ServiceMayPublish(tt.topic, app); got != tt.publish {
				t.Errorf("ServiceMayPublish(%q) = %v, want %v", tt.topic, got, tt.publish)
			}
			if got := ServiceMaySubscribe(tt.topic, app); got != tt.subscribe {
				t.Errorf("ServiceMaySubscribe(%q) = %v, want %v", tt.topic, got, tt.subscribe)
			}
		})
	}
}

func TestParseRoundTrip(t *testing.T) {
	for _, name := range []string{Job(app, ch, "job-1"), Events(app, ch)} {
		a, err := Parse(name)
		if err != nil {
			t.Fatalf("Parse(%q): %v", name, err)
		}
		if got := a.String(); got != name {
			t.Errorf("round trip: got %q, want %q", got, name)
		}
	}
	for _, bad := range []string{"", "apps/demo", "apps/demo/channels/" + ch + "/jobs", "apps/demo/channels/" + ch + "/jobs/+", "x/demo/channels/" + ch + "/events", "$SYS/x"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) succeeded, want error", bad)
		}
	}
}

// FuzzBrowserMaySubscribe checks the ACL's invariant: whatever filter is
// accepted, every topic it could match lies inside the browser's channel.
func FuzzBrowserMaySubscribe(f *testing.F) {
	for _, s := range []string{"#", "+/#", "$SYS/#", "apps/demo/channels/" + ch + "/#", "apps/demo/channels/+/#",
		"apps/+/channels/" + ch + "/#", "$share/a/apps/demo/channels/" + ch + "/#", "apps/demo/channels/" + ch + "/jobs/+",
		"apps//channels/" + ch + "/#", "apps/demo/channels/" + ch + "//#"} {
		f.Add(s)
	}
	root := "apps/demo/channels/" + ch + "/"
	f.Fuzz(func(t *testing.T, filter string) {
		if !BrowserMaySubscribe(filter, app, ch) {
			return
		}
		if !strings.HasPrefix(filter, root) {
			t.Fatalf("accepted %q outside %q", filter, root)
		}
		if strings.ContainsAny(filter[:len(root)], "+#$") {
			t.Fatalf("accepted wildcard above the channel: %q", filter)
		}
		if ValidFilter(filter) != nil {
			t.Fatalf("accepted invalid filter %q", filter)
		}
	})
}

// FuzzParse checks that Parse never panics and that what it accepts renders
// back to the same topic.
func FuzzParse(f *testing.F) {
	f.Add(Job(app, ch, "j"))
	f.Add(Events(app, ch))
	f.Add("apps/a/channels/b/jobs/#")
	f.Fuzz(func(t *testing.T, name string) {
		a, err := Parse(name)
		if err != nil {
			return
		}
		if a.String() != name {
			t.Fatalf("Parse(%q).String() = %q", name, a.String())
		}
		if !ServiceMayPublish(name, a.App) {
			t.Fatalf("parsed topic %q not publishable by its own app", name)
		}
	})
}

// browserMaySubscribeBySplit is the ACL's plain definition (split into
// levels, compare the root): the walking implementation must agree with
// it on every input.
func browserMaySubscribeBySplit(filter, app, channel string) bool {
	if !ValidSegment(app) || !ValidSegment(channel) {
		return false
	}
	lv := strings.Split(filter, "/")
	return len(lv) > 4 && within(filter, []string{"apps", app, "channels", channel})
}

func FuzzBrowserMaySubscribeAgrees(f *testing.F) {
	for _, s := range []string{"apps/demo/channels/" + ch + "/#", "apps/demo/channels/" + ch + "/", "apps/demo/channels/" + ch,
		"apps/demo/channels/" + ch + "/a+/b", "apps/demo/channels/" + ch + "/#/x", "apps/demo/channels/" + ch + "/+/#",
		"apps/demo/channels/" + ch + "x/#", "apps/demo/channels/" + ch + "/a\x00"} {
		f.Add(s, "demo", ch)
	}
	f.Fuzz(func(t *testing.T, filter, app, channel string) {
		if got, want := BrowserMaySubscribe(filter, app, channel), browserMaySubscribeBySplit(filter, app, channel); got != want {
			t.Fatalf("BrowserMaySubscribe(%q, %q, %q) = %v, definition says %v", filter, app, channel, got, want)
		}
	})
}

func BenchmarkBrowserMaySubscribe(b *testing.B) {
	name := "apps/demo/channels/" + ch + "/events"
	b.ReportAllocs()
	for b.Loop() {
		if !BrowserMaySubscribe(name, "demo", ch) {
			b.Fatal("refused")
		}
	}
}

// serviceMayPublishBySplit is the plain definition of ServiceMayPublish.
func serviceMayPublishBySplit(name, app string) bool {
	if !ValidSegment(app) || ValidName(name) != nil {
		return false
	}
	lv := strings.Split(name, "/")
	return len(lv) > 2 && lv[0] == "apps" && lv[1] == app
}

func FuzzServiceMayPublishAgrees(f *testing.F) {
	for _, s := range []string{"apps/demo/x", "apps/demo/", "apps/demo", "apps/demox/y", "apps/dem/o", "apps//demo/x", "x/apps/demo/y"} {
		f.Add(s, "demo")
	}
	f.Fuzz(func(t *testing.T, name, app string) {
		if got, want := ServiceMayPublish(name, app), serviceMayPublishBySplit(name, app); got != want {
			t.Fatalf("ServiceMayPublish(%q, %q) = %v, definition says %v", name, app, got, want)
		}
	})
}
