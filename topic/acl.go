package topic

import "strings"

// within reports whether every topic that filter can match lies inside the
// subtree rooted at the literal levels of root (e.g. ["apps","demo"]).
// Wildcards are allowed only below the root: a '+' or '#' at a root level could
// reach a sibling subtree, so it is refused. The check is purely level by
// level; no general filter-vs-filter matcher is involved.
func within(filter string, root []string) bool {
	if ValidFilter(filter) != nil {
		return false
	}
	lv := strings.Split(filter, "/")
	if len(lv) < len(root) {
		return false
	}
	for i, want := range root {
		if lv[i] != want {
			return false
		}
	}
	return true
}

// BrowserMaySubscribe reports whether a browser holding a token for
// (app, channel) may subscribe to filter: only inside
// apps/{app}/channels/{channel}/, with wildcards allowed below that level.
// "$share/…", "$SYS/…", "#", "+" at any fixed level, other channels and other
// apps are all refused.
//
// It runs for every delivery (mochi re-checks the topic against the
// subscriber), so it walks the string instead of splitting it.
func BrowserMaySubscribe(filter, app, channel string) bool {
	if !ValidSegment(app) || !ValidSegment(channel) || checkCommon(filter) != nil {
		return false
	}
	rest, ok := strings.CutPrefix(filter, "apps/")
	for _, part := range [...]string{app, "/channels/", channel, "/"} {
		if !ok {
			return false
		}
		rest, ok = strings.CutPrefix(rest, part)
	}
	// The channel itself must be followed by at least one level ("…/#" or
	// "…/events"); "apps/a/channels/c" alone carries nothing. Below it,
	// wildcards follow filter rules.
	return ok && wildcardsValid(rest)
}

// wildcardsValid applies ValidFilter's wildcard rules to the levels of s:
// '#' only as the whole last level, '+' only as a whole level.
func wildcardsValid(s string) bool {
	for {
		level, more, found := strings.Cut(s, "/")
		if strings.Contains(level, "#") && (level != "#" || found) {
			return false
		}
		if strings.Contains(level, "+") && level != "+" {
			return false
		}
		if !found {
			return true
		}
		s = more
	}
}

// ServiceMaySubscribe reports whether a service of app may subscribe to filter:
// anything under apps/{app}/.
func ServiceMaySubscribe(filter, app string) bool {
	if !ValidSegment(app) {
		return false
	}
	return len(strings.Split(filter, "/")) > 2 && within(filter, []string{"apps", app})
}

// ServiceMayPublish reports whether a service of app may publish to name: a
// valid topic name under apps/{app}/. It runs twice for every publish of a
// service, so it walks the string instead of splitting it.
func ServiceMayPublish(name, app string) bool {
	if !ValidSegment(app) || ValidName(name) != nil {
		return false
	}
	rest, ok := strings.CutPrefix(name, "apps/")
	if ok {
		rest, ok = strings.CutPrefix(rest, app)
	}
	// At least one more level: "apps/{app}/" followed by anything.
	return ok && strings.HasPrefix(rest, "/")
}
