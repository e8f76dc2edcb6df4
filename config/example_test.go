package config_test

import (
	"fmt"

	"github.com/l1gw/l1gw/config"
)

// A bad value is refused with the key and the source that set it.
func ExampleLoad() {
	_, err := config.Load(config.Input{
		Environ: []string{"L1GW_RATELIMIT__FAIL_MODE=sideways"},
		Sets:    []string{"server.read_timeout=soon"},
	})
	fmt.Println(err)
	// Output:
	// ratelimit.fail_mode: got "sideways"; want one of ["open" "closed" "local"] (from env L1GW_RATELIMIT__FAIL_MODE)
	// server.read_timeout: got "soon"; want a duration such as 10ms, 5s or 1m (from --set server.read_timeout=soon)
}
