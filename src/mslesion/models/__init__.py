"""Networks, a registry of them by name, and safetensors + JSON model files."""
