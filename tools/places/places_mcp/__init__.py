"""Places tool server: place search for a voice caller, behind MCP, with its own identity.

The voice agent holds no Places credential and no Google role for it. This server verifies the
caller's audience-bound Kubernetes service-account token, validates every request, calls the
Places API (New) with its own Workload Identity, and returns results short enough to speak.
"""
