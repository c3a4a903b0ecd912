"""What to try and when to stop: the searchers, the schedulers (with their resumable state), warm starts and the
budget plan. One record per searcher and per scheduler; Ray and the search libraries load only when one is built."""
