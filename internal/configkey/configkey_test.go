package configkey_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/l1gw/l1gw/internal/configkey"
)

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"acme": true, "a.b-c_d9": true, strings.Repeat("x", 64): true,
		"": false, strings.Repeat("x", 65): false, "a b": false, "{acme}": false, "a:b": false, "é": false,
	} {
		if got := configkey.ValidName(name); got != want {
			t.Errorf("ValidName(%q) = %v; want %v", name, got, want)
		}
	}
}

func TestErrorsNameTheirKey(t *testing.T) {
	var es configkey.Errors
	es.Add("upstreams.web.targets[0]", "got %q", "ftp://x")
	var ke interface{ KeyPath() string }
	if len(es) != 1 || !errors.As(es[0], &ke) || ke.KeyPath() != "upstreams.web.targets[0]" ||
		es[0].Error() != `upstreams.web.targets[0]: got "ftp://x"` {
		t.Fatalf("got %v; want one error naming upstreams.web.targets[0]", es)
	}
}
