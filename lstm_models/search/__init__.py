"""The search: space (hp -> ModelSpec), hypermodel, tuner adapter, recorder, limits, state, run_sweep, finish."""
