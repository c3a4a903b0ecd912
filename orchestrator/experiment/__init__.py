"""The experiment file: YAML (or `--data FILE`) in, a validated, frozen `ExperimentConfig` out."""
