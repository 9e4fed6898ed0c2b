package processor

import (
	"context"
	"errors"
	"log/slog"
	"sync"
)

// errJobEnded is the cause of a step's context canceled because its job
// ended (failed) while the step ran.
var errJobEnded = errors.New("its job already ended")

// siblings are the output steps running in this process, by job, so the
// step that fails a job stops the others at once: their converters are
// killed rather than left to finish work nobody will see. Steps of the job
// running in other processes notice the job's final marker within a
// heartbeat (watch).
type siblings struct {
	mu   sync.Mutex
	jobs map[string]map[string]context.CancelCauseFunc // job → output → cancel
}

// join registers the output step of job and returns its context, which
// ends when the job ends elsewhere; leave unregisters it.
func (s *siblings) join(ctx context.Context, job, output string) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	s.mu.Lock()
	if s.jobs == nil {
		s.jobs = map[string]map[string]context.CancelCauseFunc{}
	}
	if s.jobs[job] == nil {
		s.jobs[job] = map[string]context.CancelCauseFunc{}
	}
	s.jobs[job][output] = cancel
	s.mu.Unlock()
	return ctx, func() {
		s.mu.Lock()
		delete(s.jobs[job], output)
		if len(s.jobs[job]) == 0 {
			delete(s.jobs, job)
		}
		s.mu.Unlock()
		cancel(nil)
	}
}

// stop cancels the running steps of job other than output's.
func (s *siblings) stop(job, output string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for out, cancel := range s.jobs[job] {
		if out != output {
			cancel(errJobEnded)
		}
	}
}

// stopped reports whether ctx was canceled because its job ended.
func stopped(ctx context.Context) bool { return errors.Is(context.Cause(ctx), errJobEnded) }

// watch stops the output step st (through its registration) when another
// step, in any process, ends the job: it reads the job's final marker
// every Heartbeat until ctx ends.
func (p *Processor) watch(ctx context.Context, st *State) {
	every(ctx, p.cfg.Heartbeat, func() bool {
		fm, err := p.readFinal(ctx, st.job())
		if err != nil || fm == nil || fm.Writer == st.stepID() {
			return true
		}
		p.log.LogAttrs(ctx, slog.LevelDebug, "job ended by another step; stopping this one", slog.String("job", st.JobID),
			slog.String("output", st.Output), slog.String("ended_by", fm.Writer))
		p.siblings.stop(st.JobID, "")
		return false
	})
}
