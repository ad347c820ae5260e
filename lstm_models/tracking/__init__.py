"""What a sweep records: the Tracker protocol (`tracker`), MLflow (`mlflow_store`), the leaderboard (`report`) and plots (`plots`)."""
