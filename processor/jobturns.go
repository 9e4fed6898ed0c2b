package processor

import "sync"

// jobTurns lets the steps of one job running in this process take turns
// (the fan-in after an output is stored), while steps of different jobs
// run freely.
type jobTurns struct {
	mu   sync.Mutex
	jobs map[string]*jobTurn
}

type jobTurn struct {
	mu      sync.Mutex
	waiting int // steps holding or waiting for mu
}

// take waits for job's turn and returns the function that ends it.
func (t *jobTurns) take(job string) (done func()) {
	t.mu.Lock()
	if t.jobs == nil {
		t.jobs = make(map[string]*jobTurn)
	}
	j := t.jobs[job]
	if j == nil {
		j = &jobTurn{}
		t.jobs[job] = j
	}
	j.waiting++
	t.mu.Unlock()
	j.mu.Lock()
	return func() {
		j.mu.Unlock()
		t.mu.Lock()
		if j.waiting--; j.waiting == 0 {
			delete(t.jobs, job)
		}
		t.mu.Unlock()
	}
}
