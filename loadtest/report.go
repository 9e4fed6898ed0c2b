package loadtest

import (
	"encoding/json"
	"fmt"
	"image/color"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// SLO is the latency bound the report's headline rate is judged against.
const SLOp99Ms = 100

// WriteReport writes results.json, report.md and the PNG plots into dir.
func WriteReport(dir, title string, res *Results) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("report dir %s: %w", dir, err)
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	plots := []struct {
		name string
		f    func(*Results) (*plot.Plot, error)
	}{
		{"latency-over-time.png", plotLatencyOverTime},
		{"latency-percentiles.png", plotPercentiles},
		{"sessions-vs-memory.png", plotMemory},
	}
	var made []string
	for _, p := range plots {
		pl, err := p.f(res)
		if err != nil {
			return err
		}
		if pl == nil {
			continue
		}
		if err := pl.Save(16*vg.Centimeter, 9*vg.Centimeter, filepath.Join(dir, p.name)); err != nil {
			return fmt.Errorf("plot %s: %w", p.name, err)
		}
		made = append(made, p.name)
	}
	f, err := os.Create(filepath.Join(dir, "report.md"))
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	writeMarkdown(f, title, res, made)
	return f.Close()
}

func mib(b int64) float64   { return float64(b) / (1 << 20) }
func kib(b float64) float64 { return b / 1024 }

// BestRate is the highest phase rate whose p99 stays under SLOp99Ms with
// the events delivered (at QoS 1: none lost), or -1.
func BestRate(t TargetResult, qos byte) (PhaseResult, bool) {
	var best PhaseResult
	ok := false
	for _, p := range t.Phases {
		if p.Latency.Count == 0 || p.Latency.P99 >= SLOp99Ms {
			continue
		}
		if qos > 0 && p.Lost > 0 {
			continue
		}
		if p.Sent > 0 && float64(p.Lost) > 0.001*float64(p.Sent) {
			continue
		}
		if !ok || p.Delivered > best.Delivered {
			best, ok = p, true
		}
	}
	return best, ok
}

