package oauth_test

import (
	"github.com/credfsm/credfsm/effects"
	"github.com/credfsm/credfsm/oauth"
)

// The effects runner consumes these types through its own interfaces; oauth
// does not import effects, so the match is checked here.
var (
	_ effects.TokenEndpoint = (*oauth.Client)(nil)
	_ effects.HostRefresher = (*oauth.HostRefresher)(nil)
)
