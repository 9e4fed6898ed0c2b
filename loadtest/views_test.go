package loadtest

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldgw/herald/internal/testkit"
)

// One run sweeps the publisher counts in both views: every rate is run
// with each count, unpinned and then pinned, and the processes get all
// their CPUs back at the end.
func TestSweepAndPin(t *testing.T) {
	if len(machineCPUs()) < 2 || !pinAvailable {
		t.Skip("pinning needs Linux and two CPUs")
	}
	m := testkit.StartMosquitto(t)
	// Watch the server's CPUs while the run goes.
	fewest := make(chan int)
	stop := make(chan struct{})
	go func() {
		least := len(machineCPUs())
		for {
			select {
			case <-stop:
				fewest <- least
				return
			case <-time.After(50 * time.Millisecond):
				least = min(least, allowedCPUs(t, m.PID()))
			}
		}
	}()
	res, err := Run(context.Background(), Config{
		Targets:  []Target{{Name: "mosquitto", Kind: KindMQTT, Replicas: []Replica{{WS: "ws://" + m.WSAddr}}, PIDs: []int{m.PID()}}},
		Sessions: 50, Rates: []float64{100}, Duration: time.Second, Drain: 5 * time.Second, Settle: 10 * time.Millisecond,
		PublisherCounts: []int{1, 2}, Views: []View{ViewShared, ViewPinned},
	})
	close(stop)
	if err != nil {
		t.Fatal(err)
	}
	if n := <-fewest; n != 1 {
		t.Errorf("the server ran on at least %d CPUs throughout, want 1 while pinned", n)
	}
	tr := res.Targets[0]
	var got []string
	for _, p := range tr.Phases {
		got = append(got, string(p.View)+"/"+strconv.Itoa(p.Publishers))
		if p.Sent == 0 || p.Received != p.Sent {
			t.Errorf("%s %d publishers: received %d of %d", p.View, p.Publishers, p.Received, p.Sent)
		}
	}
	if want := []string{"shared/1", "shared/2", "pinned/1", "pinned/2"}; !slices.Equal(got, want) {
		t.Errorf("phases %v, want %v", got, want)
	}
	if s := res.Settings; !slices.Equal(s.Publishers, []int{1, 2}) || len(s.ServerCPUs) == 0 || len(s.ClientCPUs) == 0 {
		t.Errorf("settings %+v", s)
	}
	all := machineCPUs()
	for _, pid := range []int{m.PID(), os.Getpid()} {
		if got := allowedCPUs(t, pid); got != len(all) {
			t.Errorf("pid %d runs on %d CPUs after the run, want all %d", pid, got, len(all))
		}
	}
}

// allowedCPUs counts the CPUs pid's main thread may run on.
func allowedCPUs(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			n := 0
			for _, part := range strings.Split(strings.TrimSpace(v), ",") {
				lo, hi, found := strings.Cut(part, "-")
				a, _ := strconv.Atoi(lo)
				z := a
				if found {
					z, _ = strconv.Atoi(hi)
				}
				n += z - a + 1
			}
			return n
		}
	}
	t.Fatal("no Cpus_allowed_list")
	return 0
}
