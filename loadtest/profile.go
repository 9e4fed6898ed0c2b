package loadtest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// fetchProfiles saves one pprof profile ("heap", or "profile" for CPU over
// secs) from each base URL into dir as {name}-{i}-{kind}.pprof. Failures
// are returned together; a run does not stop for a missing profile.
func fetchProfiles(ctx context.Context, dir, name string, bases []string, kind string, secs int) error {
	if dir == "" || len(bases) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("profile dir %s: %w", dir, err)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(bases))
	for i, base := range bases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fetchProfile(ctx, base, kind, secs, filepath.Join(dir, fmt.Sprintf("%s-%d-%s.pprof", name, i, label(kind))))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func label(kind string) string {
	if kind == "profile" {
		return "cpu"
	}
	return kind
}

func fetchProfile(ctx context.Context, base, kind string, secs int, path string) error {
	if err := CheckLoopback(base); err != nil {
		return err
	}
	u := base + "/debug/pprof/" + kind
	if kind == "profile" {
		u += fmt.Sprintf("?seconds=%d", secs)
	} else {
		u += "?gc=1"
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs+30)*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("profile %s: %w", u, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profile %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile %s: status %d", u, resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("profile file: %w", err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return fmt.Errorf("profile %s: %w", u, err)
	}
	return f.Close()
}
