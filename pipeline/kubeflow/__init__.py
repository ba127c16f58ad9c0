"""Kubeflow: compiling for open-source KFP and Vertex AI, the container entry point every task runs,
the conformance rules of the open-source backend, its strict local emulation (`run-spec`), and
recurring runs through the KFP client."""
