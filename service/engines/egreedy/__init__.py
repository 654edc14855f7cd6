"""Engine `egreedy`: `engine` (options and selection rules, no torch) and `model`, its torch half, imported by workers
on the first model-based suggestion."""
