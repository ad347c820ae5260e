"""YAML to frozen specs: `lstm_models.spec.rules` checks keys, `lstm_models.spec.sweep` holds `SweepSpec`."""
