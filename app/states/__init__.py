"""The states layer: the rules that are neither HTTP nor storage (model) and the service that applies them."""
