package redistest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/l1gw/l1gw/internal/testkit"
)

// TestWaitSettledReadsTheSentinelsFlags: masterFlags sees the sentinels
// flag a killed primary down (were it to read "master" always, WaitSettled
// would wait for nothing), and after the primary is back and WaitSettled
// returns, no sentinel flags it.
func TestWaitSettledReadsTheSentinelsFlags(t *testing.T) {
	t.Parallel()
	tp := Topology(t, Options{Replicas: 1, Sentinels: 3, DownAfter: time.Second})
	tp.WaitSettled(t) // healthy: at once
	p := tp.Primary()
	p.Kill()
	testkit.Eventually(t, 10*time.Second, func() error {
		for _, s := range tp.Sentinels() {
			f, err := tp.masterFlags(s)
			if err != nil {
				return err
			}
			if strings.Contains(f, "s_down") {
				return nil
			}
		}
		return errors.New("no sentinel flags the killed primary s_down")
	})
	p.RestartInPlace(t)
	tp.WaitSettled(t)
	for _, s := range tp.Sentinels() {
		if f, err := tp.masterFlags(s); err != nil || f != "master" {
			t.Fatalf("after WaitSettled %s flags the primary %q (%v); want \"master\"", s, f, err)
		}
	}
}
