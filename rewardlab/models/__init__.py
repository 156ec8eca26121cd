"""nn.Modules only: scalar heads on HF backbones, transition MLPs, (later) discriminators and embedders."""
