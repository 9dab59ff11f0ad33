"""Video Alchemist: the network and the flow. Knows nothing of MLflow, DVC, KFP or Triton."""
