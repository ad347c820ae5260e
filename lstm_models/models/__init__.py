"""Networks: `lstm_models.models.build` (build_model from a plain ModelSpec), `lstm_models.models.cells` (the gate equations)."""
