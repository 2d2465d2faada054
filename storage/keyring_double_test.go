package storage

import (
	"sync"

	"github.com/zalando/go-keyring"
)

// fakeKeyring is a KeyringProvider double whose every operation can be made
// to fail or to block. The library's own mock (keyring.MockInit) serves the
// tests that need no more than that.
type fakeKeyring struct {
	mu      sync.Mutex
	entries map[string]string
	getErr  error
	setErr  error
	delErr  error
	block   chan struct{} // when non-nil, every call waits until it is closed
	calls   int
}

func newFakeKeyring() *fakeKeyring { return &fakeKeyring{entries: map[string]string{}} }

func (f *fakeKeyring) wait() {
	f.mu.Lock()
	f.calls++
	block := f.block
	f.mu.Unlock()
	if block != nil {
		<-block
	}
}

func (f *fakeKeyring) Get(service, account string) (string, error) {
	f.wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.getErr != nil {
		return "", f.getErr
	}
	v, ok := f.entries[service+"\x00"+account]
	if !ok {
		return "", keyring.ErrNotFound
	}
	return v, nil
}

func (f *fakeKeyring) Set(service, account, value string) error {
	f.wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.setErr != nil {
		return f.setErr
	}
	f.entries[service+"\x00"+account] = value
	return nil
}

func (f *fakeKeyring) Delete(service, account string) error {
	f.wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.delErr != nil {
		return f.delErr
	}
	k := service + "\x00" + account
	if _, ok := f.entries[k]; !ok {
		return keyring.ErrNotFound
	}
	delete(f.entries, k)
	return nil
}

// value returns the entry of home, if any.
func (f *fakeKeyring) value(home string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.entries[KeyringService+"\x00"+KeyringAccount(home)]
	return v, ok
}

func (f *fakeKeyring) put(home, value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries[KeyringService+"\x00"+KeyringAccount(home)] = value
}

func (f *fakeKeyring) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}
