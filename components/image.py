"""The container image every pipeline step runs in: built from infra/Dockerfile (target `component`)."""

COMPONENT_IMAGE = "registry.example.com/video-alchemist/alchemist:0.1.0"
