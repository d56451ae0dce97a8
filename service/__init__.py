"""The HTTP service: FastAPI app, routes, auth, jobs, metrics and the chat widget."""
