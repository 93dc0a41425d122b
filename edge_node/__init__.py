"""Edge node: torch-free ONNX inference service, detector, drift trigger, trainer child process."""
