"""Engine `constrained`: `engine` (options, no torch) and `model`, its torch half, imported by workers on the first
model-based suggestion."""
