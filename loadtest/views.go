package loadtest

import (
	"fmt"
	"time"
)

// View is how the processes of a run share the machine's CPUs during a
// phase.
type View string

// The views.
const (
	// ViewShared lets every process use every CPU.
	ViewShared View = "shared"
	// ViewPinned puts the servers on Config.ServerCPUs and the load
	// generator on Config.ClientCPUs (what `taskset` does): the server's
	// delivery per core, with the generator unable to take its CPU.
	ViewPinned View = "pinned"
)

// step is one phase of a target's run: a rate held with a number of
// publishers in a view.
type step struct {
	view       View
	publishers int
	rate       float64
}

// steps orders the phases: each view in turn, within it each publisher
// count, within that each rate.
func (c Config) steps() []step {
	var out []step
	for _, v := range c.Views {
		for _, p := range c.PublisherCounts {
			for _, r := range c.Rates {
				out = append(out, step{view: v, publishers: p, rate: r})
			}
		}
	}
	return out
}

// checkViews fills in the defaults of the views and publisher counts and
// checks them.
func (c *Config) checkViews() error {
	if len(c.Views) == 0 {
		c.Views = []View{ViewShared}
	}
	pinned := false
	for _, v := range c.Views {
		switch v {
		case ViewShared:
		case ViewPinned:
			pinned = true
		default:
			return fmt.Errorf("%w: view %q (want %s or %s)", ErrConfig, v, ViewShared, ViewPinned)
		}
	}
	if pinned {
		if !pinAvailable {
			return fmt.Errorf("%w: pinning needs Linux", ErrConfig)
		}
		all := machineCPUs()
		if len(all) < 2 {
			return fmt.Errorf("%w: pinning needs two CPUs, this process has %v", ErrConfig, all)
		}
		if len(c.ServerCPUs) == 0 {
			c.ServerCPUs = all[:1]
		}
		if len(c.ClientCPUs) == 0 {
			c.ClientCPUs = all[len(all)-1:]
		}
		for _, t := range c.Targets {
			if len(t.PIDs) == 0 {
				return fmt.Errorf("%w: target %q: pinning needs its server pids", ErrConfig, t.Name)
			}
		}
	}
	if len(c.PublisherCounts) == 0 {
		c.PublisherCounts = []int{c.Publishers}
	}
	for _, p := range c.PublisherCounts {
		if p <= 0 {
			return fmt.Errorf("%w: %d publishers", ErrConfig, p)
		}
		c.Publishers = max(c.Publishers, p)
	}
	return nil
}

// pinSettle is how long a view change is given to take effect before the
// phase starts: the Go runtime adjusts GOMAXPROCS to a new CPU mask about
// once a second.
const pinSettle = 2 * time.Second

// place moves the target's servers, the workers and this process into
// view. It returns whether anything changed.
func (r *run) place(view View) (bool, error) {
	if view == r.view {
		return false, nil
	}
	all := machineCPUs()
	server, client := all, all
	if view == ViewPinned {
		server, client = r.cfg.ServerCPUs, r.cfg.ClientCPUs
	}
	for _, pid := range r.t.PIDs {
		if err := setAffinity(pid, server); err != nil {
			return false, err
		}
	}
	pids := []int{0}
	for _, p := range r.procs {
		if p.PID > 0 {
			pids = append(pids, p.PID)
		}
	}
	for _, pid := range pids {
		if err := setAffinity(pid, client); err != nil {
			return false, err
		}
	}
	r.view = view
	return true, nil
}

// unplace gives every process all CPUs back.
func (r *run) unplace() {
	if r.view == "" || r.view == ViewShared {
		return
	}
	_, _ = r.place(ViewShared)
}
