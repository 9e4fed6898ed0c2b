package processor

import (
	"context"
	"sync"
)

// fairShare hands out a fixed number of slots (workers, or conversion
// slots) to the steps waiting for one, fairly across apps and, within an
// app, across its browser sessions (channels), instead of in arrival
// order:
//
//   - when a slot frees, it goes to the app with the fewest slots per unit
//     of weight (tenant.App.ConversionWeight); between equals, to the one
//     served longest ago. Within the app, to the waiting step whose channel
//     holds the fewest slots; between equals, the longest waiting.
//   - an app holding less than its share of the slots (size × its weight
//     / the weights of every app holding or waiting; at least one) does
//     not wait for the others to finish: it takes one of a few spare
//     slots at once. So a small job of app B is not held behind app A's
//     backlog, even while every regular slot is busy with one of A's slow
//     conversions; with B's job done the spare is free again.
//
// Why no cost estimate or preemption: what a conversion costs is not known
// before it runs (the blurred SVG that takes a minute is 13 KB), and
// stopping a converter halfway throws its work away. Spare slots give a
// newcomer a bounded start time at the price of a little
// oversubscription (converters run niced), and the shares keep any one app
// from holding every slot while others wait.
type fairShare struct {
	mu          sync.Mutex
	size, spare int // regular slots, and spare ones for apps holding none
	used, extra int
	apps        map[string]*fairApp
	clock       uint64
	weight      func(app string) int
	// changed, when set, is told each app's slots held and waiting.
	changed func(app string, holding, waiting int)
}

type fairApp struct {
	holding  int
	channels map[string]int // slots held per channel
	waiting  []*fairWaiter
	served   uint64
}

type fairWaiter struct {
	app, channel string
	ready        chan struct{}
	granted      bool
	spare        bool
}

func newFairShare(size, spare int, weight func(string) int) *fairShare {
	return &fairShare{size: size, spare: spare, apps: map[string]*fairApp{}, weight: weight}
}

// acquire waits for a slot for a step of app and channel, and returns the
// function that gives it back. It fails only when ctx ends first.
func (f *fairShare) acquire(ctx context.Context, app, channel string) (release func(), err error) {
	w := &fairWaiter{app: app, channel: channel, ready: make(chan struct{})}
	f.mu.Lock()
	a := f.app(app)
	a.waiting = append(a.waiting, w)
	f.dispatch()
	f.report(app)
	f.mu.Unlock()
	select {
	case <-w.ready:
		if ctx.Err() == nil {
			return func() { f.release(w) }, nil
		}
	case <-ctx.Done():
	}
	f.mu.Lock()
	if w.granted { // granted as ctx ended: give it back
		f.mu.Unlock()
		f.release(w)
		return nil, ctx.Err()
	}
	a.waiting = remove(a.waiting, w)
	f.report(app)
	f.forgetIfIdle(app)
	f.mu.Unlock()
	return nil, ctx.Err()
}

func (f *fairShare) app(id string) *fairApp {
	a := f.apps[id]
	if a == nil {
		a = &fairApp{channels: map[string]int{}}
		f.apps[id] = a
	}
	return a
}

func (f *fairShare) release(w *fairWaiter) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if w.spare {
		f.extra--
	} else {
		f.used--
	}
	a := f.apps[w.app]
	a.holding--
	if a.channels[w.channel]--; a.channels[w.channel] == 0 {
		delete(a.channels, w.channel)
	}
	f.dispatch()
	f.report(w.app)
	f.forgetIfIdle(w.app)
}

// dispatch grants every slot it can: regular ones by fair share, then
// spare ones to apps holding less than their share.
func (f *fairShare) dispatch() {
	for f.used < f.size {
		a := f.next(false)
		if a == nil {
			break
		}
		f.used++
		f.grant(a, false)
	}
	for f.extra < f.spare {
		a := f.next(true)
		if a == nil {
			break
		}
		f.extra++
		f.grant(a, true)
	}
}

// next is the app with a waiting step that holds the fewest slots for its
// weight (served longest ago among equals), or nil. belowShare considers
// only apps holding less than their share of the regular slots:
// size × weight / the weight of every app holding or waiting, at least 1.
func (f *fairShare) next(belowShare bool) *fairApp {
	total := 0
	if belowShare {
		for id := range f.apps {
			total += f.weightOf(id)
		}
	}
	var pick *fairApp
	var pickID string
	for id, a := range f.apps {
		if len(a.waiting) == 0 || belowShare && a.holding >= max(1, f.size*f.weightOf(id)/total) {
			continue
		}
		if pick == nil || a.holding*f.weightOf(pickID) < pick.holding*f.weightOf(id) ||
			a.holding*f.weightOf(pickID) == pick.holding*f.weightOf(id) && a.served < pick.served {
			pick, pickID = a, id
		}
	}
	return pick
}

func (f *fairShare) weightOf(app string) int {
	if f.weight == nil {
		return 1
	}
	return max(f.weight(app), 1)
}

// grant gives a's waiting step whose channel holds the fewest slots (the
// longest waiting among equals) its slot.
func (f *fairShare) grant(a *fairApp, spare bool) {
	best := 0
	for i, w := range a.waiting {
		if a.channels[w.channel] < a.channels[a.waiting[best].channel] {
			best = i
		}
	}
	w := a.waiting[best]
	a.waiting = append(a.waiting[:best], a.waiting[best+1:]...)
	a.holding++
	a.channels[w.channel]++
	f.clock++
	a.served = f.clock
	w.granted, w.spare = true, spare
	close(w.ready)
	f.report(w.app)
}

func (f *fairShare) forgetIfIdle(app string) {
	if a := f.apps[app]; a != nil && a.holding == 0 && len(a.waiting) == 0 {
		delete(f.apps, app)
	}
}

func (f *fairShare) report(app string) {
	if f.changed == nil {
		return
	}
	if a := f.apps[app]; a != nil {
		f.changed(app, a.holding, len(a.waiting))
	} else {
		f.changed(app, 0, 0)
	}
}

func remove(ws []*fairWaiter, w *fairWaiter) []*fairWaiter {
	for i, x := range ws {
		if x == w {
			return append(ws[:i], ws[i+1:]...)
		}
	}
	return ws
}
