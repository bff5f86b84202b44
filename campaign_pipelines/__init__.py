"""campaign-pipelines: email campaigns to very large contact lists, run from Dagster."""
