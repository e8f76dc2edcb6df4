package limiter

import (
	"errors"
)

// Error kinds: the label values of l1gw_redis_errors_total{kind}, one per
// cause an operator acts on differently.
const (
	KindBudget      = "budget"      // Redis stayed silent past the budget
	KindConnection  = "connection"  // dial, read or write failed
	KindNotPrimary  = "not_primary" // the node dialed as primary is not one (ROLE)
	KindOOM         = "oom"         // OOM: maxmemory reached under noeviction
	KindNoReplicas  = "noreplicas"  // NOREPLICAS: min-replicas-to-write not met
	KindReadOnly    = "readonly"    // READONLY: a replica, written to
	KindLoading     = "loading"     // LOADING: the node is loading its data
	KindMasterDown  = "masterdown"  // MASTERDOWN: a replica lost its primary
	KindClusterDown = "clusterdown" // CLUSTERDOWN: the cluster cannot serve the slot
	KindBusy        = "busy"        // BUSY: a script runs past lua-time-limit
	KindRedirect    = "redirect"    // MOVED or ASK not settled by one redirect
	KindReply       = "reply"       // any other error reply
)

var errorKinds = []string{KindBudget, KindConnection, KindNotPrimary, KindOOM, KindNoReplicas, KindReadOnly,
	KindLoading, KindMasterDown, KindClusterDown, KindBusy, KindRedirect, KindReply}

// ErrorKind names the cause of a store error, one of the Kind constants;
// "" for nil and for errors that are not Redis' (ErrOverload, a closed
// store, too many rules).
func ErrorKind(err error) string {
	var re replyError
	switch {
	case err == nil, errors.Is(err, ErrOverload), errors.Is(err, errClosed), errors.Is(err, ErrTooManyRules):
		return ""
	case errors.Is(err, ErrBudget):
		return KindBudget
	case errors.Is(err, ErrNotPrimary):
		return KindNotPrimary
	case errors.As(err, &re):
		switch re.prefix() {
		case "OOM":
			return KindOOM
		case "NOREPLICAS":
			return KindNoReplicas
		case "READONLY":
			return KindReadOnly
		case "LOADING":
			return KindLoading
		case "MASTERDOWN":
			return KindMasterDown
		case "CLUSTERDOWN":
			return KindClusterDown
		case "BUSY":
			return KindBusy
		case "MOVED", "ASK":
			return KindRedirect
		}
		return KindReply
	}
	return KindConnection
}
