"""What a user sees while a search runs: the console text, the progress view, TensorBoard and the experiment trackers."""
