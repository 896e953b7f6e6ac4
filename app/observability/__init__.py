"""What operators see of the service: metrics, request ids and JSON logs."""
