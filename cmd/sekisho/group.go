package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// group runs long-lived components; the first to fail cancels the rest.
type group struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	errs   []error
}

func newGroup(ctx context.Context) *group {
	ctx, cancel := context.WithCancel(ctx)
	return &group{ctx: ctx, cancel: cancel}
}

// Go runs f(ctx) in its own goroutine; an error other than cancellation
// stops the whole group.
func (g *group) Go(name string, f func(ctx context.Context) error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := f(g.ctx); err != nil && !errors.Is(err, context.Canceled) {
			g.mu.Lock()
			g.errs = append(g.errs, fmt.Errorf("%s: %w", name, err))
			g.mu.Unlock()
			g.cancel()
		}
	}()
}

// Wait waits for every component and returns their errors.
func (g *group) Wait() error {
	g.wg.Wait()
	g.cancel()
	return errors.Join(g.errs...)
}
