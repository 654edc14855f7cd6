"""Engine `asha_bo`: `engine` (options, rung observations, no torch) and `model`, its torch half, imported by workers
once there is a model to fit."""
