from paramcast.cli.main import app

app()
