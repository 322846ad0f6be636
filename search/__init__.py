"""The search service around trials: spaces, the Tune runner, MLflow tracking, promotion, the CLI."""
