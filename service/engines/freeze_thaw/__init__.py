"""Engine `freeze_thaw`: `engine` (options and budgets, no torch); `decision`, which plans runs, and `model`, the
learning-curve model, are its torch half, imported by workers on the first plan."""
