"""One trial of labeltune: data, models, the Gym loop, metrics, checkpoints. Imports no Ray outside trial.py."""
