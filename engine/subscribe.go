package engine

import "sync"

// subscribers delivers transitions to Subscribe callbacks from one goroutine,
// in the order the steps happened, without holding the manager's lock.
type subscribers struct {
	mu      sync.Mutex
	cond    *sync.Cond
	fns     []subscriber
	next    int
	queue   []Transition
	stopped bool
}

type subscriber struct {
	id int
	fn func(Transition)
}

func (s *subscribers) start(wg *sync.WaitGroup) {
	s.cond = sync.NewCond(&s.mu)
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.loop()
	}()
}

func (s *subscribers) add(fn func(Transition)) func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	id := s.next
	s.fns = append(s.fns, subscriber{id, fn})
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for i, sub := range s.fns {
			if sub.id == id {
				s.fns = append(s.fns[:i:i], s.fns[i+1:]...)
				return
			}
		}
	}
}

// publish queues t; it never blocks on a subscriber.
func (s *subscribers) publish(t Transition) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.fns) == 0 || s.stopped {
		return
	}
	s.queue = append(s.queue, t)
	s.cond.Signal()
}

// stop makes the delivery goroutine return once the queue is drained.
func (s *subscribers) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	s.cond.Broadcast()
}

func (s *subscribers) loop() {
	for {
		s.mu.Lock()
		for len(s.queue) == 0 && !s.stopped {
			s.cond.Wait()
		}
		if len(s.queue) == 0 {
			s.mu.Unlock()
			return
		}
		batch := s.queue
		s.queue = nil
		fns := append([]subscriber(nil), s.fns...)
		s.mu.Unlock()
		for _, t := range batch {
			for _, sub := range fns {
				sub.fn(t)
			}
		}
	}
}
