"""The flow of a run: prepare the data and the space, start Ray, build the Tune objects, tune, export the best model;
also `resume`, `extend` and `submit` (a Ray Job)."""
