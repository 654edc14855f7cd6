"""Engine `gp` (and `ModelEngine`, which constrained, egreedy and multiobjective build on): `engine` holds no torch
import, so API processes validate options and serve the initial design without the model stack; `model`, its torch
half, is imported by workers on the first model-based suggestion."""