func writeMarkdown(w io.Writer, title string, res *Results, plots []string) {
	s := res.Settings
	fmt.Fprintf(w, "# %s\n\n", title)
	fmt.Fprintf(w, "- started: %s; host: %d CPUs, %.1f GiB, load average at start %s, fd limit %d\n",
		res.Started, res.Host.CPUs, res.Host.MemGiB, res.Host.LoadAvg, res.Host.FDLimit)
	if res.Commit != "" {
		fmt.Fprintf(w, "- commit: `%s`\n", res.Commit)
	}
	if res.Command != "" {
		fmt.Fprintf(w, "- command: `%s`\n", res.Command)
	}
	fmt.Fprintf(w, "- %d sessions per target, %d worker process(es), ramp %.0f/s, QoS %d, %d-byte payloads, publish via %s, each rate held %.0f s\n",
		s.Sessions, s.Workers, s.Ramp, s.QoS, s.PayloadBytes, s.Publish, s.DurationSecs)
	fmt.Fprintf(w, "- publishers (connections per worker and server process) %v; views %v", s.Publishers, s.Views)
	if len(s.ServerCPUs) > 0 {
		fmt.Fprintf(w, "; pinned: servers on CPUs %v, load generator on CPUs %v", s.ServerCPUs, s.ClientCPUs)
	}
	fmt.Fprint(w, "\n\n")

	fmt.Fprintf(w, "## Summary\n\n| | %s |\n|---|%s\n", joinNames(res), strings.Repeat("---|", len(res.Targets)))
	row := func(label string, f func(TargetResult) string) {
		fmt.Fprintf(w, "| %s |", label)
		for _, t := range res.Targets {
			fmt.Fprintf(w, " %s |", f(t))
		}
		fmt.Fprintln(w)
	}
	row("server processes", func(t TargetResult) string { return fmt.Sprint(t.Replicas) })
	row("sessions connected / failed", func(t TargetResult) string { return fmt.Sprintf("%d / %d", t.Connected, t.Failed) })
	row("connect ramp achieved", func(t TargetResult) string { return fmt.Sprintf("%.0f/s", t.RampRate) })
	row("connect time p50 / p99", func(t TargetResult) string {
		return fmt.Sprintf("%.1f / %.1f ms", t.ConnectTime.P50, t.ConnectTime.P99)
	})
	row("server RSS idle (all processes)", func(t TargetResult) string { return fmt.Sprintf("%.0f MiB", mib(t.IdleRSS)) })
	row("server RSS per idle session", func(t TargetResult) string { return fmt.Sprintf("%.1f KiB", kib(t.RSSPerSession)) })
	row("sessions per server process", func(t TargetResult) string {
		if t.Replicas == 0 {
			return "-"
		}
		return fmt.Sprint(t.Connected / t.Replicas)
	})
	row("load generator RSS", func(t TargetResult) string { return fmt.Sprintf("%.0f MiB", mib(t.ClientRSS)) })
	row(fmt.Sprintf("best delivery rate with p99 < %d ms", SLOp99Ms), func(t TargetResult) string {
		if p, ok := BestRate(t, s.QoS); ok {
			return fmt.Sprintf("%.0f msg/s (p99 %.1f ms, %d publishers, %s)", p.Delivered, p.Latency.P99, p.Publishers, p.View)
		}
		return "none"
	})
	row("sessions dropped during publishing", func(t TargetResult) string { return fmt.Sprint(t.SessionsDropped) })
	for _, t := range res.Targets {
		if len(t.Reasons) > 0 || t.Error != "" {
			fmt.Fprintf(w, "\n%s connect failures: %s %s\n", t.Name, formatReasons(t.Reasons), t.Error)
		}
	}

	fmt.Fprintf(w, "\n## Publish rates\n\n| target | view | publishers | rate | sent/s | delivered/s | p50 | p90 | p99 | p99.9 | max | lost | dup | out of order | server CPU | load generator CPU |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, t := range res.Targets {
		for _, p := range t.Phases {
			l := p.Latency
			fmt.Fprintf(w, "| %s | %s | %d | %.0f | %.0f | %.0f | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %.1f ms | %d | %d | %d | %.2f cores | %.2f cores |\n",
				t.Name, p.View, p.Publishers, p.Rate, p.Achieved, p.Delivered, l.P50, l.P90, l.P99, l.P999, l.Max, p.Lost, p.Dup, p.OOO, p.ServerCPU, p.ClientCPU)
		}
	}
	var per []string
	for _, t := range res.Targets {
		for _, p := range t.PerProcess {
			per = append(per, fmt.Sprintf("| %s | %d | %d | %.0f MiB | %.0f MiB | %.1f KiB |",
				t.Name, p.PID, p.Sessions, mib(p.BaselineRSS), mib(p.IdleRSS), kib(p.RSSPerSession)))
		}
	}
	if len(per) > 0 {
		fmt.Fprintf(w, "\n## Per server process (idle)\n\n| target | pid | sessions | RSS before | RSS idle | per session |\n|---|---|---|---|---|---|\n%s\n", strings.Join(per, "\n"))
	}
	if len(plots) > 0 {
		fmt.Fprintln(w, "\n## Plots")
		for _, p := range plots {
			fmt.Fprintf(w, "\n![%s](%s)\n", strings.TrimSuffix(p, ".png"), p)
		}
	}
}

func joinNames(res *Results) string {
	var n []string
	for _, t := range res.Targets {
		n = append(n, t.Name)
	}
	return strings.Join(n, " | ")
}

func formatReasons(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		out = append(out, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(out, ", ")
}

// WriteSummary prints the headline figures of every target.
func WriteSummary(w io.Writer, res *Results) {
	for _, t := range res.Targets {
		fmt.Fprintf(w, "%-10s sessions %d/%d (failed %d %s) ramp %.0f/s connect p99 %.1f ms; server idle RSS %.0f MiB, %.1f KiB/session; client RSS %.0f MiB\n",
			t.Name, t.Connected, t.Sessions, t.Failed, formatReasons(t.Reasons), t.RampRate, t.ConnectTime.P99,
			mib(t.IdleRSS), kib(t.RSSPerSession), mib(t.ClientRSS))
		for _, p := range t.Phases {
			fmt.Fprintf(w, "%-10s %-6s %2d pub rate %6.0f/s delivered %6.0f/s p50 %6.1f ms p99 %7.1f ms max %7.1f ms lost %d dup %d ooo %d server CPU %.2f client CPU %.2f\n",
				"", p.View, p.Publishers, p.Rate, p.Delivered, p.Latency.P50, p.Latency.P99, p.Latency.Max, p.Lost, p.Dup, p.OOO, p.ServerCPU, p.ClientCPU)
		}
		if t.Error != "" {
			fmt.Fprintf(w, "%-10s error: %s\n", "", t.Error)
		}
	}
}

var palette = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
}

