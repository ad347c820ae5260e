from lstm_models.cli import run

run()
