package engine_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"

	"github.com/credfsm/credfsm/engine"
	"github.com/credfsm/credfsm/oauth/oauthtest"
)

// exampleAPI is an API that refuses the first access token it sees, as one
// that revoked it would, and greets the bearer of any other.
func exampleAPI() *httptest.Server {
	var mu sync.Mutex
	var first string
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		mu.Lock()
		if first == "" {
			first = tok
		}
		refused := tok == first
		mu.Unlock()
		if refused {
			http.Error(w, "token revoked", http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "hello, workspace %s", r.Header.Get(engine.AccountHeader))
	}))
}

// A host wires the manager's Transport into its http.Client. Every request
// carries the current bearer token; when the API refuses it, the transport
// refreshes the tokens (once, however many requests were refused) and sends
// the request again.
func ExampleManager_Transport() {
	// A token endpoint and an API, both on loopback, stand in for the real
	// ones; the Codex home is a temporary directory.
	tokens := oauthtest.NewServer()
	defer tokens.Close()
	api := exampleAPI()
	defer api.Close()
	home, err := os.MkdirTemp("", "credfsm-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(home)

	ctx := context.Background()
	profile := tokens.CodexProfile()
	m, err := engine.New(ctx, engine.Config{Home: home, Profile: &profile})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	// Sign in with the tokens of a ChatGPT login; they are saved to
	// <home>/auth.json, where the Codex CLI finds them too.
	login := tokens.Issue(oauthtest.Account{Email: "dev@example.com", AccountID: "acct-1"})
	if err := m.LoginTokens(ctx, login.IDToken, login.AccessToken, login.RefreshToken); err != nil {
		log.Fatal(err)
	}

	client := &http.Client{Transport: m.Transport(api.Client().Transport)}
	resp, err := client.Post(api.URL+"/v1/responses", "application/json",
		strings.NewReader(`{"input":"hi"}`))
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)

	fmt.Println(resp.Status)
	fmt.Println(string(body))
	fmt.Println("refreshes:", tokens.Stats().Redemptions)
	fmt.Println("state:", m.Snapshot().State)
	// Output:
	// 200 OK
	// hello, workspace acct-1
	// refreshes: 1
	// state: fresh
}

// A host that sends requests itself asks for a token, and reports each
// response with Observe, which says what to do next.
func ExampleManager_Observe() {
	tokens := oauthtest.NewServer()
	defer tokens.Close()
	api := exampleAPI()
	defer api.Close()
	home, err := os.MkdirTemp("", "credfsm-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(home)

	ctx := context.Background()
	profile := tokens.CodexProfile()
	m, err := engine.New(ctx, engine.Config{Home: home, Profile: &profile})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	login := tokens.Issue(oauthtest.Account{Email: "dev@example.com", AccountID: "acct-1"})
	if err := m.LoginTokens(ctx, login.IDToken, login.AccessToken, login.RefreshToken); err != nil {
		log.Fatal(err)
	}

	tok, err := m.Token(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for attempt := 1; ; attempt++ {
		req, _ := http.NewRequest(http.MethodGet, api.URL+"/v1/me", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set(engine.AccountHeader, m.Snapshot().AccountID)
		resp, err := api.Client().Do(req)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("attempt %d: %s\n", attempt, resp.Status)

		d := m.Observe(ctx, tok, resp.StatusCode, body)
		switch d.Action {
		case engine.Retry:
			fmt.Println("retry with a new token")
			tok = d.Token
			continue
		case engine.GiveUp:
			fmt.Println("give up:", d.Err)
		default:
			fmt.Println(string(body))
		}
		break
	}
	// Output:
	// attempt 1: 401 Unauthorized
	// retry with a new token
	// attempt 2: 200 OK
	// hello, workspace acct-1
}