func addLine(p *plot.Plot, name string, k int, pts plotter.XYs, dashed bool) error {
	l, err := plotter.NewLine(pts)
	if err != nil {
		return fmt.Errorf("plot line %s: %w", name, err)
	}
	l.Color = palette[k%len(palette)]
	l.Width = vg.Points(1.2)
	if dashed {
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	}
	p.Add(l)
	p.Legend.Add(name, l)
	return nil
}

// newLatencyPlot is a plot with a log-scale latency axis in ms.
func newLatencyPlot(title, xLabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xLabel
	p.Y.Label.Text = "ms (log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	return p
}

// addPercentiles draws a target's p99 (solid) and p50 (dashed) lines.
func addPercentiles(p *plot.Plot, name string, k int, p50, p99 plotter.XYs) error {
	if err := addLine(p, name+" p99", k, p99, false); err != nil {
		return err
	}
	return addLine(p, name+" p50", k, p50, true)
}

func plotLatencyOverTime(res *Results) (*plot.Plot, error) {
	p := newLatencyPlot("Delivery latency per second (p50 dashed, p99 solid)", "seconds of publishing (rates in sequence)")
	any := false
	for k, t := range res.Targets {
		var p50, p99 plotter.XYs
		for _, tp := range t.Timeline {
			if tp.Count == 0 {
				continue
			}
			p50 = append(p50, plotter.XY{X: tp.T, Y: max(tp.P50, 0.001)})
			p99 = append(p99, plotter.XY{X: tp.T, Y: max(tp.P99, 0.001)})
		}
		if len(p99) < 2 {
			continue
		}
		any = true
		if err := addPercentiles(p, t.Name, k, p50, p99); err != nil {
			return nil, err
		}
	}
	if !any {
		return nil, nil
	}
	return p, nil
}

func plotPercentiles(res *Results) (*plot.Plot, error) {
	p := newLatencyPlot("p99 delivery latency by publish rate (p50 dashed)", "events/s offered")
	any := false
	k := -1
	for _, g := range phaseGroups(res) {
		k++
		var p50, p99 plotter.XYs
		for _, ph := range g.phases {
			if ph.Latency.Count == 0 {
				continue
			}
			p50 = append(p50, plotter.XY{X: ph.Rate, Y: max(ph.Latency.P50, 0.001)})
			p99 = append(p99, plotter.XY{X: ph.Rate, Y: max(ph.Latency.P99, 0.001)})
		}
		if len(p99) == 0 {
			continue
		}
		any = true
		if len(p99) == 1 { // a line needs two points; show one as a short flat segment
			p99 = append(p99, plotter.XY{X: p99[0].X * 1.01, Y: p99[0].Y})
			p50 = append(p50, plotter.XY{X: p50[0].X * 1.01, Y: p50[0].Y})
		}
		if err := addPercentiles(p, g.name, k, p50, p99); err != nil {
			return nil, err
		}
		sc, err := plotter.NewScatter(p99)
		if err == nil {
			sc.Color = palette[k%len(palette)]
			p.Add(sc)
		}
	}
	if !any {
		return nil, nil
	}
	return p, nil
}

func plotMemory(res *Results) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Server RSS (all processes) against connected sessions"
	p.X.Label.Text = "sessions connected"
	p.Y.Label.Text = "MiB"
	p.Legend.Top = true
	p.Legend.Left = true
	any := false
	for k, t := range res.Targets {
		var pts plotter.XYs
		for _, m := range t.Memory {
			pts = append(pts, plotter.XY{X: float64(m.Sessions), Y: mib(m.RSS)})
		}
		if len(pts) < 2 {
			continue
		}
		any = true
		if err := addLine(p, t.Name, k, pts, false); err != nil {
			return nil, err
		}
	}
	if !any {
		return nil, nil
	}
	return p, nil
}

// phaseGroup is the phases of one target with one publisher count in one
// view: one line of a plot over rates.
type phaseGroup struct {
	name   string
	phases []PhaseResult
}

func phaseGroups(res *Results) []phaseGroup {
	var out []phaseGroup
	for _, t := range res.Targets {
		idx := map[string]int{}
		for _, ph := range t.Phases {
			name := t.Name
			if len(res.Settings.Publishers) > 1 || len(res.Settings.Views) > 1 {
				name = fmt.Sprintf("%s %s %dp", t.Name, ph.View, ph.Publishers)
			}
			i, ok := idx[name]
			if !ok {
				i = len(out)
				idx[name] = i
				out = append(out, phaseGroup{name: name})
			}
			out[i].phases = append(out[i].phases, ph)
		}
	}
	return out
}
